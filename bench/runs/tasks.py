"""Tasks: one training + evaluation of a backbone preset under a strategy and seed.

A task has a readable id, ``"{backbone}-{preset}--{strategy}--seed{seed}"``,
and the hash of its ``TrainConfig``. A changed hyper-parameter changes the
hash, so an old result is never taken for a new configuration.

Example:
    >>> from bench.runs.matrices import resolve_matrix
    >>> from bench.runs.tasks import build_tasks
    >>> [task.task_id for task in build_tasks(resolve_matrix("smoke"))][:2]  # doctest: +SKIP
    ['unet-small--standard--seed0', 'unet-small--curriculum--seed0']
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any

from bench.errors import ConfigError
from bench.registry import BACKBONES, STRATEGIES

__all__ = ["Task", "task_id", "build_tasks", "validate_names"]

logger = logging.getLogger(__name__)

# Fields that the matrix sets per task; a matrix's ``train`` options must not repeat them.
_TASK_FIELDS = ("backbone", "preset", "strategy", "seed", "epochs")


@dataclass(frozen=True)
class Task:
    """One cell of a matrix, ready to train.

    Attributes:
        task_id: folder name inside the run folder.
        backbone: registered backbone name.
        preset: backbone preset.
        strategy: registered strategy name.
        seed: training seed.
        train_config: ``TrainConfig.to_dict()`` of the task.
        config_hash: ``TrainConfig.config_hash()``; fields that do not change
            results (such as ``device``) are not part of it.
    """

    task_id: str
    backbone: str
    preset: str
    strategy: str
    seed: int
    train_config: dict[str, Any]
    config_hash: str


def task_id(backbone: str, preset: str, strategy: str, seed: int) -> str:
    """Return the id of a task, e.g. ``attention_unet-small--curriculum--seed0``."""
    return f"{backbone}-{preset}--{strategy}--seed{seed}"


def build_tasks(matrix) -> list[Task]:
    """Expand a matrix into its tasks, backbone-major, then strategy, then seed.

    Every name is checked first, and every ``TrainConfig`` is built, so an
    invalid matrix fails before any task starts.

    Args:
        matrix: a ``bench.runs.matrices.Matrix``.

    Raises:
        RegistryError: an unknown backbone or strategy (with close matches).
        ConfigError: an unknown preset, an unknown or invalid training option.
    """
    from bench.training.config import TrainConfig

    validate_names(matrix.backbones, matrix.strategies, matrix.preset)
    options = _train_options(matrix.train, TrainConfig)

    tasks = []
    for backbone in matrix.backbones:
        for strategy in matrix.strategies:
            for seed in matrix.seeds:
                config = _make_config(
                    TrainConfig,
                    dict(
                        backbone=backbone,
                        preset=matrix.preset,
                        strategy=strategy,
                        seed=seed,
                        epochs=matrix.epochs,
                        **options,
                    ),
                    matrix.name,
                )
                tasks.append(
                    Task(
                        task_id=task_id(backbone, matrix.preset, strategy, seed),
                        backbone=backbone,
                        preset=matrix.preset,
                        strategy=strategy,
                        seed=seed,
                        train_config=config.to_dict(),
                        config_hash=config.config_hash(),
                    )
                )
    return tasks


def validate_names(backbones: tuple[str, ...], strategies: tuple[str, ...], preset: str) -> None:
    """Check that every backbone and strategy is registered and has ``preset``.

    Raises:
        RegistryError: an unknown backbone or strategy name.
        ConfigError: a backbone without ``preset``.
    """
    for name in backbones:
        spec = BACKBONES.get(name)
        presets = getattr(spec, "presets", None)
        if presets is not None and preset not in presets:
            raise ConfigError(
                f"backbone {name!r} has no preset {preset!r}; its presets are {sorted(presets)}"
            )
    for name in strategies:
        STRATEGIES.get(name)


def _train_options(train: dict[str, Any], config_class: type) -> dict[str, Any]:
    known = {item.name for item in dataclasses.fields(config_class)}
    for key in train:
        if key in _TASK_FIELDS:
            raise ConfigError(
                f"training option {key!r} is set per task by the matrix; "
                f"set it with the matrix key or --{key.replace('_', '-')} instead"
            )
        if key not in known:
            raise ConfigError(
                f"unknown training option {key!r}; TrainConfig fields are {sorted(known)}"
            )
    return {key: tuple(value) if isinstance(value, list) else value for key, value in train.items()}


def _make_config(config_class: type, fields: dict[str, Any], matrix_name: str):
    try:
        return config_class(**fields)
    except ConfigError as error:
        raise ConfigError(f"matrix {matrix_name!r}: {error}") from None
    except (TypeError, ValueError) as error:
        raise ConfigError(
            f"matrix {matrix_name!r}: invalid training options {fields}: {error}"
        ) from None

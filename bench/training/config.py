"""The configuration of one training task, with a stable hash for resuming.

Example:
    >>> from bench.training.config import TrainConfig
    >>> config = TrainConfig(backbone="unet", strategy="curriculum", epochs=12)
    >>> TrainConfig.from_dict(config.to_dict()) == config
    True
    >>> len(config.config_hash())
    64

Every field that can change the trained weights enters ``config_hash``. The
fields in ``UNHASHED_FIELDS`` only change where or how fast a task runs, so a
task started on one device may be resumed on another.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any

from bench.errors import ConfigError

__all__ = ["TrainConfig", "UNHASHED_FIELDS", "BUDGET_MODES", "DEVICES"]

# Fields left out of ``config_hash``: they change speed or placement, not the method.
UNHASHED_FIELDS = ("device", "compile", "checkpoint_every")

BUDGET_MODES = ("epochs", "equal-images")
DEVICES = ("auto", "cpu", "cuda", "mps")

_TUPLE_FIELDS = ("stage_epochs", "stage_batch_sizes", "w_fg", "w_bg")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines one training task (backbone × strategy × seed).

    Attributes:
        backbone: registered backbone name, e.g. ``"unet"``.
        preset: backbone size preset, e.g. ``"small"``.
        strategy: registered strategy name (``bench list strategies``).
        seed: seed of Python, NumPy and torch, and of the epoch shuffles.
        epochs: the standard strategy's number of epochs; for a curriculum,
            the total that is split over the stages unless ``stage_epochs``
            is given.
        stage_epochs: epochs per curriculum stage, e.g. ``(300, 300, 400)``.
        batch_size: batch size of the standard strategy.
        stage_batch_sizes: batch size of each curriculum stage.
        w_fg: scar Dice weight per curriculum stage. The standard strategy
            uses the last entry, so ``w_fg=(0.7,)`` sets it alone.
        w_bg: background Dice weight per curriculum stage, as ``w_fg``.
        alpha: focal-loss weight of scar pixels (background pixels get ``1 - alpha``).
        beta: weight of the focal term in ``L = L_wDice + beta * L_focal``.
        gamma: focal-loss focusing exponent.
        learning_rate: Adam learning rate.
        weight_decay: Adam weight decay (L2 penalty).
        spike_k: a per-sample loss more than ``spike_k`` robust standard
            deviations above that sample's running median is a spike.
        spike_r: a slice that spiked in one curriculum stage appears
            ``spike_r`` times per epoch in the next stage.
        spike_window: number of preceding epochs of the same stage that form
            the running median and its median absolute deviation.
        spike_min_history: epochs of the stage a slice needs before it can spike.
        budget: ``"epochs"`` (each strategy trains its own epochs) or
            ``"equal-images"`` (curriculum stage epochs are scaled so that the
            task trains on as many images as ``epochs`` standard epochs would).
        image_size: side of the square slices in pixels; the data must match.
        deterministic: use deterministic kernels, so that a CPU run and its
            resumed copy end with identical weights.
        compile: wrap the model in ``torch.compile`` for training.
        checkpoint_every: write ``checkpoint.pt`` every this many epochs (and
            at every stage end).
        device: ``"auto"`` (cuda, then mps, then cpu), ``"cpu"``, ``"cuda"``,
            ``"cuda:1"`` or ``"mps"``.
        backbone_options: extra keyword arguments of the backbone builder.
    """

    backbone: str
    preset: str = "small"
    strategy: str = "standard"
    seed: int = 0
    epochs: int = 100
    stage_epochs: tuple[int, ...] | None = None
    batch_size: int = 32
    stage_batch_sizes: tuple[int, ...] = (32, 4, 4)
    w_fg: tuple[float, ...] = (0.6, 0.75, 0.8)
    w_bg: tuple[float, ...] = (0.4, 0.25, 0.2)
    alpha: float = 0.25
    beta: float = 0.5
    gamma: float = 2.0
    learning_rate: float = 1e-4
    weight_decay: float = 1e-10
    spike_k: float = 3.0
    spike_r: int = 2
    spike_window: int = 10
    spike_min_history: int = 3
    budget: str = "epochs"
    image_size: int = 64
    deterministic: bool = True
    compile: bool = False
    checkpoint_every: int = 10
    device: str = "auto"
    backbone_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in _TUPLE_FIELDS:
            value = getattr(self, name)
            if value is not None and not isinstance(value, tuple):
                object.__setattr__(self, name, _as_tuple(name, value))
        object.__setattr__(self, "backbone_options", dict(self.backbone_options or {}))
        _validate(self)

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as a JSON-safe dict (tuples become lists)."""
        data = dataclasses.asdict(self)
        for name in _TUPLE_FIELDS:
            if data[name] is not None:
                data[name] = list(data[name])
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Build a config from ``to_dict`` output, such as a task's ``config.json``.

        Raises:
            ConfigError: a key is not a field, or a value is invalid.
        """
        known = {item.name for item in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                f"unknown training option(s) {unknown}; valid options are {sorted(known)}"
            )
        try:
            return cls(**data)
        except TypeError as error:
            raise ConfigError(f"invalid training configuration {data!r}: {error}") from None

    def config_hash(self) -> str:
        """Return the sha256 hex digest of the canonical JSON of the hashed fields."""
        data = {key: value for key, value in self.to_dict().items() if key not in UNHASHED_FIELDS}
        canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _as_tuple(name: str, value: Any) -> tuple:
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise ConfigError(f"training option {name}={value!r} must be a list of numbers")
    return tuple(value)


def _validate(config: TrainConfig) -> None:
    _require_text(config, "backbone", "preset", "strategy")
    _require_int(config, "seed", minimum=0)
    _require_int(config, "epochs", minimum=1)
    _require_int(config, "batch_size", minimum=1)
    _require_int(config, "spike_r", minimum=1)
    _require_int(config, "spike_window", minimum=1)
    _require_int(config, "spike_min_history", minimum=1)
    _require_int(config, "image_size", minimum=8)
    _require_int(config, "checkpoint_every", minimum=1)
    _validate_stage_lists(config)
    _validate_numbers(config)
    _validate_choices(config)
    _validate_backbone_options(config)


def _require_text(config: TrainConfig, *names: str) -> None:
    for name in names:
        value = getattr(config, name)
        if not isinstance(value, str) or not value:
            raise ConfigError(f"training option {name}={value!r} must be a non-empty name")


def _require_int(config: TrainConfig, name: str, *, minimum: int) -> None:
    value = getattr(config, name)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"training option {name}={value!r} must be an integer >= {minimum}")


def _validate_stage_lists(config: TrainConfig) -> None:
    if config.stage_epochs is not None:
        if not config.stage_epochs or not all(_is_count(v, 1) for v in config.stage_epochs):
            raise ConfigError(
                f"training option stage_epochs={config.stage_epochs!r} must list one "
                "integer >= 1 per curriculum stage, e.g. (300, 300, 400)"
            )
    if not config.stage_batch_sizes or not all(_is_count(v, 1) for v in config.stage_batch_sizes):
        raise ConfigError(
            f"training option stage_batch_sizes={config.stage_batch_sizes!r} must list "
            "one integer >= 1 per curriculum stage, e.g. (32, 4, 4)"
        )
    for name in ("w_fg", "w_bg"):
        weights = getattr(config, name)
        if not weights or not all(_is_number(v) and 0.0 <= v <= 1.0 for v in weights):
            raise ConfigError(
                f"training option {name}={weights!r} must list one weight in [0, 1] "
                "per curriculum stage"
            )
    if len(config.w_fg) != len(config.w_bg):
        raise ConfigError(
            f"w_fg={config.w_fg!r} and w_bg={config.w_bg!r} must have the same length "
            "(one weight pair per curriculum stage)"
        )


def _validate_numbers(config: TrainConfig) -> None:
    checks = {
        "alpha": (0.0, 1.0),
        "beta": (0.0, math.inf),
        "gamma": (0.0, math.inf),
        "weight_decay": (0.0, math.inf),
        "spike_k": (0.0, math.inf),
    }
    for name, (low, high) in checks.items():
        value = getattr(config, name)
        if not _is_number(value) or not low <= value <= high:
            raise ConfigError(
                f"training option {name}={value!r} must be a number in [{low}, {high}]"
            )
    if not _is_number(config.learning_rate) or not config.learning_rate > 0:
        raise ConfigError(
            f"training option learning_rate={config.learning_rate!r} must be a number > 0"
        )


def _validate_choices(config: TrainConfig) -> None:
    if config.budget not in BUDGET_MODES:
        raise ConfigError(
            f"training option budget={config.budget!r} is invalid; choose one of {list(BUDGET_MODES)}"
        )
    device_kind = config.device.split(":")[0] if isinstance(config.device, str) else None
    if device_kind not in DEVICES:
        raise ConfigError(
            f"training option device={config.device!r} is invalid; choose one of "
            f"{list(DEVICES)} or an indexed device such as 'cuda:1'"
        )
    for name in ("deterministic", "compile"):
        if not isinstance(getattr(config, name), bool):
            raise ConfigError(
                f"training option {name}={getattr(config, name)!r} must be true or false"
            )


def _validate_backbone_options(config: TrainConfig) -> None:
    try:
        json.dumps(config.backbone_options, sort_keys=True)
    except (TypeError, ValueError) as error:
        raise ConfigError(
            f"backbone_options={config.backbone_options!r} must be JSON-safe "
            f"(numbers, strings, lists, dicts): {error}"
        ) from None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_count(value: Any, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum

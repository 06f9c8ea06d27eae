"""Task matrices: which backbones, strategies and seeds a run trains, on which data.

The built-in matrices (``smoke``, ``emidec-cpu``, ``full``) register in
``bench.registry.MATRICES`` when this module is imported. A YAML file with the
schema in ``docs/runs.md`` defines a user matrix.

Example:
    >>> from bench.runs.matrices import resolve_matrix
    >>> matrix = resolve_matrix("smoke", seeds="0,1")
    >>> matrix.seeds
    (0, 1)
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from bench.errors import ConfigError
from bench.registry import MATRICES

__all__ = [
    "Matrix",
    "STANDARD_BACKBONES",
    "SMOKE_EPOCHS",
    "SMOKE_HYPERPARAMETERS",
    "EMIDEC_CPU_EPOCHS",
    "FULL_EPOCHS",
    "STUDY_HYPERPARAMETERS",
    "resolve_matrix",
    "load_matrix_yaml",
    "parse_seeds",
    "parse_names",
]

logger = logging.getLogger(__name__)

STANDARD_BACKBONES = ("unet", "attention_unet", "transunet", "scarnet")

# Epochs of the built-in matrices, kept together so they can be tuned in one place.
# They aim at 2 CPU cores: all 8 smoke tasks in a few minutes (3 min measured on a
# loaded 2-core machine at 12 epochs) and emidec-cpu in under an hour. Re-measure
# them when a backbone or the engine changes.
SMOKE_EPOCHS = 12
EMIDEC_CPU_EPOCHS = 120
FULL_EPOCHS = 1000

# The smoke matrix trains at a higher learning rate than the study, so that 12 epochs
# on 192 phantom slices reach a Dice the regression gate can watch. Its median Dice
# per task is 0.47-0.76 at 1e-3, against 0-0.37 at the study's 1e-4 and 3 epochs.
SMOKE_HYPERPARAMETERS: dict[str, Any] = {"learning_rate": 1e-3}

# Optimiser and loss settings of the study (Adam; weighted Dice + focal loss;
# curriculum batch sizes and per-stage loss weights).
STUDY_HYPERPARAMETERS: dict[str, Any] = {
    "learning_rate": 1e-4,
    "weight_decay": 1e-10,
    "batch_size": 32,
    "stage_batch_sizes": [32, 4, 4],
    "w_fg": [0.6, 0.75, 0.8],
    "w_bg": [0.4, 0.25, 0.2],
    "alpha": 0.25,
    "beta": 0.5,
    "gamma": 2.0,
}

_YAML_KEYS = {
    "name",
    "description",
    "dataset",
    "backbones",
    "preset",
    "strategies",
    "seeds",
    "epochs",
    "test_fraction",
    "split_seed",
    "train",
}


@dataclass(frozen=True)
class Matrix:
    """A set of tasks: every backbone × strategy × seed on one dataset.

    Attributes:
        name: matrix name; also the default run id.
        description: one line for ``bench list matrices``.
        dataset: descriptor YAML, manifest CSV or registered dataset name;
            ``None`` when the user must pass ``--dataset``.
        backbones: registered backbone names.
        preset: backbone preset, the same for every backbone (``small``, ``base``).
        strategies: registered strategy names.
        seeds: training seeds.
        epochs: training epochs per task (curriculum: total over all stages).
        train: further ``TrainConfig`` fields, e.g. ``learning_rate``, ``budget``, ``device``.
        test_fraction: fraction of patients in the test split.
        split_seed: seed of the patient-level split.
        dataset_hint: what to tell a user who gave no dataset.
    """

    name: str
    description: str
    dataset: str | None
    backbones: tuple[str, ...]
    preset: str
    strategies: tuple[str, ...]
    seeds: tuple[int, ...]
    epochs: int
    train: dict[str, Any] = field(default_factory=dict)
    test_fraction: float = 0.2
    split_seed: int = 0
    dataset_hint: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Return the matrix as JSON-safe data (stored in ``run.json``)."""
        data = asdict(self)
        for key in ("backbones", "strategies", "seeds"):
            data[key] = list(data[key])
        return data

    def with_overrides(
        self,
        *,
        dataset: str | None = None,
        backbones: str | tuple[str, ...] | None = None,
        strategies: str | tuple[str, ...] | None = None,
        seeds: str | tuple[int, ...] | None = None,
        epochs: int | None = None,
        device: str | None = None,
    ) -> Matrix:
        """Return a copy with the command-line overrides applied (``None`` keeps a value).

        A ``dataset`` path relative to the working folder is made absolute.
        ``backbones`` and ``strategies`` accept comma-separated strings; ``seeds``
        accepts ``"0,1,2"`` or a range ``"0-2"``.

        Raises:
            ConfigError: a seed list that does not parse or an epoch count below 1.
        """
        changes: dict[str, Any] = {}
        if dataset is not None:
            # Stored absolute in run.json, so `bench report` finds it from any folder.
            changes["dataset"] = _resolve_relative(dataset, Path.cwd())
        if backbones is not None:
            changes["backbones"] = parse_names(backbones, "backbone")
        if strategies is not None:
            changes["strategies"] = parse_names(strategies, "strategy")
        if seeds is not None:
            changes["seeds"] = parse_seeds(seeds)
        if epochs is not None:
            changes["epochs"] = _check_epochs(epochs, "--epochs")
        if device is not None:
            changes["train"] = {**self.train, "device": device}
        return replace(self, **changes)


def resolve_matrix(name_or_path: str, **overrides: Any) -> Matrix:
    """Return the registered matrix or the YAML matrix file, with overrides applied.

    Args:
        name_or_path: a name in ``MATRICES`` or a path ending in ``.yaml``/``.yml``.
        **overrides: keyword arguments of ``Matrix.with_overrides``.

    Raises:
        RegistryError: an unknown matrix name (with close matches).
        ConfigError: an invalid YAML matrix or override.
    """
    if name_or_path.endswith((".yaml", ".yml")):
        matrix = load_matrix_yaml(name_or_path)
    else:
        matrix = MATRICES.get(name_or_path)
    return matrix.with_overrides(**overrides)


def load_matrix_yaml(path: str | Path) -> Matrix:
    """Read a user matrix from a YAML file (schema in ``docs/runs.md``).

    Raises:
        ConfigError: the file is missing, not a mapping, has unknown keys or invalid values.
    """
    path = Path(path)
    data = _read_yaml_mapping(path)

    unknown = sorted(set(data) - _YAML_KEYS)
    if unknown:
        raise ConfigError(
            f"matrix file {path}: unknown key(s) {unknown}; allowed keys are {sorted(_YAML_KEYS)}"
        )
    for key in ("backbones", "strategies"):
        if key not in data:
            raise ConfigError(f"matrix file {path}: missing required key {key!r}")

    train = data.get("train") or {}
    if not isinstance(train, dict):
        raise ConfigError(f"matrix file {path}: 'train' must be a mapping, got {train!r}")

    dataset = data.get("dataset")
    if dataset is not None:
        dataset = _resolve_relative(str(dataset), path.parent)

    return Matrix(
        name=str(data.get("name") or path.stem),
        description=str(data.get("description") or f"user matrix from {path.name}"),
        dataset=dataset,
        backbones=parse_names(data["backbones"], "backbone", source=str(path)),
        preset=str(data.get("preset", "small")),
        strategies=parse_names(data["strategies"], "strategy", source=str(path)),
        seeds=parse_seeds(data.get("seeds", [0]), source=str(path)),
        epochs=_check_epochs(data.get("epochs", 10), f"matrix file {path}: 'epochs'"),
        train=dict(train),
        test_fraction=_check_fraction(data.get("test_fraction", 0.2), path),
        split_seed=int(data.get("split_seed", 0)),
    )


def parse_seeds(value: Any, *, source: str = "--seeds") -> tuple[int, ...]:
    """Parse seeds from ``"0,1,2"``, ``"0-2"``, an int or a list of ints.

    Raises:
        ConfigError: an empty list, a negative or non-integer seed, or a duplicate.
    """
    if isinstance(value, bool):
        raise ConfigError(f"{source}: invalid seed list {value!r}; write e.g. 0,1,2 or 0-2")
    if isinstance(value, int):
        items: list[Any] = [value]
    elif isinstance(value, str):
        items = _expand_seed_text(value, source)
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise ConfigError(f"{source}: invalid seed list {value!r}; write e.g. 0,1,2 or 0-2")

    seeds = tuple(_to_seed(item, value, source) for item in items)
    if not seeds:
        raise ConfigError(f"{source}: the seed list {value!r} is empty; give at least one seed")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"{source}: the seed list {value!r} repeats a seed; list each seed once")
    return seeds


def parse_names(value: Any, kind: str, *, source: str | None = None) -> tuple[str, ...]:
    """Parse a comma-separated string or a list into a tuple of names.

    Raises:
        ConfigError: the list is empty or not a string/list.
    """
    where = source or f"--{kind}"
    if isinstance(value, str):
        names = [part.strip() for part in value.split(",") if part.strip()]
    elif isinstance(value, (list, tuple)):
        names = [str(part).strip() for part in value]
    else:
        raise ConfigError(f"{where}: expected a list of {kind} names, got {value!r}")
    if not names:
        raise ConfigError(f"{where}: no {kind} name given; list at least one")
    return tuple(dict.fromkeys(names))


def _expand_seed_text(text: str, source: str) -> list[Any]:
    items: list[Any] = []
    for part in text.split(","):
        part = part.strip()
        if "-" in part[1:]:
            start, _, stop = part.partition("-")
            first, last = _to_seed(start, text, source), _to_seed(stop, text, source)
            if last < first:
                raise ConfigError(
                    f"{source}: invalid seed range {part!r}; write it low-high, e.g. 0-2"
                )
            items.extend(range(first, last + 1))
        else:
            items.append(part)
    return items


def _to_seed(item: Any, whole: Any, source: str) -> int:
    try:
        seed = int(str(item).strip())
    except ValueError:
        raise ConfigError(
            f"{source}: invalid seed {item!r} in {whole!r}; write e.g. 0,1,2 or 0-2"
        ) from None
    if seed < 0 or str(seed) != str(item).strip().lstrip("+"):
        raise ConfigError(f"{source}: invalid seed {item!r} in {whole!r}; seeds are integers >= 0")
    return seed


def _check_epochs(value: Any, where: str) -> int:
    text = str(value).strip()
    if isinstance(value, bool) or not text.isdigit() or int(text) < 1:
        raise ConfigError(f"{where}: invalid epoch count {value!r}; give an integer >= 1")
    return int(text)


def _check_fraction(value: Any, path: Path) -> float:
    try:
        fraction = float(value)
    except (TypeError, ValueError):
        fraction = -1.0
    if not 0.0 < fraction < 1.0:
        raise ConfigError(
            f"matrix file {path}: invalid test_fraction {value!r}; give a number between 0 and 1"
        )
    return fraction


def _read_yaml_mapping(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(
            f"matrix file {path} not found; give a registered matrix name or a YAML path"
        )
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise ConfigError(f"matrix file {path} is not valid YAML: {error}") from None
    if not isinstance(data, dict):
        raise ConfigError(
            f"matrix file {path} must contain a mapping of keys, got {type(data).__name__}"
        )
    return data


def _resolve_relative(dataset: str, folder: Path) -> str:
    """Resolve a dataset path relative to the matrix file; leave registered names as they are."""
    if dataset.endswith((".yaml", ".yml", ".csv")) and not Path(dataset).is_absolute():
        return str((folder / dataset).resolve())
    return dataset


EMIDEC_HINT = (
    "the emidec-cpu matrix needs the imported EMIDEC descriptor: run "
    "`bench data import emidec SRC --out DIR --scar-only`, then "
    "`bench data difficulty DIR/emidec.yaml`, then "
    "`bench run --matrix emidec-cpu --dataset DIR/emidec.yaml`"
)

MATRICES.register(
    "smoke",
    Matrix(
        name="smoke",
        description="synthetic phantoms, small presets, 4 backbones x standard/curriculum, seed 0, "
        f"{SMOKE_EPOCHS} epochs at learning rate 1e-3 (CPU, minutes)",
        dataset="synthetic",
        backbones=STANDARD_BACKBONES,
        preset="small",
        strategies=("standard", "curriculum"),
        seeds=(0,),
        epochs=SMOKE_EPOCHS,
        train=dict(SMOKE_HYPERPARAMETERS),
    ),
)

MATRICES.register(
    "emidec-cpu",
    Matrix(
        name="emidec-cpu",
        description="EMIDEC scar slices (--dataset DIR/emidec.yaml), small presets, "
        f"4 backbones x standard/curriculum, seed 0, {EMIDEC_CPU_EPOCHS} epochs (CPU, about an hour)",
        dataset=None,
        backbones=STANDARD_BACKBONES,
        preset="small",
        strategies=("standard", "curriculum"),
        seeds=(0,),
        epochs=EMIDEC_CPU_EPOCHS,
        train=dict(STUDY_HYPERPARAMETERS),
        dataset_hint=EMIDEC_HINT,
    ),
)

MATRICES.register(
    "full",
    Matrix(
        name="full",
        description="the study's settings: base presets, 4 backbones x standard/curriculum, "
        f"seeds 0-2, {FULL_EPOCHS} epochs (GPUs)",
        dataset="synthetic",
        backbones=STANDARD_BACKBONES,
        preset="base",
        strategies=("standard", "curriculum"),
        seeds=(0, 1, 2),
        epochs=FULL_EPOCHS,
        train=dict(STUDY_HYPERPARAMETERS),
    ),
)

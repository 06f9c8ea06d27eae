"""Training strategies: standard, curriculum and its variants, and loss-spike detection.

Example:
    >>> from bench.registry import STRATEGIES
    >>> from bench.training.config import TrainConfig
    >>> strategy = STRATEGIES.get("curriculum")(TrainConfig(backbone="unet", epochs=12))
    >>> stages = strategy.stages(train_data)  # doctest: +SKIP
    >>> [(stage.name, len(stage.indices), stage.batch_size) for stage in stages]  # doctest: +SKIP
    [('easy', 120, 32), ('easy+medium', 260, 4), ('easy+medium+hard', 400, 4)]

A strategy turns the training slices into stages. The engine
(``bench.training.engine``) trains every stage on the same model and
optimiser. A new strategy subclasses ``Strategy`` and registers itself with
``STRATEGIES.register(name, cls)``.

Loss-spike re-selection: the engine records each slice's loss every epoch.
A slice spikes at an epoch when its loss exceeds its running level by more
than ``spike_k`` robust standard deviations. The running level is the median
of its own losses in the preceding ``spike_window`` epochs of the stage. The
robust standard deviation is ``1.4826 * MAD`` of those same losses, at least
``MIN_ROBUST_SD``. Slices that
spiked in a stage appear ``spike_r`` times per epoch in the next stage.
Defaults: ``spike_k = 3``, ``spike_r = 2``, ``spike_window = 10`` and at
least ``spike_min_history = 3`` earlier epochs before a slice can spike.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from bench.data.prepared import PreparedDataset
from bench.errors import ConfigError
from bench.registry import STRATEGIES
from bench.training.config import TrainConfig

__all__ = [
    "Strategy",
    "Stage",
    "StandardStrategy",
    "CurriculumStrategy",
    "CurriculumNoReselectStrategy",
    "AntiCurriculumStrategy",
    "SpikeReport",
    "DIFFICULTY_NAMES",
    "MAD_TO_SD",
    "MIN_ROBUST_SD",
    "detect_spikes",
    "split_epochs",
    "stage_epochs_for_budget",
]

logger = logging.getLogger(__name__)

DIFFICULTY_NAMES = {0: "easy", 1: "medium", 2: "hard"}

# Scale that turns a median absolute deviation into a standard deviation for normal data.
MAD_TO_SD = 1.4826

# Floor of the robust standard deviation, in loss units: a slice whose recent
# losses are all equal would otherwise spike on any increase, however small.
MIN_ROBUST_SD = 1e-3


@dataclass(frozen=True)
class Stage:
    """One training stage.

    Attributes:
        number: 1-based position in the schedule.
        name: readable name, e.g. ``"easy+medium"`` or ``"all"``.
        indices: unique indices into the training data, ascending.
        batch_size: slices per optimiser step.
        w_fg: scar Dice weight of the loss.
        w_bg: background Dice weight of the loss.
        planned_epochs: epochs under ``budget="epochs"``; under
            ``budget="equal-images"`` the relative share of the image budget.
    """

    number: int
    name: str
    indices: np.ndarray
    batch_size: int
    w_fg: float
    w_bg: float
    planned_epochs: int


class Strategy:
    """Base class of training strategies.

    Args:
        config: the task's configuration.

    Subclasses set ``description`` and implement ``stages``. ``reselects`` is
    True when slices that spiked in one stage are oversampled in the next.
    """

    description: ClassVar[str] = ""
    reselects: ClassVar[bool] = False

    def __init__(self, config: TrainConfig) -> None:
        self.config = config

    def stages(self, data: PreparedDataset) -> list[Stage]:
        """Return the stages of this strategy on the training slices ``data``.

        Raises:
            ConfigError: the data or the configuration does not fit the strategy.
        """
        raise NotImplementedError


class StandardStrategy(Strategy):
    """All training slices, reshuffled every epoch, one loss setting."""

    description = (
        "All training slices, reshuffled each epoch, batch_size per step, "
        "the last entry of w_fg and w_bg as loss weights."
    )

    def stages(self, data: PreparedDataset) -> list[Stage]:
        _require_slices(data)
        if self.config.stage_epochs is not None:
            logger.info("strategy 'standard' ignores stage_epochs=%s", self.config.stage_epochs)
        return [
            Stage(
                number=1,
                name="all",
                indices=np.arange(len(data), dtype=np.int64),
                batch_size=self.config.batch_size,
                w_fg=self.config.w_fg[-1],
                w_bg=self.config.w_bg[-1],
                planned_epochs=self.config.epochs,
            )
        ]


class CurriculumStrategy(Strategy):
    """Stages by difficulty on cumulative sets, easy first, with loss-spike re-selection."""

    description = (
        "Three stages on cumulative sets (easy, +medium, +hard), batch sizes "
        "stage_batch_sizes, loss weights w_fg/w_bg per stage; slices whose loss "
        "spiked in a stage are oversampled spike_r times in the next."
    )
    reselects = True
    # Difficulty levels in the order in which stages add them.
    level_order: ClassVar[tuple[int, ...]] = (0, 1, 2)

    def stages(self, data: PreparedDataset) -> list[Stage]:
        _require_slices(data)
        difficulty = _require_difficulty(data)
        stage_count = len(self.level_order)
        batch_sizes = _per_stage(self.config, "stage_batch_sizes", stage_count)
        w_fg = _per_stage(self.config, "w_fg", stage_count)
        w_bg = _per_stage(self.config, "w_bg", stage_count)
        planned = self._planned_epochs(stage_count)

        stages = []
        for position in range(stage_count):
            levels = self.level_order[: position + 1]
            indices = np.flatnonzero(np.isin(difficulty, levels)).astype(np.int64)
            name = "+".join(DIFFICULTY_NAMES[level] for level in levels)
            if indices.size == 0:
                raise ConfigError(_empty_stage_message(data, position + 1, name, difficulty))
            stages.append(
                Stage(
                    position + 1,
                    name,
                    indices,
                    batch_sizes[position],
                    w_fg[position],
                    w_bg[position],
                    planned[position],
                )
            )
        return stages

    def _planned_epochs(self, stage_count: int) -> tuple[int, ...]:
        if self.config.stage_epochs is None:
            return split_epochs(self.config.epochs, stage_count)
        if len(self.config.stage_epochs) != stage_count:
            raise ConfigError(
                f"stage_epochs={self.config.stage_epochs!r} has {len(self.config.stage_epochs)} "
                f"entries; strategy {self.config.strategy!r} has {stage_count} stages"
            )
        return self.config.stage_epochs


class CurriculumNoReselectStrategy(CurriculumStrategy):
    """The curriculum without oversampling spiked slices (spikes are still recorded)."""

    description = (
        "The curriculum's stages and loss weights; spikes are recorded but no slice is oversampled."
    )
    reselects = False


class AntiCurriculumStrategy(CurriculumStrategy):
    """The curriculum in reverse: hard slices first, then medium, then easy."""

    description = (
        "Three stages on cumulative sets, hard first (hard, +medium, +easy), "
        "with the curriculum's batch sizes, loss weights and re-selection."
    )
    level_order = (2, 1, 0)


@dataclass(frozen=True)
class SpikeReport:
    """Result of ``detect_spikes`` for the slices of one stage at one epoch.

    Attributes:
        flagged: bool per slice, True where the loss spiked.
        level: running median of each slice's preceding losses (NaN without history).
        spike_size: current loss minus ``level``, in loss units.
        robust_z: ``spike_size`` divided by the robust standard deviation.
    """

    flagged: np.ndarray
    level: np.ndarray
    spike_size: np.ndarray
    robust_z: np.ndarray


def detect_spikes(
    history: np.ndarray, current: np.ndarray, *, k: float, min_history: int
) -> SpikeReport:
    """Flag slices whose current loss is more than ``k`` robust SDs above their running median.

    Args:
        history: ``(epochs, slices)`` losses of the preceding epochs of the
            stage (the trailing window), NaN where a slice has no loss.
        current: ``(slices,)`` losses of the current epoch.
        k: threshold in robust standard deviations (``1.4826 * MAD``, at
            least ``MIN_ROBUST_SD``).
        min_history: slices with fewer non-NaN losses in ``history`` never spike.
    """
    current = np.asarray(current, dtype=np.float64)
    slice_count = current.shape[0]
    history = np.asarray(history, dtype=np.float64).reshape(-1, slice_count)
    counts = np.sum(~np.isnan(history), axis=0)
    enough = counts >= max(min_history, 1)

    level = np.full(slice_count, np.nan)
    robust_sd = np.full(slice_count, np.nan)
    if enough.any():
        window = history[:, enough]
        level[enough] = np.nanmedian(window, axis=0)
        deviation = np.nanmedian(np.abs(window - level[enough]), axis=0)
        robust_sd[enough] = np.maximum(MAD_TO_SD * deviation, MIN_ROBUST_SD)

    spike_size = current - level
    robust_z = spike_size / robust_sd
    flagged = enough & (robust_z > k)
    return SpikeReport(flagged=flagged, level=level, spike_size=spike_size, robust_z=robust_z)


def split_epochs(total: int, stage_count: int) -> tuple[int, ...]:
    """Split ``total`` epochs over stages as evenly as possible, later stages taking the remainder.

    Raises:
        ConfigError: ``total`` is smaller than ``stage_count``.
    """
    if total < stage_count:
        raise ConfigError(
            f"epochs={total} cannot be split over {stage_count} curriculum stages; "
            f"use epochs >= {stage_count} or set stage_epochs"
        )
    base, remainder = divmod(total, stage_count)
    return tuple(
        base + (1 if position >= stage_count - remainder else 0) for position in range(stage_count)
    )


def stage_epochs_for_budget(
    config: TrainConfig,
    stages: list[Stage],
    position: int,
    images_per_epoch: int,
    images_seen: int,
    reference_images: int,
) -> int:
    """Return the epochs of stage ``stages[position]``, decided when that stage starts.

    Under ``budget="epochs"`` this is the stage's ``planned_epochs``. Under
    ``budget="equal-images"`` the task must see ``reference_images`` images
    (the standard strategy's ``epochs`` × training slices). Each stage gets
    the share ``planned_epochs / sum(planned_epochs of this and later stages)``
    of the images still to be seen, divided by its images per epoch (which
    include oversampled slices) and rounded, at least 1 epoch. The last stage
    takes all that remain, so the total misses the reference by less than half
    an epoch of the last stage, or exceeds it when earlier stages already used
    it up.

    Args:
        config: the task's configuration.
        stages: every stage of the task.
        position: 0-based index of the stage that starts.
        images_per_epoch: slices per epoch in this stage, oversampling included.
        images_seen: images seen by the earlier stages.
        reference_images: the image budget of the whole task.
    """
    stage = stages[position]
    if config.budget == "epochs":
        return stage.planned_epochs

    remaining_images = max(reference_images - images_seen, 0)
    remaining_weight = sum(later.planned_epochs for later in stages[position:])
    share = remaining_images * stage.planned_epochs / remaining_weight
    return max(1, int(round(share / images_per_epoch)))


def _require_slices(data: PreparedDataset) -> None:
    if len(data) == 0:
        raise ConfigError(f"dataset {data.name!r} has no training slices; check the split")


def _require_difficulty(data: PreparedDataset) -> np.ndarray:
    if not data.has_difficulty:
        missing = data.cases.loc[data.cases["difficulty"].isna(), "case_id"].tolist()
        raise ConfigError(
            f"a curriculum needs a difficulty level for every training slice, but dataset "
            f"{data.name!r} has none for {len(missing)} slice(s), e.g. {missing[:3]}; "
            f"run `bench data difficulty {data.name}` first"
        )
    difficulty = data.cases["difficulty"].to_numpy(dtype=np.int64)
    unknown = sorted(set(difficulty.tolist()) - set(DIFFICULTY_NAMES))
    if unknown:
        raise ConfigError(
            f"dataset {data.name!r} has difficulty levels {unknown}; only 0 (easy), "
            "1 (medium) and 2 (hard) are valid; re-run `bench data difficulty`"
        )
    return difficulty


def _per_stage(config: TrainConfig, name: str, stage_count: int) -> tuple:
    values = getattr(config, name)
    if len(values) == 1:
        return values * stage_count
    if len(values) != stage_count:
        raise ConfigError(
            f"{name}={values!r} has {len(values)} entries; strategy {config.strategy!r} "
            f"has {stage_count} stages, so give {stage_count} entries or one for all"
        )
    return values


def _empty_stage_message(
    data: PreparedDataset, number: int, name: str, difficulty: np.ndarray
) -> str:
    counts = ", ".join(
        f"{np.sum(difficulty == level)} {label}" for level, label in DIFFICULTY_NAMES.items()
    )
    return (
        f"curriculum stage {number} ({name}) has no training slices in dataset "
        f"{data.name!r} (training slices by difficulty: {counts}); re-estimate "
        "difficulty with `bench data difficulty` or use the standard strategy"
    )


STRATEGIES.register("standard", StandardStrategy)
STRATEGIES.register("curriculum", CurriculumStrategy)
STRATEGIES.register("curriculum-no-reselect", CurriculumNoReselectStrategy)
STRATEGIES.register("anti-curriculum", AntiCurriculumStrategy)

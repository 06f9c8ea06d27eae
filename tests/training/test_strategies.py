"""Strategies: stages, epochs, budgets and loss-spike detection."""

from __future__ import annotations

import numpy as np
import pytest
from training_phantoms import ring_phantoms

from bench.errors import ConfigError
from bench.registry import STRATEGIES
from bench.training.config import TrainConfig
from bench.training.strategies import (
    MIN_ROBUST_SD,
    detect_spikes,
    split_epochs,
    stage_epochs_for_budget,
)


def stages_of(strategy: str, data, **options):
    config = TrainConfig(backbone="unet", strategy=strategy, **options)
    return STRATEGIES.get(strategy)(config).stages(data)


def test_registry_lists_built_ins():
    names = STRATEGIES.names()
    for name in ("standard", "curriculum", "curriculum-no-reselect", "anti-curriculum"):
        assert name in names


def test_standard_one_stage_all_slices(rings):
    (stage,) = stages_of("standard", rings, epochs=7)
    assert np.array_equal(stage.indices, np.arange(len(rings)))
    assert stage.batch_size == 32
    assert (stage.w_fg, stage.w_bg) == (0.8, 0.2)
    assert stage.planned_epochs == 7


def test_curriculum_cumulative_by_difficulty(rings):
    stages = stages_of("curriculum", rings, epochs=12)
    difficulty = rings.cases["difficulty"].to_numpy(dtype=int)
    assert [stage.name for stage in stages] == ["easy", "easy+medium", "easy+medium+hard"]
    for number, stage in enumerate(stages):
        assert np.array_equal(stage.indices, np.flatnonzero(difficulty <= number))
    assert [stage.batch_size for stage in stages] == [32, 4, 4]
    assert [stage.w_fg for stage in stages] == [0.6, 0.75, 0.8]
    assert [stage.w_bg for stage in stages] == [0.4, 0.25, 0.2]
    assert [stage.planned_epochs for stage in stages] == [4, 4, 4]


def test_anti_curriculum_hard_first(rings):
    stages = stages_of("anti-curriculum", rings, epochs=12)
    difficulty = rings.cases["difficulty"].to_numpy(dtype=int)
    assert [stage.name for stage in stages] == ["hard", "hard+medium", "hard+medium+easy"]
    assert np.array_equal(stages[0].indices, np.flatnonzero(difficulty == 2))
    assert len(stages[2].indices) == len(rings)


def test_stage_epochs_override(rings):
    stages = stages_of("curriculum", rings, stage_epochs=(1, 2, 5))
    assert [stage.planned_epochs for stage in stages] == [1, 2, 5]


def test_stage_epochs_wrong_length(rings):
    with pytest.raises(ConfigError, match="3 stages"):
        stages_of("curriculum", rings, stage_epochs=(1, 2))


def test_split_epochs_remainder_to_later_stages():
    assert split_epochs(10, 3) == (3, 3, 4)
    assert split_epochs(11, 3) == (3, 4, 4)
    with pytest.raises(ConfigError, match="epochs=2"):
        split_epochs(2, 3)


@pytest.mark.parametrize("strategy", ["curriculum", "anti-curriculum", "curriculum-no-reselect"])
def test_curriculum_without_difficulty(strategy):
    data = ring_phantoms(6, with_difficulty=False)
    with pytest.raises(ConfigError, match="bench data difficulty rings"):
        stages_of(strategy, data)


def test_empty_stage_raises(rings):
    no_easy = rings.subset(np.flatnonzero(rings.cases["difficulty"].to_numpy(dtype=int) > 0))
    with pytest.raises(ConfigError, match=r"stage 1 \(easy\) has no training slices.*0 easy"):
        stages_of("curriculum", no_easy)


def test_equal_images_matches_standard_count(rings):
    config = TrainConfig(backbone="unet", strategy="curriculum", epochs=30, budget="equal-images")
    stages = STRATEGIES.get("curriculum")(config).stages(rings)
    reference = 30 * len(rings)
    images_seen = 0
    epochs = []
    for position, stage in enumerate(stages):
        count = stage_epochs_for_budget(
            config, stages, position, len(stage.indices), images_seen, reference
        )
        epochs.append(count)
        images_seen += count * len(stage.indices)
    assert abs(images_seen - reference) <= len(stages[-1].indices) / 2
    assert epochs[0] > epochs[2]


def test_epochs_budget_keeps_planned(rings):
    config = TrainConfig(backbone="unet", strategy="curriculum", epochs=9)
    stages = STRATEGIES.get("curriculum")(config).stages(rings)
    assert stage_epochs_for_budget(config, stages, 1, 999, 0, 10) == 3


def test_spike_flagged_above_robust_threshold():
    history = np.array([[0.50, 0.40], [0.52, 0.41], [0.48, 0.39], [0.50, 0.40]])
    report = detect_spikes(history, np.array([0.80, 0.41]), k=3.0, min_history=3)
    assert report.flagged.tolist() == [True, False]
    assert report.level[0] == pytest.approx(0.50)
    assert report.spike_size[0] == pytest.approx(0.30)
    # MAD of slice 0 is 0.01, so its robust SD is 0.014826.
    assert report.robust_z[0] == pytest.approx(0.30 / 0.014826, rel=1e-4)


def test_spike_needs_min_history():
    history = np.array([[0.5], [0.5]])
    report = detect_spikes(history, np.array([5.0]), k=3.0, min_history=3)
    assert not report.flagged.any()
    assert np.isnan(report.level[0])


def test_spike_sd_floor_on_flat_history():
    history = np.full((5, 1), 0.3)
    small = detect_spikes(history, np.array([0.3 + 2 * MIN_ROBUST_SD]), k=3.0, min_history=3)
    large = detect_spikes(history, np.array([0.3 + 4 * MIN_ROBUST_SD]), k=3.0, min_history=3)
    assert not small.flagged[0]
    assert large.flagged[0]


def test_spike_ignores_drop_in_loss():
    history = np.array([[0.5], [0.6], [0.55]])
    assert not detect_spikes(history, np.array([0.1]), k=0.0, min_history=3).flagged[0]


def test_list_strategies_command():
    from click.testing import CliRunner

    from bench.cli import main

    result = CliRunner().invoke(main, ["list", "strategies"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    for name in ("standard", "curriculum", "curriculum-no-reselect", "anti-curriculum"):
        assert any(line.split()[0] == name for line in lines), name

"""TrainConfig: JSON round trip, hash stability and rejected values."""

from __future__ import annotations

import json

import pytest

from bench.errors import ConfigError
from bench.training.config import TrainConfig


def test_round_trip_through_json():
    config = TrainConfig(
        backbone="unet",
        strategy="curriculum",
        stage_epochs=(2, 3, 4),
        backbone_options={"dropout": 0.1},
    )
    restored = TrainConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert restored == config
    assert restored.stage_epochs == (2, 3, 4)
    assert restored.config_hash() == config.config_hash()


def test_defaults_match_method():
    config = TrainConfig(backbone="unet")
    assert config.batch_size == 32
    assert config.stage_batch_sizes == (32, 4, 4)
    assert config.w_fg == (0.6, 0.75, 0.8)
    assert config.w_bg == (0.4, 0.25, 0.2)
    assert (config.alpha, config.beta, config.gamma) == (0.25, 0.5, 2.0)
    assert config.learning_rate == 1e-4
    assert config.weight_decay == 1e-10


def test_hash_ignores_placement_fields():
    config = TrainConfig(backbone="unet")
    moved = TrainConfig(backbone="unet", device="cpu", compile=True, checkpoint_every=1)
    assert moved.config_hash() == config.config_hash()


@pytest.mark.parametrize(
    "change",
    [{"seed": 1}, {"learning_rate": 2e-4}, {"strategy": "curriculum"}, {"w_fg": (0.5, 0.7, 0.8)}],
)
def test_hash_changes_with_method(change):
    assert (
        TrainConfig(backbone="unet", **change).config_hash()
        != TrainConfig(backbone="unet").config_hash()
    )


@pytest.mark.parametrize(
    "options, message",
    [
        ({"epochs": 0}, "epochs=0"),
        ({"batch_size": 2.5}, "batch_size=2.5"),
        ({"stage_batch_sizes": (32, 0, 4)}, "stage_batch_sizes"),
        ({"w_fg": (0.6, 1.5, 0.8)}, "w_fg"),
        ({"w_fg": (0.6, 0.8)}, "same length"),
        ({"alpha": -0.1}, "alpha=-0.1"),
        ({"learning_rate": 0}, "learning_rate=0"),
        ({"budget": "equal-steps"}, "budget='equal-steps'"),
        ({"device": "tpu"}, "device='tpu'"),
        ({"stage_epochs": (3, 0, 3)}, "stage_epochs"),
        ({"spike_r": 0}, "spike_r=0"),
        ({"backbone_options": {"path": object()}}, "JSON-safe"),
        ({"backbone": ""}, "backbone=''"),
    ],
)
def test_invalid_value_raises_config_error(options, message):
    fields = {"backbone": "unet", **options}
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        TrainConfig(**fields)


def test_unknown_key_raises_config_error():
    with pytest.raises(ConfigError, match="unknown training option"):
        TrainConfig.from_dict({"backbone": "unet", "learning_rat": 1e-3})

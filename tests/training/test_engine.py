"""The training engine on drawn ring phantoms with a tiny backbone."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from training_phantoms import ring_phantoms

from bench.errors import CheckpointError, ConfigError
from bench.training.config import TrainConfig
from bench.training.engine import predict, save_predictions, select_device, train

TASK_FILES = (
    "train_log.csv",
    "sample_losses.csv",
    "reselected.csv",
    "budget.json",
    "checkpoint.pt",
)


def tiny_config(backbone: str, **options) -> TrainConfig:
    fields = dict(
        backbone=backbone,
        image_size=16,
        device="cpu",
        epochs=6,
        learning_rate=1e-2,
        checkpoint_every=2,
    )
    return TrainConfig(**{**fields, **options})


def scar_dice(probabilities: np.ndarray, data) -> float:
    inside = data.myocardium[:, 0].numpy()
    predicted = (probabilities >= 0.5) & inside
    truth = data.scar[:, 0].numpy()
    return 2 * (predicted & truth).sum() / max(predicted.sum() + truth.sum(), 1)


def test_standard_writes_task_files(tmp_path, tiny_backbone, rings):
    result = train(tiny_config(tiny_backbone), rings, tmp_path, progress=False)

    for name in TASK_FILES:
        assert (tmp_path / name).is_file(), name
    log = pd.read_csv(tmp_path / "train_log.csv")
    assert list(log["epoch"]) == [1, 2, 3, 4, 5, 6]
    assert log["images_seen"].iloc[-1] == 6 * len(rings)
    losses = pd.read_csv(tmp_path / "sample_losses.csv")
    assert len(losses) == 6 * len(rings)
    assert set(losses["case_id"]) == set(rings.cases["case_id"])
    budget = json.loads((tmp_path / "budget.json").read_text())
    assert budget == result.budget
    assert budget["total"]["optimizer_steps"] == 6  # 24 slices fit one batch of 32
    assert budget["device"] == "cpu"
    assert not result.model.training


def test_curriculum_budget_per_stage(tmp_path, tiny_backbone, rings):
    config = tiny_config(tiny_backbone, strategy="curriculum", epochs=9)
    result = train(config, rings, tmp_path, progress=False)

    stages = result.budget["stages"]
    assert [entry["slices"] for entry in stages] == [8, 16, 24]
    assert [entry["epochs"] for entry in stages] == [3, 3, 3]
    assert [entry["images_seen"] for entry in stages] == [24, 48, 72]
    # Batch 32 on 8 slices is one step per epoch; batch 4 on 16 and 24 slices is 4 and 6.
    assert [entry["optimizer_steps"] for entry in stages] == [3, 12, 18]
    assert all(entry["wall_time_s"] > 0 for entry in stages)
    log = pd.read_csv(tmp_path / "train_log.csv")
    assert list(log["stage"]) == [1, 1, 1, 2, 2, 2, 3, 3, 3]


def test_equal_images_budget(tmp_path, tiny_backbone, rings):
    config = tiny_config(tiny_backbone, strategy="curriculum", epochs=12, budget="equal-images")
    result = train(config, rings, tmp_path, progress=False)
    reference = 12 * len(rings)
    assert result.budget["reference_images"] == reference
    assert abs(result.budget["total"]["images_seen"] - reference) <= len(rings) / 2
    assert result.budget["stages"][0]["epochs"] > result.budget["stages"][2]["epochs"]


def test_spikes_oversampled_next_stage(tmp_path, tiny_backbone, rings):
    config = tiny_config(
        tiny_backbone, strategy="curriculum", epochs=30, learning_rate=0.5,
        spike_k=0.0, spike_min_history=2, spike_r=3,
    )  # fmt: skip
    result = train(config, rings, tmp_path, progress=False)

    flagged = pd.read_csv(tmp_path / "reselected.csv")
    assert len(flagged) == len(result.flagged) > 0
    assert (flagged["spike_size"] > 0).all()
    stages = result.budget["stages"]
    for previous, entry in zip(stages[:-1], stages[1:], strict=True):
        spiked = flagged.loc[flagged["stage"] == previous["stage"], "case_id"].nunique()
        assert entry["oversampled_slices"] == spiked
        assert entry["images_seen"] == entry["epochs"] * (entry["slices"] + 2 * spiked)
    assert stages[1]["oversampled_slices"] > 0
    assert stages[2]["oversampled_slices"] > 0
    assert not flagged.loc[flagged["stage"] == 3, "oversampled"].any()


def test_no_reselect_records_without_oversampling(tmp_path, tiny_backbone, rings):
    config = tiny_config(
        tiny_backbone, strategy="curriculum-no-reselect", epochs=30, learning_rate=0.5,
        spike_k=0.0, spike_min_history=2,
    )  # fmt: skip
    result = train(config, rings, tmp_path, progress=False)
    assert all(entry["oversampled_slices"] == 0 for entry in result.budget["stages"])
    assert len(result.flagged) > 0
    assert not result.flagged["oversampled"].any()


def test_tiny_model_learns_scar(tmp_path, tiny_backbone):
    data = ring_phantoms(24, size=16, seed=3)
    config = tiny_config(tiny_backbone, epochs=150, learning_rate=3e-2, checkpoint_every=150)
    result = train(config, data, tmp_path, progress=False)
    log = pd.read_csv(tmp_path / "train_log.csv")
    assert log["loss"].iloc[-1] < log["loss"].iloc[0]
    assert scar_dice(predict(result.model, data, device=result.device), data) > 0.6


def test_finished_checkpoint_returns_same_model(tmp_path, tiny_backbone, rings):
    config = tiny_config(tiny_backbone)
    first = train(config, rings, tmp_path, progress=False)
    log_before = (tmp_path / "train_log.csv").read_bytes()
    second = train(config, rings, tmp_path, progress=False)

    assert second.resumed
    assert (tmp_path / "train_log.csv").read_bytes() == log_before
    for name, tensor in first.model.state_dict().items():
        assert torch.equal(second.model.state_dict()[name], tensor), name


def test_foreign_checkpoint_changes_nothing(tmp_path, tiny_backbone, rings):
    train(tiny_config(tiny_backbone), rings, tmp_path, progress=False)
    before = {name: (tmp_path / name).read_bytes() for name in TASK_FILES}

    with pytest.raises(CheckpointError, match="configuration hash"):
        train(tiny_config(tiny_backbone, seed=1), rings, tmp_path, progress=False)
    with pytest.raises(CheckpointError, match="training data fingerprint"):
        train(tiny_config(tiny_backbone), ring_phantoms(24, seed=9), tmp_path, progress=False)
    assert {name: (tmp_path / name).read_bytes() for name in TASK_FILES} == before


def test_other_code_version_rejected(tmp_path, tiny_backbone, rings, monkeypatch):
    train(tiny_config(tiny_backbone), rings, tmp_path, progress=False)
    monkeypatch.setattr("bench.training.checkpoint.__version__", "0.0.0-other")
    with pytest.raises(CheckpointError, match="scarbench version"):
        train(tiny_config(tiny_backbone), rings, tmp_path, progress=False)


def test_corrupt_checkpoint_rejected(tmp_path, tiny_backbone, rings):
    (tmp_path / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="checkpoint.pt"):
        train(tiny_config(tiny_backbone), rings, tmp_path, progress=False)
    assert (tmp_path / "checkpoint.pt").read_bytes() == b"not a checkpoint"


def test_curriculum_without_difficulty_writes_nothing(tmp_path, tiny_backbone):
    data = ring_phantoms(6, with_difficulty=False)
    with pytest.raises(ConfigError, match="bench data difficulty rings"):
        train(
            tiny_config(tiny_backbone, strategy="curriculum"),
            data,
            tmp_path / "task",
            progress=False,
        )
    assert not (tmp_path / "task").exists()


def test_image_size_mismatch(tmp_path, tiny_backbone, rings):
    with pytest.raises(ConfigError, match="16x16 slices but image_size=32"):
        train(tiny_config(tiny_backbone, image_size=32), rings, tmp_path, progress=False)


def test_predict_probabilities(tiny_backbone, rings, tmp_path):
    result = train(tiny_config(tiny_backbone, epochs=2), rings, tmp_path, progress=False)
    probabilities = predict(result.model, rings, device=result.device)
    assert probabilities.shape == (len(rings), 16, 16)
    assert probabilities.dtype == np.float32
    assert ((probabilities >= 0) & (probabilities <= 1)).all()
    in_small_batches = predict(result.model, rings.images, device="cpu", batch_size=5)
    np.testing.assert_allclose(in_small_batches, probabilities, rtol=1e-6, atol=1e-7)

    path = save_predictions(tmp_path / "predictions.npz", rings, probabilities)
    with np.load(path) as stored:
        assert stored["case_ids"].tolist() == rings.cases["case_id"].tolist()
        np.testing.assert_array_equal(stored["probabilities"], probabilities)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_missing_cuda_device_raises():
    with pytest.raises(ConfigError, match="device 'cuda' is not available"):
        select_device("cuda")


def test_auto_device_on_this_machine():
    assert select_device("auto").type in {"cuda", "mps", "cpu"}

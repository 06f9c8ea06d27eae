"""Difficulty estimation: features, score, levels, manifest update and agreement."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from bench.data.difficulty import (
    FEATURE_COLUMNS,
    cut_levels,
    difficulty_command,
    estimate_difficulty,
    level_agreement,
    slice_features,
)
from bench.data.importers import import_emidec
from bench.data.synthetic import write_synthetic_dataset
from bench.errors import ConfigError


def _ring(size=64, inner=12, outer=18):
    rows, cols = np.mgrid[0:size, 0:size]
    radius = np.hypot(rows - size / 2, cols - size / 2)
    return (radius >= inner) & (radius <= outer)


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory):
    folder = tmp_path_factory.mktemp("phantoms")
    return write_synthetic_dataset(folder, patients=30, seed=3, slices_per_patient=6, size=128)


def test_features_on_known_slice():
    rng = np.random.default_rng(0)
    myocardium = _ring()
    scar = myocardium.copy()
    scar[:, 32:] = False  # left half of the ring
    image = np.where(myocardium, 1.0, 5.0) + rng.normal(0, 0.5, myocardium.shape)
    image[scar] += 3.0

    features = slice_features(image, myocardium, scar)

    assert features["scar_cnr"] == pytest.approx(6.0, rel=0.15)
    assert features["scar_burden_percent"] == pytest.approx(50.0, abs=3.0)
    assert features["scar_components"] == 1.0
    assert math.isnan(features["rater_disagreement"])
    assert features["scar_blood_contrast"] < 0  # blood pool (5) brighter than scar (4)


def test_features_components_and_raters():
    myocardium = _ring()
    scar = myocardium.copy()
    scar[:, 20:44] = False  # two separate arcs
    rater = np.zeros_like(scar)

    features = slice_features(np.ones(scar.shape), myocardium, scar, [rater])

    assert features["scar_components"] == 2.0
    assert features["rater_disagreement"] == pytest.approx(1.0)


def test_scar_free_slice_features():
    myocardium = _ring()
    features = slice_features(np.ones(myocardium.shape), myocardium, np.zeros_like(myocardium))
    assert math.isnan(features["scar_cnr"])
    assert features["scar_burden_percent"] == 0.0
    assert not math.isnan(features["remote_noise"])


def test_cut_levels_tertiles_and_thresholds():
    scores = pd.Series(np.linspace(0, 1, 9))
    assert cut_levels(scores).value_counts().to_dict() == {0: 3, 1: 3, 2: 3}
    assert cut_levels(scores, (0.9, 0.95)).tolist() == [0] * 8 + [2]
    with pytest.raises(ConfigError, match="increasing"):
        cut_levels(scores, (0.6, 0.4))


def test_phantom_kappa_beyond_chance(phantoms):
    frame = estimate_difficulty(phantoms, write=False)
    agreement = level_agreement(frame["difficulty"].astype(int), frame["difficulty_estimated"])
    print(f"phantom Cohen's kappa {agreement}")

    assert agreement["slices"] == 180
    assert agreement["kappa_low"] > 0.2  # the 95% interval excludes chance agreement
    assert agreement["kappa"] > 0.3
    assert agreement["kappa_linear"] > agreement["kappa"]


def test_expert_levels_never_overwritten(phantoms):
    before = pd.read_csv(phantoms.parent / "manifest.csv")
    after = estimate_difficulty(phantoms)
    stored = pd.read_csv(phantoms.parent / "manifest.csv")

    assert (stored["difficulty"] == before["difficulty"]).all()
    assert set(stored["difficulty_source"]) == {"expert"}
    assert (stored["difficulty_estimated"] != stored["difficulty"]).any()
    for column in (*FEATURE_COLUMNS, "difficulty_score"):
        assert column in stored.columns
    assert stored["image"].tolist() == before["image"].tolist()  # paths stay relative
    assert len(after) == len(before)


def test_estimated_levels_and_descriptor_thresholds(tmp_path):
    descriptor = write_synthetic_dataset(
        tmp_path, patients=6, seed=5, slices_per_patient=4, size=64
    )
    manifest = pd.read_csv(tmp_path / "manifest.csv")
    manifest["difficulty"] = pd.NA
    manifest["difficulty_source"] = ""
    manifest.to_csv(tmp_path / "manifest.csv", index=False)

    frame = estimate_difficulty(descriptor)
    assert set(frame["difficulty_source"]) == {"estimated"}
    assert frame["difficulty"].notna().all()
    assert frame["difficulty"].value_counts().min() >= 6

    content = yaml.safe_load(descriptor.read_text())
    content["difficulty"] = {"thresholds": [0.0, 0.001]}
    descriptor.write_text(yaml.safe_dump(content))
    frame = estimate_difficulty(descriptor)
    assert set(frame["difficulty"].astype(int)) == {2}


def test_cli_reports_kappa(phantoms):
    result = CliRunner().invoke(difficulty_command, [str(phantoms)])
    assert result.exit_code == 0, result.output
    assert "Cohen's kappa" in result.output


def test_emidec_scar_slices_distribution(emidec_dir, tmp_path):
    result = import_emidec(emidec_dir, tmp_path, scar_only=True)
    frame = pd.read_csv(result.manifest_path)
    counts = frame["difficulty"].value_counts().sort_index()
    print(f"EMIDEC scar slices by estimated level: {counts.to_dict()}")

    assert len(frame) == 394
    assert frame["difficulty"].notna().all()
    assert set(frame["difficulty_source"]) == {"estimated"}
    assert counts.min() >= 120  # tertiles of 394 slices
    medians = frame.groupby("difficulty")["scar_cnr"].median()
    assert medians[0] > medians[2]

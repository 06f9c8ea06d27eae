"""Synthetic LGE phantoms: files, determinism, difficulty levels and the built-in dataset."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from bench.data.difficulty import slice_features
from bench.data.manifest import load_descriptor, read_case, read_manifest
from bench.data.synthetic import (
    KNOB_RANGES,
    SliceKnobs,
    generator_score,
    level_from_score,
    synth_command,
    write_synthetic_dataset,
)
from bench.data.validate import validate_dataset
from bench.errors import ConfigError


def _digests(folder):
    return {
        path.relative_to(folder).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


@pytest.fixture(scope="module")
def builtin():
    descriptor = load_descriptor("synthetic")
    return descriptor, read_manifest(descriptor)


def test_same_seed_same_bytes(tmp_path):
    write_synthetic_dataset(tmp_path / "a", patients=3, seed=7, slices_per_patient=3, size=64)
    write_synthetic_dataset(tmp_path / "b", patients=3, seed=7, slices_per_patient=3, size=64)
    write_synthetic_dataset(tmp_path / "c", patients=3, seed=8, slices_per_patient=3, size=64)

    first, second, other = (_digests(tmp_path / name) for name in "abc")
    assert len(first) == 2 + 3 * 5  # manifest, descriptor, five volumes per patient
    assert first == second
    assert first["images/P000.nii.gz"] != other["images/P000.nii.gz"]


def test_manifest_columns_and_values(tmp_path):
    descriptor_path = write_synthetic_dataset(
        tmp_path, patients=4, seed=1, slices_per_patient=4, size=64
    )
    frame = read_manifest(load_descriptor(descriptor_path))

    assert len(frame) == 16
    for column in (
        "slice",
        "labels",
        "scar_clean",
        "scar_rater2",
        "scar_rater3",
        "site",
        "scanner",
    ):
        assert column in frame.columns
    assert set(frame["difficulty"]) <= {0, 1, 2}
    assert set(frame["difficulty_source"]) == {"expert"}
    assert frame.groupby("patient_id")["site"].nunique().max() == 1


def test_masks_nested_and_noisy(builtin):
    descriptor, frame = builtin
    differing = 0
    for _, row in frame[frame["pattern"] != "none"].head(40).iterrows():
        case = read_case(descriptor, row)
        clean = case.extra_masks["scar_clean"]
        assert not (case.scar & ~case.myocardium).any()
        assert not (clean & ~case.myocardium).any()
        assert clean.any()
        differing += int((case.scar != clean).any())
    assert differing >= 30  # label noise changes almost every annotation


def test_builtin_levels_balanced(builtin):
    descriptor, frame = builtin
    shares = frame["difficulty"].value_counts(normalize=True)

    assert len(frame) == 240
    assert frame["patient_id"].nunique() == 40
    for level in (0, 1, 2):
        assert shares[level] >= 0.20
    errors = [problem for problem in validate_dataset("synthetic") if problem.severity == "error"]
    assert errors == []


def test_hard_slices_have_lower_cnr(builtin):
    descriptor, frame = builtin
    cnr = {}
    for level in (0, 1, 2):
        rows = frame[(frame["difficulty"] == level) & (frame["pattern"] != "none")]
        values = []
        for _, row in rows.iterrows():
            case = read_case(descriptor, row)
            values.append(slice_features(case.image, case.myocardium, case.scar)["scar_cnr"])
        cnr[level] = float(np.nanmedian(values))
    assert cnr[0] > cnr[1] > cnr[2]
    assert cnr[2] > 0.5  # hard scar is still brighter than remote myocardium


def test_scar_patterns_all_present(builtin):
    _, frame = builtin
    assert {"ischemic", "midwall", "epicardial", "patchy", "none"} <= set(frame["pattern"])


def test_level_rule_matches_knobs():
    easy = SliceKnobs(**{name: ends[0] for name, ends in KNOB_RANGES.items()})
    hard = SliceKnobs(**{name: ends[1] for name, ends in KNOB_RANGES.items()})

    assert generator_score(easy, has_scar=True) == 0.0
    assert generator_score(hard, has_scar=True) == 1.0
    assert level_from_score(0.2) == 0
    assert level_from_score(0.5) == 1
    assert level_from_score(0.9) == 2


def test_generator_score_column_consistent(builtin):
    _, frame = builtin
    expected = pd.to_numeric(frame["generator_score"]).map(level_from_score)
    assert (expected.to_numpy() == frame["difficulty"].to_numpy()).all()


def test_cli_writes_dataset(tmp_path):
    result = CliRunner().invoke(
        synth_command,
        ["--out", str(tmp_path), "--patients", "2", "--slices-per-patient", "2", "--size", "64"],
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "dataset.yaml").is_file()
    assert len(pd.read_csv(tmp_path / "manifest.csv")) == 4


def test_invalid_arguments_rejected(tmp_path):
    with pytest.raises(ConfigError, match="--patients"):
        write_synthetic_dataset(tmp_path, patients=0)
    with pytest.raises(ConfigError, match="--size"):
        write_synthetic_dataset(tmp_path, patients=1, size=16)

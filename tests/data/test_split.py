"""Patient-level split: no leakage, stratification, seeds, CSV round trip."""

from __future__ import annotations

import pandas as pd
import pytest

from bench.data.split import load_split, make_split, save_split
from bench.errors import ConfigError, DataError


def case_table(patients=50, slices=4, with_difficulty=True):
    rows = []
    for patient in range(patients):
        for index in range(slices):
            difficulty = (patient + index) % 3 if patient % 5 else 0
            rows.append(
                {
                    "case_id": f"p{patient}_s{index}",
                    "patient_id": f"p{patient}",
                    "difficulty": difficulty if with_difficulty else pd.NA,
                }
            )
    return pd.DataFrame(rows).astype({"difficulty": "Int64"})


def test_no_patient_on_both_sides():
    split = make_split(case_table(), test_fraction=0.2, seed=3)

    sides = split.groupby("patient_id")["split"].nunique()
    assert sides.max() == 1
    assert split["patient_id"][split["split"] == "test"].nunique() == 10
    assert len(split) == 200


def test_same_seed_same_split():
    first = make_split(case_table(), seed=1)

    assert make_split(case_table(), seed=1).equals(first)
    assert not make_split(case_table(), seed=2).equals(first)


def test_stratified_by_max_difficulty():
    cases = case_table()
    hardest = cases.groupby("patient_id")["difficulty"].max()

    split = make_split(cases, test_fraction=0.2, seed=0)

    test_patients = set(split.loc[split["split"] == "test", "patient_id"])
    for level, patients in hardest.groupby(hardest).groups.items():
        expected = round(0.2 * len(patients))
        assert len(test_patients & set(patients)) == pytest.approx(expected, abs=1), level


def test_without_difficulty():
    split = make_split(case_table(patients=7, with_difficulty=False), test_fraction=0.3, seed=0)

    assert split["patient_id"][split["split"] == "test"].nunique() == 2


def test_csv_round_trip(tmp_path):
    split = make_split(case_table(patients=10), seed=0)

    path = save_split(tmp_path / "run" / "split.csv", split)

    pd.testing.assert_frame_equal(load_split(path), split)


def test_invalid_split_files(tmp_path):
    path = tmp_path / "split.csv"
    pd.DataFrame(
        {"case_id": ["a", "b"], "patient_id": ["p", "p"], "split": ["train", "test"]}
    ).to_csv(path, index=False)
    with pytest.raises(DataError, match="both train and test"):
        load_split(path)

    pd.DataFrame({"case_id": ["a"], "patient_id": ["p"], "split": ["valid"]}).to_csv(
        path, index=False
    )
    with pytest.raises(DataError, match="unknown split value"):
        load_split(path)

    with pytest.raises(DataError, match="not found"):
        load_split(tmp_path / "absent.csv")


def test_invalid_arguments():
    with pytest.raises(ConfigError, match="test_fraction"):
        make_split(case_table(), test_fraction=1.0)
    with pytest.raises(DataError, match="at least two patients"):
        make_split(case_table(patients=1))

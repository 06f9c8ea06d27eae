"""Seeded patient-level train/test split, stratified by difficulty where known.

All slices of a patient go to the same side. Patients are stratified by their
hardest slice (maximum difficulty), and each stratum contributes its share of
test patients, so train and test see similar difficulty mixes.

Example:
    >>> from bench.data.split import make_split, save_split, load_split
    >>> split = make_split(dataset, test_fraction=0.2, seed=0)  # doctest: +SKIP
    >>> save_split("runs/r1/split.csv", split)  # doctest: +SKIP
    >>> load_split("runs/r1/split.csv").equals(split)  # doctest: +SKIP
    True
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from bench.data.prepared import PreparedDataset
from bench.errors import ConfigError, DataError
from bench.fileio import write_csv

__all__ = ["make_split", "save_split", "load_split", "SPLIT_COLUMNS"]

logger = logging.getLogger(__name__)

SPLIT_COLUMNS = ("case_id", "patient_id", "split")
SPLIT_VALUES = ("train", "test")

# Stratum of patients whose slices have no difficulty level.
UNKNOWN_STRATUM = -1


def make_split(
    dataset: PreparedDataset | pd.DataFrame, test_fraction: float = 0.2, seed: int = 0
) -> pd.DataFrame:
    """Split the cases of a dataset into train and test by patient.

    Args:
        dataset: a ``PreparedDataset``, or a table with ``case_id``,
            ``patient_id`` and optionally ``difficulty``.
        test_fraction: fraction of patients in the test set, in (0, 1). The
            number of test patients is this fraction of all patients, rounded,
            and at least one patient stays on each side.
        seed: seed of the random permutation; equal seeds give equal splits.

    Returns:
        One row per case, in dataset order, with columns ``case_id``,
        ``patient_id`` and ``split`` (``"train"`` or ``"test"``).

    Raises:
        ConfigError: ``test_fraction`` is outside (0, 1).
        DataError: fewer than two patients, or the table lacks the id columns.
    """
    cases = dataset.cases if isinstance(dataset, PreparedDataset) else dataset
    _check_inputs(cases, test_fraction)

    strata = _patient_strata(cases)
    allocation = _allocate_test_patients(strata, test_fraction)
    rng = np.random.default_rng(seed)

    test_patients: set[str] = set()
    for stratum, patients in sorted(strata.groupby(strata).groups.items()):
        shuffled = rng.permutation(np.asarray(sorted(patients), dtype=object))
        test_patients.update(shuffled[: allocation[stratum]].tolist())

    split = pd.DataFrame(
        {
            "case_id": cases["case_id"].astype(str).to_numpy(dtype=object),
            "patient_id": cases["patient_id"].astype(str).to_numpy(dtype=object),
        }
    )
    split["split"] = np.where(split["patient_id"].isin(test_patients), "test", "train").astype(
        object
    )
    logger.info(
        "split %d patients: %d test, %d train (seed %d)",
        len(strata),
        len(test_patients),
        len(strata) - len(test_patients),
        seed,
    )
    return split


def save_split(path: str | os.PathLike, frame: pd.DataFrame) -> Path:
    """Write a split table as CSV (atomically), after checking it like ``load_split``.

    Raises:
        DataError: the table is not a valid split.
    """
    _check_split(frame, Path(path))
    return write_csv(path, frame.loc[:, list(SPLIT_COLUMNS)])


def load_split(path: str | os.PathLike) -> pd.DataFrame:
    """Read a split CSV written by ``save_split`` (or by hand).

    Raises:
        DataError: the file is missing, lacks a column, has an unknown split
            value, repeats a case or puts a patient on both sides.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: split file not found; make one with make_split and save_split")
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    _check_split(frame, path)
    return frame.loc[:, list(SPLIT_COLUMNS)].astype(str)


# --- helpers ------------------------------------------------------------------------


def _check_inputs(cases: pd.DataFrame, test_fraction: float) -> None:
    if not 0.0 < float(test_fraction) < 1.0:
        raise ConfigError(
            f"test_fraction must be between 0 and 1 (exclusive), got {test_fraction!r}"
        )
    missing = [column for column in ("case_id", "patient_id") if column not in cases.columns]
    if missing:
        raise DataError(f"cannot split: the case table has no column(s) {missing}")
    if cases["patient_id"].nunique() < 2:
        raise DataError(
            f"cannot split {cases['patient_id'].nunique()} patient(s) into train and test; "
            "a patient-level split needs at least two patients"
        )


def _patient_strata(cases: pd.DataFrame) -> pd.Series:
    """Return each patient's stratum: the maximum difficulty of its slices, or ``UNKNOWN_STRATUM``."""
    patients = cases["patient_id"].astype(str)
    if "difficulty" not in cases.columns:
        return pd.Series(UNKNOWN_STRATUM, index=pd.Index(sorted(patients.unique())))

    difficulty = pd.to_numeric(cases["difficulty"], errors="coerce")
    hardest = difficulty.groupby(patients).max()
    return hardest.fillna(UNKNOWN_STRATUM).astype(int).sort_index()


def _allocate_test_patients(strata: pd.Series, test_fraction: float) -> dict[int, int]:
    """Share the test patients among strata by largest remainder, keeping the total fixed."""
    total = len(strata)
    test_total = min(max(round(test_fraction * total), 1), total - 1)

    sizes = strata.value_counts().sort_index()
    quotas = sizes * (test_total / total)
    allocation = {int(stratum): math.floor(quota) for stratum, quota in quotas.items()}

    remainders = sorted(
        ((quota - math.floor(quota), int(stratum)) for stratum, quota in quotas.items()),
        key=lambda item: (-item[0], item[1]),
    )
    for _, stratum in remainders[: test_total - sum(allocation.values())]:
        allocation[stratum] += 1
    return allocation


def _check_split(frame: pd.DataFrame, path: Path) -> None:
    missing = [column for column in SPLIT_COLUMNS if column not in frame.columns]
    if missing:
        raise DataError(
            f"{path}: split table has no column(s) {missing}; expected {list(SPLIT_COLUMNS)}"
        )

    unknown = sorted(set(frame["split"].astype(str)) - set(SPLIT_VALUES))
    if unknown:
        raise DataError(f"{path}: unknown split value(s) {unknown}; use 'train' or 'test'")

    repeated = frame["case_id"][frame["case_id"].duplicated()].unique().tolist()
    if repeated:
        raise DataError(
            f"{path}: case_id(s) {repeated[:5]} appear more than once; list each case once"
        )

    sides = frame.groupby("patient_id")["split"].nunique()
    leaking = sides[sides > 1].index.tolist()
    if leaking:
        raise DataError(
            f"{path}: patient(s) {leaking[:5]} are in both train and test; "
            "all slices of a patient must be on one side"
        )

"""The real EMIDEC PNG slices through manifest, readers, validate and the cache."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from bench.cli import main
from bench.data.cache import load_prepared
from bench.data.manifest import load_descriptor, read_case, read_manifest, write_descriptor
from bench.data.readers import read_label_map

pytestmark = pytest.mark.emidec

SLICES = 708
PATIENTS = 100
SLICES_WITH_SCAR = 394


@pytest.fixture(scope="module")
def emidec_descriptor(emidec_dir, tmp_path_factory):
    """A manifest of every EMIDEC PNG and a descriptor (myocardium {2,3,4}, scar {3,4})."""
    folder = tmp_path_factory.mktemp("emidec")
    rows = [
        {
            "case_id": image.stem,
            "patient_id": image.stem.split("_slice")[0],
            "image": str(image),
            "labels": str(emidec_dir / "labels" / image.name),
        }
        for image in sorted((emidec_dir / "images").glob("*.png"))
    ]
    pd.DataFrame(rows).to_csv(folder / "emidec.csv", index=False)
    return write_descriptor(
        folder / "emidec.yaml",
        name="emidec",
        manifest=folder / "emidec.csv",
        myocardium_labels=[2, 3, 4],
        scar_labels=[3, 4],
        citation="Lalande A. et al., Data 2020, 5(4):89",
        licence="CC BY-NC-SA 4.0",
    )


def test_all_slices_read(emidec_descriptor):
    descriptor = load_descriptor(emidec_descriptor)
    frame = read_manifest(descriptor)

    cases = [read_case(descriptor, row) for _, row in frame.iterrows()]

    assert len(cases) == SLICES
    assert frame["patient_id"].nunique() == PATIENTS
    assert all(case.image.shape == (256, 256) for case in cases)
    assert sum(bool(case.scar.any()) for case in cases) == SLICES_WITH_SCAR
    assert all(not np.any(case.scar & ~case.myocardium) for case in cases)


def test_label_sets(emidec_descriptor):
    frame = read_manifest(emidec_descriptor)

    found: set[int] = set()
    for path in frame["labels"]:
        found |= set(np.unique(read_label_map(path, allowed={0, 1, 2, 3, 4}).array).tolist())

    assert found == {0, 1, 2, 3, 4}


def test_validate_reports_all_valid(emidec_descriptor):
    result = CliRunner().invoke(main, ["data", "validate", str(emidec_descriptor)])

    assert result.exit_code == 0, result.output
    assert f"{SLICES} of {SLICES} slices valid" in result.output


def test_second_load_under_one_second(emidec_descriptor):
    first = load_prepared(emidec_descriptor)

    start = time.perf_counter()
    second = load_prepared(emidec_descriptor)
    elapsed_s = time.perf_counter() - start

    assert len(first) == SLICES
    assert int(second.scar.flatten(1).any(1).sum()) == SLICES_WITH_SCAR
    assert elapsed_s < 1.0

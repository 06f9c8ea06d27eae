"""`bench data validate`: every problem reported at once, exit status 1 on errors."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pandas as pd
from click.testing import CliRunner
from PIL import Image

from bench.cli import main
from bench.data.validate import check_dataset, validate_dataset


def write_dataset(folder, cases=6):
    """Write NIfTI images and EMIDEC-style PNG label maps with a manifest; return the manifest."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for index in range(cases):
        labels = np.zeros((24, 24), np.uint8)
        labels[6:18, 6:18] = 2
        labels[9:15, 9:15] = 1
        labels[6:8, 6:18] = 3
        image = np.random.default_rng(index).random((24, 24))
        nib.save(nib.Nifti1Image(image, np.eye(4)), folder / f"image{index}.nii.gz")
        Image.fromarray(labels).save(folder / f"labels{index}.png")
        rows.append(
            {
                "case_id": f"c{index}",
                "patient_id": f"p{index // 2}",
                "image": f"image{index}.nii.gz",
                "labels": f"labels{index}.png",
                "site": "A",
            }
        )
    path = folder / "manifest.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def break_dataset(folder):
    """Introduce one problem of every kind into a six-case dataset."""
    frame = pd.read_csv(folder / "manifest.csv")
    (folder / "image0.nii.gz").unlink()

    (folder / "image1.nii.gz").write_bytes(b"garbage")

    labels = np.zeros((24, 24), np.uint8)
    labels[6:18, 6:18] = 7
    Image.fromarray(labels).save(folder / "labels2.png")

    Image.fromarray(np.zeros((20, 24), np.uint8)).save(folder / "labels3.png")

    image = np.random.default_rng(4).random((24, 24))
    image[0, 0] = np.nan
    nib.save(nib.Nifti1Image(image, np.eye(4)), folder / "image4.nii.gz")

    Image.fromarray(np.zeros((24, 24), np.uint8)).save(folder / "labels5.png")

    extra = frame.iloc[[5]].assign(site="B")
    pd.concat([frame, extra]).to_csv(folder / "manifest.csv", index=False)


def test_clean_dataset_valid(tmp_path):
    manifest = write_dataset(tmp_path)

    report = check_dataset(manifest)

    assert report.problems == []
    assert report.case_count == 6
    assert report.valid_count == 6


def test_every_problem_reported(tmp_path):
    manifest = write_dataset(tmp_path)
    break_dataset(tmp_path)

    problems = validate_dataset(manifest)

    found = {(problem.kind, problem.case_id) for problem in problems}
    assert ("missing file", "c0") in found
    assert ("unreadable file", "c1") in found
    assert ("invalid label values", "c2") in found
    assert ("shape mismatch", "c3") in found
    assert ("NaN/Inf pixels", "c4") in found
    assert ("empty myocardium", "c5") in found
    assert ("duplicate case_id", "c5") in found
    assert ("conflicting patient metadata", "") in found


def test_label_problem_names_values(tmp_path):
    manifest = write_dataset(tmp_path)
    break_dataset(tmp_path)

    problem = next(p for p in validate_dataset(manifest) if p.kind == "invalid label values")

    assert "labels2.png" in problem.message
    assert "{7}" in problem.message


def test_cli_exit_status(tmp_path):
    manifest = write_dataset(tmp_path)
    runner = CliRunner()

    clean = runner.invoke(main, ["data", "validate", str(manifest)])
    break_dataset(tmp_path)
    broken = runner.invoke(main, ["data", "validate", str(manifest)])

    assert clean.exit_code == 0
    assert "6 of 6 slices valid" in clean.output
    assert broken.exit_code == 1
    assert "missing file" in broken.output
    assert "Traceback" not in broken.output


def test_cli_unknown_dataset(tmp_path):
    result = CliRunner().invoke(main, ["data", "validate", str(tmp_path / "absent.yaml")])

    assert result.exit_code == 1
    assert "not found" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)

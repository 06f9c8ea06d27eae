"""EMIDEC and nnU-Net importers: both EMIDEC layouts, label checks and bad input."""

from __future__ import annotations

import json
import shutil

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from PIL import Image

from bench.data.importers import import_emidec, import_group, import_nnunet
from bench.data.manifest import load_descriptor, read_case, read_manifest
from bench.data.synthetic import write_synthetic_dataset
from bench.errors import ManifestError

PATIENTS = ("Case_N006", "Case_P001", "Case_P002")


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory):
    folder = tmp_path_factory.mktemp("phantoms")
    write_synthetic_dataset(folder, patients=2, seed=4, slices_per_patient=3, size=64)
    return folder


def _emidec_case(root, case, image, labels):
    for sub, volume in (("Images", image), ("Contours", labels)):
        (root / case / sub).mkdir(parents=True, exist_ok=True)
        nib.save(nib.Nifti1Image(volume, np.eye(4)), root / case / sub / f"{case}.nii.gz")


def _phantom_volumes(phantoms, patient):
    image = nib.load(phantoms / "images" / f"{patient}.nii.gz").get_fdata().astype(np.float32)
    labels = nib.load(phantoms / "labels" / f"{patient}.nii.gz").get_fdata().astype(np.uint8)
    return image, labels


def test_emidec_nifti_layout(phantoms, tmp_path):
    source = tmp_path / "emidec"
    image, labels = _phantom_volumes(phantoms, "P000")
    labels[..., 1] = 0  # one slice without myocardium
    _emidec_case(source, "Case_P900", image, labels)

    result = import_emidec(source, tmp_path / "out")
    frame = read_manifest(load_descriptor(result.descriptor_path))

    assert result.slices == 2
    assert result.skipped_empty_myocardium == 1
    assert frame["case_id"].tolist() == ["Case_P900_slice000", "Case_P900_slice002"]
    assert set(frame["patient_id"]) == {"Case_P900"}
    assert frame["difficulty"].notna().all()
    descriptor = load_descriptor(result.descriptor_path)
    assert descriptor.myocardium_labels == (2, 3, 4)
    assert descriptor.scar_labels == (3, 4)
    assert "Lalande" in descriptor.citation
    assert descriptor.licence == "CC BY-NC-SA 4.0"


def test_emidec_case_without_contours(phantoms, tmp_path):
    image, labels = _phantom_volumes(phantoms, "P000")
    _emidec_case(tmp_path, "Case_P901", image, labels)
    shutil.rmtree(tmp_path / "Case_P901" / "Contours")

    with pytest.raises(ManifestError, match=r"Case_P901.*no contour volume"):
        import_emidec(tmp_path, tmp_path / "out")


def test_emidec_unknown_layout(tmp_path):
    (tmp_path / "something").mkdir()
    with pytest.raises(ManifestError, match="not an EMIDEC folder.*Case_<id>/Images"):
        import_emidec(tmp_path, tmp_path / "out")
    with pytest.raises(ManifestError, match="not found"):
        import_emidec(tmp_path / "missing", tmp_path / "out")


def test_emidec_png_without_label(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "images" / "Case_P001_slice000.png")
    with pytest.raises(ManifestError, match="Case_P001_slice000.png: image has no label map"):
        import_emidec(tmp_path, tmp_path / "out")


def test_emidec_png_full(emidec_dir, tmp_path):
    result = import_emidec(emidec_dir, tmp_path / "all")
    frame = pd.read_csv(result.manifest_path)

    assert result.slices == 708
    assert frame["patient_id"].nunique() == 100
    assert frame["difficulty"].notna().all()
    assert not frame["image"].str.startswith("/").any()  # relative to the manifest folder

    scar_only = import_emidec(
        emidec_dir, tmp_path / "scar", scar_only=True, estimate_difficulty=False
    )
    assert scar_only.slices == 394
    assert scar_only.skipped_without_scar == 708 - 394


def test_emidec_layouts_agree(emidec_dir, tmp_path):
    png_source, nifti_source = tmp_path / "png", tmp_path / "nifti"
    for folder in ("images", "labels"):
        (png_source / folder).mkdir(parents=True)
    for case in PATIENTS:
        names = sorted(path.name for path in (emidec_dir / "images").glob(f"{case}_slice*.png"))
        for name in names:
            for folder in ("images", "labels"):
                (png_source / folder / name).symlink_to(emidec_dir / folder / name)
        image = np.stack(
            [np.asarray(Image.open(emidec_dir / "images" / n)) for n in names], axis=-1
        )
        labels = np.stack(
            [np.asarray(Image.open(emidec_dir / "labels" / n)) for n in names], axis=-1
        )
        _emidec_case(nifti_source, case, image, labels)

    from_png = import_emidec(png_source, tmp_path / "a", estimate_difficulty=False)
    from_nifti = import_emidec(nifti_source, tmp_path / "b", estimate_difficulty=False)
    png_descriptor = load_descriptor(from_png.descriptor_path)
    nifti_descriptor = load_descriptor(from_nifti.descriptor_path)
    png_frame, nifti_frame = read_manifest(png_descriptor), read_manifest(nifti_descriptor)

    assert png_frame["case_id"].tolist() == nifti_frame["case_id"].tolist()
    assert png_frame["patient_id"].tolist() == nifti_frame["patient_id"].tolist()
    for (_, png_row), (_, nifti_row) in zip(
        png_frame.iterrows(), nifti_frame.iterrows(), strict=True
    ):
        png_case = read_case(png_descriptor, png_row)
        nifti_case = read_case(nifti_descriptor, nifti_row)
        assert np.array_equal(png_case.myocardium, nifti_case.myocardium)
        assert np.array_equal(png_case.scar, nifti_case.scar)
        assert np.allclose(png_case.image, nifti_case.image)


def _nnunet_dataset(phantoms, root, labels=None):
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    for patient in ("P000", "P001"):
        shutil.copy(
            phantoms / "images" / f"{patient}.nii.gz", root / "imagesTr" / f"{patient}_0000.nii.gz"
        )
        shutil.copy(
            phantoms / "labels" / f"{patient}.nii.gz", root / "labelsTr" / f"{patient}.nii.gz"
        )
    metadata = {
        "name": "phantom",
        "channel_names": {"0": "LGE"},
        "labels": labels or {"background": 0, "blood_pool": 1, "myocardium": 2, "scar": 3},
        "numTraining": 2,
        "file_ending": ".nii.gz",
    }
    (root / "dataset.json").write_text(json.dumps(metadata))


def test_nnunet_import(phantoms, tmp_path):
    _nnunet_dataset(phantoms, tmp_path / "raw")
    result = import_nnunet(
        tmp_path / "raw", tmp_path / "out", myocardium_labels=[2, 3], scar_labels=[3]
    )
    descriptor = load_descriptor(result.descriptor_path)
    frame = read_manifest(descriptor)

    assert result.slices == 6
    assert frame["case_id"].iloc[0] == "P000_slice000"
    assert descriptor.other_labels == (1,)
    assert frame["difficulty"].notna().all()


def test_nnunet_undeclared_label(phantoms, tmp_path):
    _nnunet_dataset(phantoms, tmp_path / "raw", labels={"background": 0, "myocardium": 2})
    with pytest.raises(ManifestError, match=r"dataset.json: label value\(s\) \[3\] not declared"):
        import_nnunet(tmp_path / "raw", tmp_path / "out", myocardium_labels=[2, 3], scar_labels=[3])


def test_nnunet_cli(phantoms, tmp_path):
    _nnunet_dataset(phantoms, tmp_path / "raw")
    arguments = ["nnunet", str(tmp_path / "raw"), "--out", str(tmp_path / "out")]
    result = CliRunner().invoke(
        import_group,
        [*arguments, "--myocardium-labels", "2,3", "--scar-labels", "3", "--no-difficulty"],
    )
    assert result.exit_code == 0, result.output
    assert "6 slices" in result.output

    result = CliRunner().invoke(
        import_group, [*arguments, "--myocardium-labels", "two", "--scar-labels", "3"]
    )
    assert result.exit_code == 2
    assert "comma-separated list of integers" in result.output

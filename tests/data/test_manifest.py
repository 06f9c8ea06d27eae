"""Descriptors and manifests: loading, column checks, case reading."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from bench.data.manifest import (
    load_descriptor,
    load_manifest_table,
    manifest_problems,
    read_case,
    read_manifest,
    write_descriptor,
)
from bench.data.preprocess import PreprocessConfig
from bench.errors import ManifestError, RegistryError


def write_label_dataset(folder, cases=3):
    """Write PNG images and EMIDEC-style label maps plus a manifest; return the manifest path."""
    (folder / "images").mkdir(parents=True)
    (folder / "labels").mkdir()
    rows = []
    for index in range(cases):
        labels = np.zeros((32, 32), np.uint8)
        labels[8:24, 8:24] = 2
        labels[12:20, 12:20] = 1
        labels[8:12, 8:24] = 3
        image = np.random.default_rng(index).integers(0, 256, (32, 32), dtype=np.uint8)
        name = f"c{index}.png"
        Image.fromarray(image).save(folder / "images" / name)
        Image.fromarray(labels).save(folder / "labels" / name)
        rows.append(
            {
                "case_id": f"c{index}",
                "patient_id": f"p{index // 2}",
                "image": f"images/{name}",
                "labels": f"labels/{name}",
            }
        )
    path = folder / "manifest.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_descriptor_round_trip(tmp_path):
    manifest = write_label_dataset(tmp_path / "data")
    path = write_descriptor(
        tmp_path / "data" / "demo.yaml",
        name="demo",
        manifest=manifest,
        myocardium_labels=[2, 3, 4],
        scar_labels=[3, 4],
        citation="Someone 2024",
        licence="CC BY 4.0",
        preprocessing={"size": 32},
        difficulty_thresholds=(0.3, 0.6),
    )

    descriptor = load_descriptor(path)

    assert descriptor.name == "demo"
    assert descriptor.manifest_path == manifest.resolve()
    assert descriptor.root == manifest.parent.resolve()
    assert descriptor.myocardium_labels == (2, 3, 4)
    assert descriptor.scar_labels == (3, 4)
    assert descriptor.preprocessing == PreprocessConfig(size=32)
    assert descriptor.difficulty_thresholds == (0.3, 0.6)
    assert descriptor.allowed_labels == {0, 1, 2, 3, 4}
    assert "manifest: manifest.csv" in path.read_text()


def test_bare_manifest_descriptor(tmp_path):
    manifest = write_label_dataset(tmp_path)

    descriptor = load_descriptor(str(manifest))

    assert descriptor.name == "manifest"
    assert descriptor.descriptor_path is None
    assert descriptor.myocardium_labels == (2, 3, 4)


def test_unknown_dataset_name():
    with pytest.raises(RegistryError, match="unknown dataset 'no_such_dataset'"):
        load_descriptor("no_such_dataset")


def test_missing_descriptor_file(tmp_path):
    with pytest.raises(ManifestError, match="not found"):
        load_descriptor(tmp_path / "absent.yaml")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: x\n", "no `manifest` entry"),
        ("manifest: m.csv\nlabels: {myocardium: [2], scar: [3]}\n", "not all myocardium labels"),
        ("manifest: m.csv\nlabels: {myocardium: [2.5]}\n", "list of integers"),
        ("manifest: m.csv\npreprocessing: {sise: 32}\n", "did you mean 'size'"),
        ("manifest: m.csv\ndifficulty: {thresholds: [0.6, 0.3]}\n", "t1 < t2"),
        ("manifest: m.csv\nlabelz: {}\n", "unknown descriptor key"),
        ("- a\n- b\n", "YAML mapping"),
    ],
)
def test_invalid_descriptor(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)

    with pytest.raises(ManifestError, match=message):
        load_descriptor(path)


def test_read_manifest_resolves_paths(tmp_path):
    manifest = write_label_dataset(tmp_path)

    frame = read_manifest(manifest)

    assert list(frame["case_id"]) == ["c0", "c1", "c2"]
    assert frame["image"].iloc[0] == str(tmp_path / "images" / "c0.png")
    assert str(frame["difficulty"].dtype) == "Int64"
    assert frame["site"].tolist() == ["", "", ""]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda frame: frame.drop(columns=["patient_id"]), "missing column"),
        (lambda frame: frame.drop(columns=["labels"]), "no mask columns"),
        (lambda frame: frame.assign(myocardium="m.png", scar="s.png"), "keep one form"),
        (lambda frame: frame.assign(slice=["0", "-1", "1"]), "slice '-1'"),
        (lambda frame: frame.assign(difficulty=["0", "3", "1"]), "difficulty '3'"),
        (
            lambda frame: frame.assign(difficulty_source=["expert", "guess", ""]),
            "difficulty_source 'guess'",
        ),
        (lambda frame: frame.assign(case_id=["c0", "c0", "c2"]), "case_id 'c0' appears 2 times"),
        (lambda frame: frame.assign(site=["a", "b", "a"]), "patient 'p0' has several site values"),
    ],
)
def test_invalid_manifest(tmp_path, change, message):
    manifest = write_label_dataset(tmp_path)
    change(pd.read_csv(manifest)).to_csv(manifest, index=False)

    with pytest.raises(ManifestError, match=message):
        read_manifest(manifest)


def test_problems_listed_together(tmp_path):
    manifest = write_label_dataset(tmp_path, cases=4)
    frame = pd.read_csv(manifest)
    frame.assign(case_id=["c0", "c0", "c2", "c2"], scanner=["x", "y", "z", "z"]).to_csv(
        manifest, index=False
    )

    problems = manifest_problems(load_manifest_table(load_descriptor(manifest)))

    kinds = sorted(problem.kind for problem in problems)
    assert kinds == ["conflicting patient metadata", "duplicate case_id", "duplicate case_id"]


def test_read_case_from_labels(tmp_path):
    manifest = write_label_dataset(tmp_path)
    descriptor = load_descriptor(manifest)

    case = read_case(descriptor, read_manifest(descriptor).iloc[1])

    assert case.case_id == "c1"
    assert case.image.shape == (32, 32)
    assert int(case.myocardium.sum()) == 16 * 16 - 8 * 8
    assert int(case.scar.sum()) == 4 * 16


def test_read_case_from_two_masks_and_rater(tmp_path):
    myocardium = np.zeros((16, 16), np.uint8)
    myocardium[4:12, 4:12] = 255
    scar = np.zeros((16, 16), np.uint8)
    scar[4:6, 4:12] = 1
    np.savez(
        tmp_path / "case.npz",
        image=np.random.default_rng(0).random((16, 16)),
        myocardium=myocardium,
        scar=scar,
    )
    np.save(tmp_path / "rater2.npy", scar.astype(bool))
    pd.DataFrame(
        [
            {
                "case_id": "a",
                "patient_id": "p",
                "image": "case.npz",
                "myocardium": "case.npz",
                "scar": "case.npz",
                "scar_rater2": "rater2.npy",
            }
        ]
    ).to_csv(tmp_path / "m.csv", index=False)
    descriptor = load_descriptor(tmp_path / "m.csv")

    case = read_case(descriptor, read_manifest(descriptor).iloc[0])

    assert int(case.myocardium.sum()) == 64
    assert int(case.scar.sum()) == 16
    assert int(case.extra_masks["scar_rater2"].sum()) == 16

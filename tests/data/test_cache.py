"""The prepared-dataset cache: contents, cache hits, invalidation, skips."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from bench.data.cache import cache_dir, cache_path, load_prepared
from bench.data.manifest import load_descriptor, read_manifest
from bench.data.prepared import CASE_COLUMNS
from bench.errors import ConfigError, DataError


def write_mask_dataset(folder, cases=4, empty=()):
    """Write NumPy images with PNG myocardium/scar masks and a rater column; return the manifest."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for index in range(cases):
        myocardium = np.zeros((40, 40), np.uint8)
        if index not in empty:
            myocardium[10:30, 10:30] = 255
        scar = np.zeros((40, 40), np.uint8)
        scar[10 : 10 + 2 * (index + 1), 10:30] = 255
        scar &= myocardium
        np.save(folder / f"image{index}.npy", np.random.default_rng(index).random((40, 40)))
        Image.fromarray(myocardium).save(folder / f"myo{index}.png")
        Image.fromarray(scar).save(folder / f"scar{index}.png")
        rows.append(
            {
                "case_id": f"c{index}",
                "patient_id": f"p{index // 2}",
                "image": f"image{index}.npy",
                "myocardium": f"myo{index}.png",
                "scar": f"scar{index}.png",
                "scar_rater2": f"scar{index}.png" if index % 2 == 0 else "",
                "difficulty": index % 3,
                "difficulty_score": 0.1 * index,
            }
        )
    path = folder / "manifest.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_prepared_contents(tmp_path):
    manifest = write_mask_dataset(tmp_path / "d")

    dataset = load_prepared(manifest, size=32)

    assert dataset.images.shape == (4, 1, 32, 32)
    assert str(dataset.images.dtype) == "torch.float32"
    assert str(dataset.scar.dtype) == "torch.bool"
    assert list(dataset.cases.columns[: len(CASE_COLUMNS)]) == list(CASE_COLUMNS)
    assert dataset.cases["difficulty"].tolist() == [0, 1, 2, 0]
    assert dataset.cases["difficulty_score"].tolist() == pytest.approx([0.0, 0.1, 0.2, 0.3])
    assert dataset.cases["burden_native_percent"].tolist() == pytest.approx(
        [10.0, 20.0, 30.0, 40.0]
    )
    assert dataset.preprocessing["size"] == 32


def test_extra_masks_and_presence(tmp_path):
    manifest = write_mask_dataset(tmp_path / "d")

    dataset = load_prepared(manifest)

    assert set(dataset.extra_masks) == {"scar_rater2"}
    assert dataset.cases["has_scar_rater2"].tolist() == [True, False, True, False]
    assert bool(dataset.extra_masks["scar_rater2"][0].eq(dataset.scar[0]).all())
    assert not bool(dataset.extra_masks["scar_rater2"][1].any())


def test_second_load_hits_cache(tmp_path):
    manifest = write_mask_dataset(tmp_path / "d")
    first = load_prepared(manifest)
    path = cache_path(load_descriptor(manifest), read_manifest(manifest))
    written = path.stat().st_mtime_ns

    second = load_prepared(manifest)

    assert path.parent == cache_dir()
    assert path.stat().st_mtime_ns == written
    assert bool((first.images == second.images).all())
    pd.testing.assert_frame_equal(first.cases, second.cases)


def test_cache_key_changes(tmp_path):
    manifest = write_mask_dataset(tmp_path / "d")
    descriptor = load_descriptor(manifest)
    frame = read_manifest(descriptor)
    original = cache_path(descriptor, frame)

    resized = cache_path(descriptor.with_preprocessing(size=96), frame)
    image = tmp_path / "d" / "image0.npy"
    np.save(image, np.zeros((40, 40)))
    os.utime(image, ns=(1, 1))
    edited = cache_path(descriptor, frame)

    assert resized != original
    assert edited != original


def test_edited_file_prepared_again(tmp_path):
    manifest = write_mask_dataset(tmp_path / "d")
    before = load_prepared(manifest)
    np.save(tmp_path / "d" / "image0.npy", np.full((40, 40), 7.0))
    os.utime(tmp_path / "d" / "image0.npy", ns=(10**18, 10**18))

    after = load_prepared(manifest, normalization="none")

    assert not bool((before.images[0] == after.images[0]).all())
    assert float(after.images[0].max()) == pytest.approx(7.0)


def test_corrupt_cache_file_rebuilt(tmp_path):
    manifest = write_mask_dataset(tmp_path / "d")
    load_prepared(manifest)
    path = cache_path(load_descriptor(manifest), read_manifest(manifest))
    path.write_bytes(b"truncated")

    dataset = load_prepared(manifest)

    assert len(dataset) == 4
    assert path.stat().st_size > 1000


def test_empty_myocardium_skipped(tmp_path, caplog):
    manifest = write_mask_dataset(tmp_path / "d", empty=(2,))

    dataset = load_prepared(manifest)

    assert len(dataset) == 3
    assert dataset.skipped["case_id"].tolist() == ["c2"]
    assert "c2" in caplog.text


def test_unreadable_case_named(tmp_path):
    manifest = write_mask_dataset(tmp_path / "d")
    (tmp_path / "d" / "scar1.png").write_bytes(b"not a png")

    with pytest.raises(DataError, match="1 case\\(s\\) could not be read.*case 'c1'"):
        load_prepared(manifest)


def test_invalid_override(tmp_path):
    manifest = write_mask_dataset(tmp_path / "d")

    with pytest.raises(ConfigError, match="did you mean 'margin'"):
        load_prepared(manifest, margn=0.2)

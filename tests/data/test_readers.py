"""Readers on real files of every supported format, written to a temporary folder."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from bench.data.readers import (
    SliceArray,
    check_aligned,
    read_binary_mask,
    read_image,
    read_label_map,
)
from bench.errors import DataError

RNG = np.random.default_rng(0)


def write_dicom(path, frames: np.ndarray, **attributes) -> None:
    """Write uint16 ``frames`` ((rows, columns) or (frames, rows, columns)) as an uncompressed DICOM file."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian

    dataset = Dataset()
    dataset.file_meta = meta
    dataset.SOPClassUID = meta.MediaStorageSOPClassUID
    dataset.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    dataset.Modality = "MR"
    dataset.SamplesPerPixel = 1
    dataset.PhotometricInterpretation = "MONOCHROME2"
    dataset.BitsAllocated = 16
    dataset.BitsStored = 16
    dataset.HighBit = 15
    dataset.PixelRepresentation = 0
    dataset.Rows, dataset.Columns = frames.shape[-2:]
    if frames.ndim == 3:
        dataset.NumberOfFrames = frames.shape[0]
    for name, value in attributes.items():
        setattr(dataset, name, value)
    dataset.PixelData = np.ascontiguousarray(frames, dtype=np.uint16).tobytes()
    pydicom.dcmwrite(path, dataset, enforce_file_format=True)


def frame_group(slope: float, intercept: float) -> Dataset:
    transform = Dataset()
    transform.RescaleSlope = slope
    transform.RescaleIntercept = intercept
    group = Dataset()
    group.PixelValueTransformationSequence = Sequence([transform])
    return group


# --- NIfTI ---------------------------------------------------------------------------


def test_nifti_2d_spacing_orientation(tmp_path):
    array = RNG.random((20, 30))
    affine = np.diag([1.5, 1.25, 8.0, 1.0])
    path = tmp_path / "image.nii.gz"
    nib.save(nib.Nifti1Image(array, affine), path)

    image = read_image(path)

    assert image.array.dtype == np.float64
    np.testing.assert_allclose(image.array, array)
    assert image.spacing_mm == (1.5, 1.25)
    assert image.orientation == ("R", "A")


def test_nifti_3d_slice_last_axis(tmp_path):
    volume = RNG.random((10, 12, 5)).astype(np.float32)
    path = tmp_path / "volume.nii"
    nib.save(nib.Nifti1Image(volume, np.eye(4)), path)

    image = read_image(path, slice_index=3)

    np.testing.assert_allclose(image.array, volume[:, :, 3])


def test_nifti_3d_without_slice_index(tmp_path):
    path = tmp_path / "volume.nii.gz"
    nib.save(nib.Nifti1Image(RNG.random((10, 12, 5)), np.eye(4)), path)

    with pytest.raises(DataError, match="slice index"):
        read_image(path)
    with pytest.raises(DataError, match="out of range"):
        read_image(path, slice_index=5)


def test_nifti_float_labels_rounded(tmp_path):
    labels = np.zeros((8, 8))
    labels[2:4, 2:4] = 2.999999999301508
    labels[5, 5] = 1.0000004
    path = tmp_path / "labels.nii.gz"
    nib.save(nib.Nifti1Image(labels, np.eye(4)), path)

    result = read_label_map(path, allowed={0, 1, 2, 3})

    assert result.array.dtype == np.int64
    assert set(np.unique(result.array)) == {0, 1, 3}
    assert int((result.array == 3).sum()) == 4


def test_nifti_half_label_rejected(tmp_path):
    labels = np.zeros((8, 8))
    labels[1, 1] = 2.5
    path = tmp_path / "labels.nii.gz"
    nib.save(nib.Nifti1Image(labels, np.eye(4)), path)

    with pytest.raises(DataError, match=r"non-integer values such as 2\.5") as error:
        read_label_map(path)
    assert "labels.nii.gz" in str(error.value)


# --- NumPy ---------------------------------------------------------------------------


def test_npy_and_npz_with_key(tmp_path):
    array = RNG.random((16, 16))
    np.save(tmp_path / "image.npy", array)
    np.savez(tmp_path / "case.npz", image=array, labels=np.ones((16, 16), np.uint8))

    assert np.array_equal(read_image(tmp_path / "image.npy").array, array)
    assert np.array_equal(read_image(tmp_path / "case.npz", key="image").array, array)
    assert read_label_map(tmp_path / "case.npz", key="labels").array.sum() == 256


def test_npz_key_errors(tmp_path):
    np.savez(tmp_path / "case.npz", image=np.zeros((4, 4)), labels=np.zeros((4, 4)))

    with pytest.raises(DataError, match="several arrays"):
        read_image(tmp_path / "case.npz")
    with pytest.raises(DataError, match="no array named 'scar'"):
        read_image(tmp_path / "case.npz", key="scar")


def test_npy_volume_slice(tmp_path):
    volume = RNG.random((6, 7, 3))
    np.save(tmp_path / "volume.npy", volume)

    np.testing.assert_array_equal(
        read_image(tmp_path / "volume.npy", slice_index=2).array, volume[..., 2]
    )


def test_image_nan_rejected(tmp_path):
    array = np.ones((5, 5))
    array[1, 2] = np.nan
    array[3, 3] = np.inf
    np.save(tmp_path / "image.npy", array)

    with pytest.raises(DataError, match="2 NaN or infinite"):
        read_image(tmp_path / "image.npy")


# --- PNG and TIFF --------------------------------------------------------------------


def test_png_8_and_16_bit(tmp_path):
    eight = RNG.integers(0, 256, (12, 10), dtype=np.uint8)
    sixteen = RNG.integers(0, 65536, (12, 10), dtype=np.uint16)
    Image.fromarray(eight).save(tmp_path / "eight.png")
    Image.fromarray(sixteen).save(tmp_path / "sixteen.png")

    np.testing.assert_array_equal(read_image(tmp_path / "eight.png").array, eight)
    np.testing.assert_array_equal(read_image(tmp_path / "sixteen.png").array, sixteen)
    assert read_image(tmp_path / "sixteen.png").spacing_mm is None


def test_tiff_16_bit_and_pages(tmp_path):
    pages = [RNG.integers(0, 65536, (9, 11), dtype=np.uint16) for _ in range(3)]
    Image.fromarray(pages[0]).save(tmp_path / "single.tif")
    images = [Image.fromarray(page) for page in pages]
    images[0].save(tmp_path / "stack.tiff", save_all=True, append_images=images[1:])

    np.testing.assert_array_equal(read_image(tmp_path / "single.tif").array, pages[0])
    np.testing.assert_array_equal(
        read_image(tmp_path / "stack.tiff", slice_index=2).array, pages[2]
    )
    with pytest.raises(DataError, match="3 pages"):
        read_image(tmp_path / "stack.tiff")


def test_binary_mask_0_255(tmp_path):
    mask = np.zeros((8, 8), np.uint8)
    mask[2:5, 3:6] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")

    result = read_binary_mask(tmp_path / "mask.png")

    assert result.array.dtype == np.bool_
    assert int(result.array.sum()) == 9


def test_binary_mask_other_values(tmp_path):
    mask = np.zeros((8, 8), np.uint8)
    mask[0, 0] = 1
    mask[1, 1] = 2
    Image.fromarray(mask).save(tmp_path / "mask.png")

    with pytest.raises(DataError, match=r"found values \{0, 1, 2\}"):
        read_binary_mask(tmp_path / "mask.png")


def test_label_values_outside_allowed(tmp_path):
    labels = np.zeros((8, 8), np.uint8)
    labels[1, 1] = 7
    Image.fromarray(labels).save(tmp_path / "labels.png")

    with pytest.raises(DataError) as error:
        read_label_map(tmp_path / "labels.png", allowed={0, 1, 2, 3, 4})

    message = str(error.value)
    assert "labels.png" in message
    assert "{7}" in message
    assert "{0, 1, 2, 3, 4}" in message


def test_colour_png_rejected(tmp_path):
    colour = RNG.integers(0, 256, (6, 6, 3), dtype=np.uint8)
    Image.fromarray(colour).save(tmp_path / "colour.png")

    with pytest.raises(DataError, match="colour image"):
        read_image(tmp_path / "colour.png")


# --- DICOM ---------------------------------------------------------------------------


def test_dicom_single_frame_rescale(tmp_path):
    stored = RNG.integers(0, 1000, (10, 12), dtype=np.uint16)
    path = tmp_path / "slice.dcm"
    write_dicom(
        path,
        stored,
        RescaleSlope=2.0,
        RescaleIntercept=-100.0,
        PixelSpacing=[1.4, 1.6],
        ImageOrientationPatient=[1, 0, 0, 0, 1, 0],
    )

    image = read_image(path)

    np.testing.assert_allclose(image.array, stored * 2.0 - 100.0)
    assert image.spacing_mm == (1.4, 1.6)
    assert image.orientation == ("P", "L")


def test_dicom_multiframe_per_frame_rescale(tmp_path):
    stored = RNG.integers(0, 1000, (3, 8, 9), dtype=np.uint16)
    shared = Dataset()
    measures = Dataset()
    measures.PixelSpacing = [1.5, 1.5]
    shared.PixelMeasuresSequence = Sequence([measures])
    path = tmp_path / "multi.dcm"
    write_dicom(
        path,
        stored,
        PerFrameFunctionalGroupsSequence=Sequence(
            [frame_group(1.0, 0.0), frame_group(0.5, 10.0), frame_group(3.0, -5.0)]
        ),
        SharedFunctionalGroupsSequence=Sequence([shared]),
    )

    for index, (slope, intercept) in enumerate([(1.0, 0.0), (0.5, 10.0), (3.0, -5.0)]):
        image = read_image(path, slice_index=index)
        np.testing.assert_allclose(image.array, stored[index] * slope + intercept)
        assert image.spacing_mm == (1.5, 1.5)
    with pytest.raises(DataError, match="3 frames"):
        read_image(path)


def test_dicom_monochrome1_inverted(tmp_path):
    stored = np.array([[0, 100], [300, 400]], dtype=np.uint16)
    path = tmp_path / "mono1.dcm"
    write_dicom(path, stored, PhotometricInterpretation="MONOCHROME1")

    image = read_image(path)

    np.testing.assert_allclose(image.array, [[400, 300], [100, 0]])


def test_dicom_without_suffix(tmp_path):
    stored = RNG.integers(0, 100, (4, 4), dtype=np.uint16)
    path = tmp_path / "IM0001"
    write_dicom(path, stored)

    np.testing.assert_array_equal(read_image(path).array, stored)


# --- failures and alignment ----------------------------------------------------------


def test_missing_and_unsupported_files(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        read_image(tmp_path / "absent.png")

    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(DataError, match="unsupported file type '.txt'"):
        read_image(tmp_path / "notes.txt")

    (tmp_path / "broken.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(DataError, match="cannot read the file"):
        read_image(tmp_path / "broken.png")


def test_check_aligned_mismatches(tmp_path):
    image = SliceArray(np.zeros((4, 4)), (1.0, 1.0), ("R", "A"), tmp_path / "image.nii")
    smaller = SliceArray(np.zeros((4, 5), bool), None, None, tmp_path / "mask.nii")
    coarser = SliceArray(np.zeros((4, 4), bool), (1.0, 1.01), ("R", "A"), tmp_path / "mask.nii")
    flipped = SliceArray(np.zeros((4, 4), bool), (1.0, 1.0005), ("L", "A"), tmp_path / "mask.nii")
    close = SliceArray(np.zeros((4, 4), bool), (1.0, 1.0005), ("R", "A"), tmp_path / "mask.nii")

    with pytest.raises(DataError, match=r"shape \(4, 5\)"):
        check_aligned(image, smaller, case_id="c1")
    with pytest.raises(DataError, match="pixel spacing"):
        check_aligned(image, coarser)
    with pytest.raises(DataError, match="orientation LA"):
        check_aligned(image, flipped)
    check_aligned(image, close)

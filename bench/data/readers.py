"""Read one 2D slice from the file formats that LGE-CMR data is kept in.

Supported: NIfTI (``.nii``, ``.nii.gz``; 2D, or 3D with a slice index along the
last axis), DICOM (single- and multi-frame; rescale applied per frame;
MONOCHROME1 inverted for images), NumPy (``.npy``, ``.npz`` with a key) and
PNG/TIFF (8 and 16 bit, through pillow).

Example:
    >>> from bench.data.readers import read_image, read_label_map
    >>> image = read_image("case01.nii.gz", slice_index=4)  # doctest: +SKIP
    >>> labels = read_label_map("case01_gt.nii.gz", slice_index=4, allowed={0, 1, 2, 3, 4})  # doctest: +SKIP
    >>> image.array.shape == labels.array.shape  # doctest: +SKIP
    True

Every reader returns a ``SliceArray``: the 2D array plus the pixel spacing and
orientation where the format stores them. Every failure raises ``DataError``
with the file name, the offending value and what to do.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.errors import DataError

__all__ = [
    "SliceArray",
    "read_array",
    "read_image",
    "read_label_map",
    "read_binary_mask",
    "check_aligned",
    "npz_keys",
    "SUPPORTED_SUFFIXES",
    "LABEL_TOLERANCE",
    "SPACING_TOLERANCE_MM",
]

logger = logging.getLogger(__name__)

SUPPORTED_SUFFIXES = (".nii", ".nii.gz", ".dcm", ".npy", ".npz", ".png", ".tif", ".tiff")

# A stored label value within this distance of an integer is read as that integer
# (float exports such as 2.999999999301508); anything farther is an error.
LABEL_TOLERANCE = 1e-3

# Image and mask spacings that differ by more than this are a mismatch.
SPACING_TOLERANCE_MM = 1e-3


@dataclass(frozen=True)
class SliceArray:
    """One 2D slice as read from a file.

    Attributes:
        array: the 2D pixel array (rows, columns); its dtype depends on the reader.
        spacing_mm: pixel spacing (rows, columns) in mm, or None where the
            format stores none (PNG, NumPy).
        orientation: anatomical direction of the row and column axes as
            patient-axis codes (for example ``("R", "A")``), or None where the
            format stores none.
        path: the file the slice came from.
    """

    array: np.ndarray
    spacing_mm: tuple[float, float] | None
    orientation: tuple[str, str] | None
    path: Path

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.array.shape)  # type: ignore[return-value]


def read_image(
    path: str | os.PathLike, *, slice_index: int | None = None, key: str | None = None
) -> SliceArray:
    """Read an intensity image as a float64 2D array.

    DICOM rescale slope and intercept are applied per frame, and MONOCHROME1
    images are inverted so that bright always means high signal.

    Args:
        path: the image file.
        slice_index: index along the last axis of a 3D volume (the frame of a
            multi-frame DICOM, the page of a multi-page TIFF).
        key: the array name inside an ``.npz`` file.

    Raises:
        DataError: the file is missing, unreadable, not 2D after slicing, or
            contains NaN or infinite pixels.
    """
    raw = read_array(path, slice_index=slice_index, key=key, invert_monochrome1=True)
    array = raw.array.astype(np.float64, copy=False)

    finite = np.isfinite(array)
    if not finite.all():
        count = int(array.size - finite.sum())
        raise DataError(
            f"{raw.path}: {count} NaN or infinite pixel(s) in the image; "
            "replace them (for example with 0) in the source file"
        )
    return SliceArray(array, raw.spacing_mm, raw.orientation, raw.path)


def read_label_map(
    path: str | os.PathLike,
    *,
    slice_index: int | None = None,
    key: str | None = None,
    allowed: Iterable[int] | None = None,
) -> SliceArray:
    """Read a label map as an int64 2D array.

    Values within ``LABEL_TOLERANCE`` of an integer are rounded to it.

    Args:
        path: the label file.
        slice_index: as for ``read_image``.
        key: as for ``read_image``.
        allowed: the label values the dataset declares; None accepts any integer.

    Raises:
        DataError: the file cannot be read, contains non-integer or non-finite
            values, or values outside ``allowed``.
    """
    raw = read_array(path, slice_index=slice_index, key=key, invert_monochrome1=False)
    labels = _to_integer_labels(raw.array, raw.path)

    if allowed is not None:
        _check_allowed(labels, set(int(value) for value in allowed), raw.path)
    return SliceArray(labels, raw.spacing_mm, raw.orientation, raw.path)


def read_binary_mask(
    path: str | os.PathLike, *, slice_index: int | None = None, key: str | None = None
) -> SliceArray:
    """Read a binary mask as a bool 2D array; values 0/1 and 0/255 are both accepted.

    Raises:
        DataError: the file cannot be read or contains values other than 0/1 or 0/255.
    """
    labels = read_label_map(path, slice_index=slice_index, key=key)
    values = set(np.unique(labels.array).tolist())

    if values <= {0, 1}:
        mask = labels.array == 1
    elif values <= {0, 255}:
        mask = labels.array == 255
    else:
        raise DataError(
            f"{labels.path}: a binary mask must contain 0/1 or 0/255, found values "
            f"{_format_values(values)}; if this is a label map, list it in a `labels` "
            "column instead"
        )
    return SliceArray(mask, labels.spacing_mm, labels.orientation, labels.path)


def read_array(
    path: str | os.PathLike,
    *,
    slice_index: int | None = None,
    key: str | None = None,
    invert_monochrome1: bool = False,
) -> SliceArray:
    """Read a 2D slice with its stored values and no value checks.

    ``read_image``, ``read_label_map`` and ``read_binary_mask`` build on this;
    ``bench data validate`` uses it to report NaN pixels instead of stopping.

    Raises:
        DataError: the file is missing, has an unsupported suffix, cannot be
            decoded, or is not 2D after applying ``slice_index``.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found; check the path in the manifest")

    suffix = _suffix(path)
    try:
        if suffix in (".nii", ".nii.gz"):
            return _read_nifti(path, slice_index)
        if suffix == ".npy" or suffix == ".npz":
            return _read_numpy(path, slice_index, key)
        if suffix in (".png", ".tif", ".tiff"):
            return _read_pillow(path, slice_index)
        if suffix == ".dcm" or _has_dicom_preamble(path):
            return _read_dicom(path, slice_index, invert_monochrome1)
    except DataError:
        raise
    except Exception as error:  # a decoder library failed on a corrupt or odd file
        raise DataError(
            f"{path}: cannot read the file ({type(error).__name__}: {error}); "
            "check that it is a valid, uncompressed or standard-compressed file"
        ) from None

    raise DataError(
        f"{path}: unsupported file type {suffix or '(no suffix)'!r}; "
        f"convert it to one of {', '.join(SUPPORTED_SUFFIXES)}"
    )


def check_aligned(image: SliceArray, mask: SliceArray, *, case_id: str | None = None) -> None:
    """Check that ``mask`` lies on the same pixel grid as ``image``.

    Shape must match exactly. Spacing (within ``SPACING_TOLERANCE_MM``) and
    orientation are compared only where both files store them.

    Raises:
        DataError: shape, spacing or orientation differ.
    """
    where = f"case {case_id!r}: " if case_id is not None else ""
    if image.shape != mask.shape:
        raise DataError(
            f"{where}{mask.path} has shape {mask.shape} but image {image.path} has shape "
            f"{image.shape}; resample the mask onto the image grid"
        )

    if image.spacing_mm is not None and mask.spacing_mm is not None:
        difference_mm = np.abs(np.subtract(image.spacing_mm, mask.spacing_mm)).max()
        if difference_mm > SPACING_TOLERANCE_MM:
            raise DataError(
                f"{where}{mask.path} has pixel spacing {mask.spacing_mm} mm but image "
                f"{image.path} has {image.spacing_mm} mm; export both from the same grid"
            )

    if image.orientation is not None and mask.orientation is not None:
        if image.orientation != mask.orientation:
            raise DataError(
                f"{where}{mask.path} has orientation {''.join(mask.orientation)} but image "
                f"{image.path} has {''.join(image.orientation)}; reorient the mask to the image"
            )


def npz_keys(path: str | os.PathLike) -> list[str]:
    """Return the array names stored in an ``.npz`` file.

    Raises:
        DataError: the file is missing or not a valid ``.npz``.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found; check the path in the manifest")
    try:
        with np.load(path, allow_pickle=False) as archive:
            return list(archive.files)
    except Exception as error:
        raise DataError(
            f"{path}: not a valid .npz file ({error}); re-save it with numpy.savez"
        ) from None


# --- value checks -------------------------------------------------------------------


def _to_integer_labels(array: np.ndarray, path: Path) -> np.ndarray:
    if array.dtype == np.bool_:
        return array.astype(np.int64)
    if np.issubdtype(array.dtype, np.integer):
        return array.astype(np.int64)

    values = array.astype(np.float64)
    if not np.isfinite(values).all():
        raise DataError(
            f"{path}: the label map contains NaN or infinite values; re-export it with integer labels"
        )

    rounded = np.rint(values)
    off_integer = np.abs(values - rounded) > LABEL_TOLERANCE
    if off_integer.any():
        examples = np.unique(values[off_integer])[:5]
        raise DataError(
            f"{path}: the label map contains non-integer values such as "
            f"{', '.join(f'{value:g}' for value in examples)}; labels must be integers "
            "(was it resampled with linear interpolation? use nearest neighbour)"
        )
    return rounded.astype(np.int64)


def _check_allowed(labels: np.ndarray, allowed: set[int], path: Path) -> None:
    found = set(np.unique(labels).tolist())
    unexpected = found - allowed
    if unexpected:
        raise DataError(
            f"{path}: label value(s) {_format_values(unexpected)} are not in the declared set "
            f"{_format_values(allowed)} (found {_format_values(found)}); fix the file or "
            "declare the labels in the dataset descriptor"
        )


def _format_values(values: Iterable[int]) -> str:
    return "{" + ", ".join(str(value) for value in sorted(values)) + "}"


# --- slicing ------------------------------------------------------------------------


def _suffix(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(".nii.gz"):
        return ".nii.gz"
    return path.suffix.lower()


def _take_slice(
    volume: np.ndarray, slice_index: int | None, path: Path, axis: int = -1
) -> np.ndarray:
    """Return the 2D slice ``slice_index`` of ``volume`` along ``axis``.

    Singleton axes are dropped first, so a 2D image stored as (X, Y, 1) needs
    no slice index.
    """
    if volume.ndim == 2:
        if slice_index not in (None, 0):
            raise DataError(
                f"{path}: slice index {slice_index} given but the file is 2D "
                f"{volume.shape}; leave the `slice` column empty"
            )
        return volume

    if volume.ndim == 3 and volume.shape[axis] == 1 and slice_index in (None, 0):
        return np.take(volume, 0, axis=axis)

    if volume.ndim != 3:
        squeezed = np.squeeze(volume)
        if squeezed.ndim in (2, 3) and squeezed.ndim < volume.ndim:
            return _take_slice(squeezed, slice_index, path, axis)
        raise DataError(
            f"{path}: expected a 2D image or a 3D volume, got shape {volume.shape}; "
            "split it into 2D or 3D files"
        )

    depth = volume.shape[axis]
    if slice_index is None:
        raise DataError(
            f"{path}: the file is a 3D volume {volume.shape} with {depth} slices; "
            "give a slice index (the manifest's `slice` column)"
        )
    if not 0 <= slice_index < depth:
        raise DataError(
            f"{path}: slice index {slice_index} is out of range for {depth} slices "
            f"(shape {volume.shape}); use 0 to {depth - 1}"
        )
    return np.take(volume, slice_index, axis=axis)


# --- NIfTI --------------------------------------------------------------------------


def _read_nifti(path: Path, slice_index: int | None) -> SliceArray:
    import nibabel as nib

    image = nib.load(str(path))
    # get_fdata applies the header's scl_slope/scl_inter, as DICOM rescale is applied.
    volume = np.asanyarray(image.get_fdata(dtype=np.float64))
    array = _take_slice(volume, slice_index, path)

    zooms = image.header.get_zooms()
    spacing_mm = (float(zooms[0]), float(zooms[1])) if len(zooms) >= 2 else None
    codes = nib.aff2axcodes(image.affine)
    orientation = (str(codes[0]), str(codes[1])) if None not in codes[:2] else None
    return SliceArray(array, spacing_mm, orientation, path)


# --- NumPy --------------------------------------------------------------------------


def _read_numpy(path: Path, slice_index: int | None, key: str | None) -> SliceArray:
    if _suffix(path) == ".npy":
        volume = np.load(path, allow_pickle=False)
    else:
        with np.load(path, allow_pickle=False) as archive:
            volume = archive[_choose_npz_key(archive.files, key, path)]

    if not (np.issubdtype(volume.dtype, np.number) or volume.dtype == np.bool_):
        raise DataError(
            f"{path}: array of dtype {volume.dtype} is not numeric; save a numeric array"
        )
    return SliceArray(_take_slice(volume, slice_index, path), None, None, path)


def _choose_npz_key(files: list[str], key: str | None, path: Path) -> str:
    if key is not None:
        if key not in files:
            raise DataError(f"{path}: no array named {key!r}; the file contains {files}")
        return key
    if len(files) == 1:
        return files[0]
    raise DataError(f"{path}: the file contains several arrays {files}; name one with a key")


# --- PNG and TIFF -------------------------------------------------------------------


def _read_pillow(path: Path, slice_index: int | None) -> SliceArray:
    from PIL import Image

    with Image.open(path) as image:
        pages = getattr(image, "n_frames", 1)
        if pages > 1:
            if slice_index is None or not 0 <= slice_index < pages:
                raise DataError(
                    f"{path}: multi-page file with {pages} pages and slice index {slice_index}; "
                    f"give a slice index from 0 to {pages - 1}"
                )
            image.seek(slice_index)
        elif slice_index not in (None, 0):
            raise DataError(
                f"{path}: slice index {slice_index} given but the file contains one 2D image; "
                "leave the `slice` column empty"
            )
        array = _pillow_to_array(image, path)
    return SliceArray(array, None, None, path)


def _pillow_to_array(image, path: Path) -> np.ndarray:
    # Palette ("P") images keep their indices: in a label map the index is the label.
    array = np.asarray(image)

    if array.ndim == 3:
        # Greyscale saved as RGB(A): every colour channel carries the same value.
        colour = array[..., :3]
        if not (
            np.array_equal(colour[..., 0], colour[..., 1])
            and np.array_equal(colour[..., 0], colour[..., 2])
        ):
            raise DataError(
                f"{path}: colour image (mode {image.mode}); save LGE slices and masks "
                "as single-channel greyscale"
            )
        array = colour[..., 0]
    return np.array(array)


# --- DICOM --------------------------------------------------------------------------


def _has_dicom_preamble(path: Path) -> bool:
    with open(path, "rb") as stream:
        stream.seek(128)
        return stream.read(4) == b"DICM"


def _read_dicom(path: Path, slice_index: int | None, invert_monochrome1: bool) -> SliceArray:
    import pydicom

    dataset = pydicom.dcmread(path)
    if "PixelData" not in dataset:
        raise DataError(f"{path}: DICOM file without pixel data; list an image file instead")

    frames = int(getattr(dataset, "NumberOfFrames", 1) or 1)
    pixels = dataset.pixel_array
    frame_index = _dicom_frame_index(frames, slice_index, path)
    frame = pixels[frame_index] if frames > 1 else pixels

    slope, intercept = _dicom_rescale(dataset, frame_index)
    array = frame.astype(np.float64) * slope + intercept
    if slope == 1.0 and intercept == 0.0 and np.issubdtype(frame.dtype, np.integer):
        array = frame.astype(np.int64)

    if invert_monochrome1 and getattr(dataset, "PhotometricInterpretation", "") == "MONOCHROME1":
        # MONOCHROME1 displays the lowest value as white; flip so high means bright.
        array = array.max() + array.min() - array

    spacing_mm = _dicom_spacing(dataset, frame_index)
    orientation = _dicom_orientation(dataset, frame_index)
    return SliceArray(array, spacing_mm, orientation, path)


def _dicom_frame_index(frames: int, slice_index: int | None, path: Path) -> int:
    if frames == 1:
        if slice_index not in (None, 0):
            raise DataError(
                f"{path}: slice index {slice_index} given but the DICOM file contains one frame; "
                "leave the `slice` column empty"
            )
        return 0
    if slice_index is None or not 0 <= slice_index < frames:
        raise DataError(
            f"{path}: multi-frame DICOM with {frames} frames and slice index {slice_index}; "
            f"give a slice index from 0 to {frames - 1}"
        )
    return slice_index


def _functional_group_item(dataset, frame_index: int, sequence_name: str):
    """Return the first item of ``sequence_name`` for one frame, per-frame before shared."""
    for groups_name, index in (
        ("PerFrameFunctionalGroupsSequence", frame_index),
        ("SharedFunctionalGroupsSequence", 0),
    ):
        groups = getattr(dataset, groups_name, None)
        if groups is None or len(groups) <= index:
            continue
        sequence = getattr(groups[index], sequence_name, None)
        if sequence:
            return sequence[0]
    return None


def _dicom_rescale(dataset, frame_index: int) -> tuple[float, float]:
    item = _functional_group_item(dataset, frame_index, "PixelValueTransformationSequence")
    source = item if item is not None and "RescaleSlope" in item else dataset
    slope = float(getattr(source, "RescaleSlope", 1.0) or 1.0)
    intercept = float(getattr(source, "RescaleIntercept", 0.0) or 0.0)
    return slope, intercept


def _dicom_spacing(dataset, frame_index: int) -> tuple[float, float] | None:
    item = _functional_group_item(dataset, frame_index, "PixelMeasuresSequence")
    source = item if item is not None and "PixelSpacing" in item else dataset
    spacing = getattr(source, "PixelSpacing", None)
    if spacing is None or len(spacing) != 2:
        return None
    return (float(spacing[0]), float(spacing[1]))


def _dicom_orientation(dataset, frame_index: int) -> tuple[str, str] | None:
    item = _functional_group_item(dataset, frame_index, "PlaneOrientationSequence")
    source = item if item is not None and "ImageOrientationPatient" in item else dataset
    cosines = getattr(source, "ImageOrientationPatient", None)
    if cosines is None or len(cosines) != 6:
        return None
    row_direction = np.asarray(cosines[:3], dtype=np.float64)
    column_direction = np.asarray(cosines[3:], dtype=np.float64)
    # Array axis 0 runs down the rows, i.e. along the column direction cosine.
    return (_lps_code(column_direction), _lps_code(row_direction))


def _lps_code(direction: np.ndarray) -> str:
    """Return the patient-axis code (DICOM LPS frame) of a direction's main component."""
    axis = int(np.argmax(np.abs(direction)))
    return ("L", "P", "S")[axis] if direction[axis] > 0 else ("R", "A", "I")[axis]

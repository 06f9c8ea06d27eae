"""Crop, mask, normalise and resize one LGE slice and its masks to a fixed size.

Steps, in order:

1. Crop to the myocardium bounding box plus a margin, made square and padded
   with zeros where it leaves the image.
2. Normalise intensities from the myocardium pixels.
3. Resize the image with anti-aliased bilinear interpolation and every mask
   with nearest neighbour, so labels are never interpolated.
4. Set the image outside the resized myocardium to 0.

Example:
    >>> import numpy as np
    >>> from bench.data.preprocess import PreprocessConfig, preprocess_slice
    >>> image = np.random.default_rng(0).random((128, 128))
    >>> myocardium = np.zeros((128, 128), bool); myocardium[40:80, 40:80] = True
    >>> scar = np.zeros_like(myocardium); scar[40:50, 40:80] = True
    >>> result = preprocess_slice(image, myocardium, scar, config=PreprocessConfig(size=64))
    >>> result.image.shape, round(result.burden_native_percent, 1)
    ((64, 64), 25.0)
"""

from __future__ import annotations

import difflib
import logging
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

from bench.errors import ConfigError, DataError

__all__ = [
    "PreprocessConfig",
    "PreprocessedSlice",
    "EmptyMyocardiumError",
    "NORMALIZATIONS",
    "preprocess_slice",
    "square_crop_box",
    "scar_burden_percent",
]

logger = logging.getLogger(__name__)

# Intensity normalisations, all computed from the myocardium pixels:
# "percentile" maps the low and high percentile to 0 and 1, which is robust to outliers.
# "zscore" gives zero mean and unit standard deviation.
# "minmax" maps the minimum and maximum to 0 and 1. "none" keeps the stored values.
NORMALIZATIONS = ("percentile", "zscore", "minmax", "none")


class EmptyMyocardiumError(DataError):
    """A slice whose myocardium mask has no pixels, so it cannot be cropped or scored."""


@dataclass(frozen=True)
class PreprocessConfig:
    """Preprocessing settings; part of the prepared-dataset cache key.

    Attributes:
        size: side of the square output in pixels.
        margin: margin added on each side of the myocardium bounding box, as a
            fraction of its longer side.
        mask_outside: set image pixels outside the myocardium to 0.
        normalization: one of ``NORMALIZATIONS``.
        percentiles: low and high percentile (0–100) used by ``"percentile"``.
        clip: clip normalised intensities to [0, 1] (``"percentile"`` and
            ``"minmax"`` only).
    """

    size: int = 64
    margin: float = 0.10
    mask_outside: bool = True
    normalization: str = "percentile"
    percentiles: tuple[float, float] = (1.0, 99.0)
    clip: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "percentiles", tuple(float(p) for p in self.percentiles))
        _check_config(self)

    def to_dict(self) -> dict[str, Any]:
        """Return the settings as plain JSON/YAML-ready values."""
        values = asdict(self)
        values["percentiles"] = list(self.percentiles)
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> PreprocessConfig:
        """Build a config from a mapping, such as a descriptor's ``preprocessing`` block.

        Raises:
            ConfigError: an unknown key (with close matches) or an invalid value.
        """
        values = dict(values or {})
        known = [item.name for item in fields(cls)]
        for key in values:
            if key not in known:
                close = difflib.get_close_matches(key, known, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise ConfigError(
                    f"unknown preprocessing setting {key!r}{hint} (known: {', '.join(known)})"
                )
        return cls(**values)

    def replace(self, **overrides: Any) -> PreprocessConfig:
        """Return a copy with ``overrides`` applied (validated like ``from_dict``)."""
        return PreprocessConfig.from_dict({**self.to_dict(), **overrides})


@dataclass
class PreprocessedSlice:
    """One slice after preprocessing.

    Attributes:
        image: ``(S, S)`` float32 normalised intensities.
        myocardium: ``(S, S)`` bool.
        scar: ``(S, S)`` bool, restricted to the myocardium.
        extra_masks: further ``(S, S)`` bool masks, resized like ``scar``.
        burden_native_percent: scar burden before crop and resize.
        burden_resized_percent: scar burden after resize.
        spacing_mm: pixel spacing after resize, or NaN when the input had none.
    """

    image: np.ndarray
    myocardium: np.ndarray
    scar: np.ndarray
    extra_masks: dict[str, np.ndarray] = field(default_factory=dict)
    burden_native_percent: float = math.nan
    burden_resized_percent: float = math.nan
    spacing_mm: float = math.nan


def preprocess_slice(
    image: np.ndarray,
    myocardium: np.ndarray,
    scar: np.ndarray,
    *,
    config: PreprocessConfig | None = None,
    extra_masks: dict[str, np.ndarray] | None = None,
    spacing_mm: tuple[float, float] | None = None,
    case_id: str | None = None,
) -> PreprocessedSlice:
    """Crop, normalise and resize one slice and its masks.

    The scar (and every extra mask) is restricted to the myocardium, because
    scar burden is defined as the scar fraction of the myocardium.

    Args:
        image: 2D intensities.
        myocardium: 2D bool myocardium mask ``M``, same shape.
        scar: 2D bool scar mask ``Y``, same shape.
        config: settings; defaults to ``PreprocessConfig()``.
        extra_masks: further 2D bool masks (other raters, noise-free truth).
        spacing_mm: native pixel spacing (rows, columns), if known.
        case_id: used in messages.

    Raises:
        EmptyMyocardiumError: ``myocardium`` has no pixels, or none survive the resize.
        DataError: the arrays differ in shape.
    """
    config = config or PreprocessConfig()
    extra_masks = extra_masks or {}
    name = case_id if case_id is not None else "slice"
    _check_shapes(image, myocardium, scar, extra_masks, name)

    myocardium = myocardium.astype(bool)
    scar = scar.astype(bool) & myocardium
    if not myocardium.any():
        raise EmptyMyocardiumError(
            f"case {name!r}: the myocardium mask is empty; remove the slice from the manifest "
            "or fix its mask"
        )
    burden_native = scar_burden_percent(myocardium, scar)

    box = square_crop_box(myocardium, config.margin)
    image_crop = _crop(image.astype(np.float64), box)
    myocardium_crop = _crop(myocardium, box)
    normalised = _normalise(image_crop, myocardium_crop, config)

    resized_myocardium = _resize_mask(myocardium_crop, config.size)
    if not resized_myocardium.any():
        raise EmptyMyocardiumError(
            f"case {name!r}: the myocardium ({int(myocardium.sum())} px) vanished when resized "
            f"to {config.size}×{config.size}; use a larger size or remove the slice"
        )
    resized_scar = _resize_mask(_crop(scar, box), config.size) & resized_myocardium
    resized_image = _resize_image(normalised, config.size)
    if config.mask_outside:
        resized_image[~resized_myocardium] = 0.0

    resized_extra = {
        key: _resize_mask(_crop(mask.astype(bool) & myocardium, box), config.size)
        & resized_myocardium
        for key, mask in extra_masks.items()
    }
    return PreprocessedSlice(
        image=resized_image.astype(np.float32),
        myocardium=resized_myocardium,
        scar=resized_scar,
        extra_masks=resized_extra,
        burden_native_percent=burden_native,
        burden_resized_percent=scar_burden_percent(resized_myocardium, resized_scar),
        spacing_mm=_resized_spacing_mm(spacing_mm, box, config.size),
    )


def square_crop_box(myocardium: np.ndarray, margin: float) -> tuple[int, int, int]:
    """Return ``(top, left, side)`` of the square crop around the myocardium.

    The box is centred on the myocardium bounding box, and its side is the
    longer bounding-box side plus ``margin`` of it on each side. It may extend
    past the image border, where ``_crop`` pads with zeros.
    """
    rows = np.flatnonzero(myocardium.any(axis=1))
    columns = np.flatnonzero(myocardium.any(axis=0))
    height = rows[-1] - rows[0] + 1
    width = columns[-1] - columns[0] + 1

    side = int(math.ceil(max(height, width) * (1.0 + 2.0 * margin)))
    centre_row = (rows[0] + rows[-1] + 1) / 2.0
    centre_column = (columns[0] + columns[-1] + 1) / 2.0
    top = int(math.floor(centre_row - side / 2.0))
    left = int(math.floor(centre_column - side / 2.0))
    return top, left, side


def scar_burden_percent(myocardium: np.ndarray, scar: np.ndarray) -> float:
    """Return ``100 · |Y ∩ M| / |M|``, counted in int64; NaN for an empty myocardium."""
    myocardium_pixels = int(np.count_nonzero(myocardium))
    if myocardium_pixels == 0:
        return math.nan
    scar_pixels = int(np.count_nonzero(np.logical_and(scar, myocardium)))
    return 100.0 * scar_pixels / myocardium_pixels


# --- helpers ------------------------------------------------------------------------


def _check_config(config: PreprocessConfig) -> None:
    if not isinstance(config.size, int) or isinstance(config.size, bool) or config.size < 8:
        raise ConfigError(f"preprocessing size must be an integer ≥ 8 pixels, got {config.size!r}")
    if not 0.0 <= float(config.margin) <= 2.0:
        raise ConfigError(
            f"preprocessing margin must be a fraction between 0 and 2, got {config.margin!r}"
        )
    if config.normalization not in NORMALIZATIONS:
        raise ConfigError(
            f"unknown normalization {config.normalization!r}; choose one of {', '.join(NORMALIZATIONS)}"
        )
    low, high = config.percentiles if len(config.percentiles) == 2 else (None, None)
    if low is None or not 0.0 <= low < high <= 100.0:
        raise ConfigError(
            f"percentiles must be two values 0 ≤ low < high ≤ 100, got {list(config.percentiles)}"
        )


def _check_shapes(image, myocardium, scar, extra_masks, name: str) -> None:
    shapes = {"image": image.shape, "myocardium": myocardium.shape, "scar": scar.shape}
    shapes.update({key: mask.shape for key, mask in extra_masks.items()})
    if image.ndim != 2 or len(set(shapes.values())) != 1:
        raise DataError(
            f"case {name!r}: image and masks must be 2D arrays of one shape, got {shapes}; "
            "resample the masks onto the image grid"
        )


def _crop(array: np.ndarray, box: tuple[int, int, int]) -> np.ndarray:
    top, left, side = box
    rows, columns = array.shape
    pad_before = (max(0, -top), max(0, -left))
    pad_after = (max(0, top + side - rows), max(0, left + side - columns))
    padded = np.pad(array, ((pad_before[0], pad_after[0]), (pad_before[1], pad_after[1])))
    top += pad_before[0]
    left += pad_before[1]
    return padded[top : top + side, left : left + side]


def _normalise(image: np.ndarray, myocardium: np.ndarray, config: PreprocessConfig) -> np.ndarray:
    values = image[myocardium]
    if config.normalization == "none":
        return image.copy()

    if config.normalization == "zscore":
        scale = values.std()
        return (image - values.mean()) / (scale if scale > 0 else 1.0)

    if config.normalization == "percentile":
        low, high = np.percentile(values, config.percentiles)
    else:
        low, high = values.min(), values.max()
    scaled = (image - low) / (high - low if high > low else 1.0)
    return np.clip(scaled, 0.0, 1.0) if config.clip else scaled


def _resize_image(image: np.ndarray, size: int) -> np.ndarray:
    import torch
    import torch.nn.functional as functional

    tensor = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None]
    resized = functional.interpolate(
        tensor, size=(size, size), mode="bilinear", align_corners=False, antialias=True
    )
    return resized[0, 0].numpy().astype(np.float64)


def _resize_mask(mask: np.ndarray, size: int) -> np.ndarray:
    """Resize a bool mask by nearest neighbour (pixel centres), so no value is invented."""
    rows, columns = mask.shape
    row_index = np.minimum(((np.arange(size) + 0.5) * rows / size).astype(np.int64), rows - 1)
    column_index = np.minimum(
        ((np.arange(size) + 0.5) * columns / size).astype(np.int64), columns - 1
    )
    return np.ascontiguousarray(mask[np.ix_(row_index, column_index)], dtype=bool)


def _resized_spacing_mm(
    spacing_mm: tuple[float, float] | None, box: tuple[int, int, int], size: int
) -> float:
    if spacing_mm is None:
        return math.nan
    # NOTE: one number per slice, so anisotropic pixels are reported as their mean spacing.
    return float(np.mean(spacing_mm)) * box[2] / size

"""Per-case segmentation metrics of scar masks and the per-case table.

Example:
    >>> import numpy as np
    >>> from bench.evaluation.metrics import binarize, dice, per_case_table
    >>> binarize(np.array([-2.0, -0.2, 0.3, 1.0, 3.0]), kind="logits").astype(int)
    array([0, 0, 1, 1, 1])
    >>> dice(np.array([0, 255, 255], dtype=np.uint8), np.array([0, 255, 255], dtype=np.uint8))
    1.0
    >>> myocardium = np.ones((1, 4, 4), dtype=bool)
    >>> scar = np.zeros((1, 4, 4), dtype=bool); scar[0, :2] = True
    >>> table = per_case_table(scar.astype(np.float32), scar, myocardium, ["case-1"])
    >>> float(table.loc[0, "true_burden"])
    50.0

Conventions (``docs/statistics.md`` gives the reasons):

- A prediction is thresholded strictly (``probability > threshold``, or
  ``logit > log(threshold / (1 - threshold))``), then restricted to the
  myocardium before any metric. The reference scar is restricted to the
  myocardium as well, so Dice and burden count the same pixels.
- Pixel counts are int64, so 0/255 uint8 masks never wrap around.
- Dice and IoU are NaN when both masks are empty and 0.0 when only one is.
  Precision is NaN when the prediction is empty and sensitivity is NaN when the
  reference is empty, because their denominators are zero.
- HD95 is the larger of the two directed 95th percentiles of boundary-to-boundary
  Euclidean distances (the MONAI definition). It is NaN when either mask is empty.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import ndimage

from bench.errors import DataError

__all__ = [
    "OUTPUT_KINDS",
    "METRIC_COLUMNS",
    "binarize",
    "dice",
    "iou",
    "precision",
    "sensitivity",
    "hausdorff_distance_95",
    "scar_burden",
    "per_case_table",
]

logger = logging.getLogger(__name__)

OUTPUT_KINDS = ("logits", "probabilities")

# Columns of ``per_case_table`` in order; ``dice_clean`` follows when a clean
# reference mask is given.
METRIC_COLUMNS = (
    "case_id",
    "dice",
    "iou",
    "precision",
    "sensitivity",
    "hd95_px",
    "hd95_mm",
    "true_burden",
    "pred_burden",
    "burden_error",
    "abs_burden_error",
)

HD_PERCENTILE = 95.0


def binarize(output: Any, kind: str, threshold: float = 0.5) -> np.ndarray:
    """Threshold a network output into a boolean mask.

    Args:
        output: logits or probabilities, any shape (NumPy array or torch tensor).
        kind: ``"logits"`` or ``"probabilities"``; required, because the same
            numbers thresholded under the wrong kind give a different mask.
        threshold: probability threshold in (0, 1). For logits the equivalent
            cut is ``log(threshold / (1 - threshold))``, which is 0 at 0.5.

    Returns:
        A boolean array of the same shape, True where ``output`` is strictly
        above the cut.

    Raises:
        DataError: ``kind`` is unknown, ``threshold`` is outside (0, 1),
            ``output`` contains NaN, or probabilities lie outside [0, 1].
    """
    if kind not in OUTPUT_KINDS:
        raise DataError(
            f"invalid output kind {kind!r}; pass kind='logits' for raw network outputs "
            "or kind='probabilities' for sigmoid outputs"
        )
    if not 0.0 < threshold < 1.0:
        raise DataError(
            f"invalid threshold {threshold!r}; use a probability strictly between 0 and 1"
        )

    values = _as_array(output).astype(np.float64, copy=False)
    if np.isnan(values).any():
        raise DataError(
            f"network output contains {int(np.isnan(values).sum())} NaN value(s); check the model"
        )

    if kind == "logits":
        return values > math.log(threshold / (1.0 - threshold))

    if values.size and (values.min() < 0.0 or values.max() > 1.0):
        raise DataError(
            f"probabilities outside [0, 1] (min {values.min():.4g}, max {values.max():.4g}); "
            "pass kind='logits' if these are raw network outputs"
        )
    return values > threshold


def dice(pred: Any, truth: Any) -> float:
    """Compute the Dice similarity coefficient of two binary masks.

    Args:
        pred: predicted mask, boolean or 0/1 or 0/255 values.
        truth: reference mask of the same shape and encoding rules.

    Returns:
        ``2|P ∩ T| / (|P| + |T|)`` in [0, 1]; NaN when both masks are empty and
        0.0 when exactly one is.

    Raises:
        DataError: the shapes differ or a mask contains values other than 0/1 or 0/255.
    """
    pred_mask, truth_mask = _mask_pair(pred, truth)
    intersection, pred_count, truth_count = _counts(pred_mask, truth_mask)
    denominator = pred_count + truth_count
    if denominator == 0:
        return math.nan
    return float(2 * intersection / denominator)


def iou(pred: Any, truth: Any) -> float:
    """Compute the intersection over union (Jaccard index) of two binary masks.

    Returns:
        ``|P ∩ T| / |P ∪ T|``; NaN when both masks are empty.
    """
    pred_mask, truth_mask = _mask_pair(pred, truth)
    intersection, pred_count, truth_count = _counts(pred_mask, truth_mask)
    union = pred_count + truth_count - intersection
    if union == 0:
        return math.nan
    return float(intersection / union)


def precision(pred: Any, truth: Any) -> float:
    """Compute the precision (positive predictive value) of a predicted mask.

    Returns:
        ``|P ∩ T| / |P|``; NaN when the prediction is empty.
    """
    pred_mask, truth_mask = _mask_pair(pred, truth)
    intersection, pred_count, _ = _counts(pred_mask, truth_mask)
    if pred_count == 0:
        return math.nan
    return float(intersection / pred_count)


def sensitivity(pred: Any, truth: Any) -> float:
    """Compute the sensitivity (recall, true positive rate) of a predicted mask.

    Returns:
        ``|P ∩ T| / |T|``; NaN when the reference is empty.
    """
    pred_mask, truth_mask = _mask_pair(pred, truth)
    intersection, _, truth_count = _counts(pred_mask, truth_mask)
    if truth_count == 0:
        return math.nan
    return float(intersection / truth_count)


def hausdorff_distance_95(
    pred: Any, truth: Any, spacing_mm: float | Sequence[float] = 1.0
) -> float:
    """Compute the symmetric 95th-percentile Hausdorff distance of two 2D masks.

    Boundaries are the mask pixels removed by one binary erosion (4-connected
    structuring element, outside of the image counted as background). For each
    boundary pixel the Euclidean distance to the other mask's nearest boundary
    pixel is taken, and the result is the larger of the two directed 95th
    percentiles (linear interpolation), as in
    ``monai.metrics.compute_hausdorff_distance(..., percentile=95)``.

    Args:
        pred: predicted 2D mask.
        truth: reference 2D mask.
        spacing_mm: pixel spacing, one value or one per axis; 1.0 gives pixels.

    Returns:
        The distance in the units of ``spacing_mm``; NaN when either mask is empty.
    """
    pred_mask, truth_mask = _mask_pair(pred, truth)
    if pred_mask.ndim != 2:
        raise DataError(
            f"HD95 expects 2D masks, got shape {pred_mask.shape}; pass one slice at a time"
        )
    if not pred_mask.any() or not truth_mask.any():
        return math.nan

    pred_edges = _boundary(pred_mask)
    truth_edges = _boundary(truth_mask)
    pred_to_truth = _directed_distances(pred_edges, truth_edges, spacing_mm)
    truth_to_pred = _directed_distances(truth_edges, pred_edges, spacing_mm)
    return float(
        max(
            np.percentile(pred_to_truth, HD_PERCENTILE), np.percentile(truth_to_pred, HD_PERCENTILE)
        )
    )


def scar_burden(scar: Any, myocardium: Any) -> float:
    """Compute the scar burden: the percentage of myocardium pixels that are scar.

    Scar pixels outside the myocardium do not count.

    Args:
        scar: scar mask (boolean, 0/1 or 0/255).
        myocardium: myocardium mask of the same shape.

    Returns:
        ``100 · |S ∩ M| / |M|`` in percent of the myocardium.

    Raises:
        DataError: the myocardium is empty, the shapes differ or a mask is not binary.
    """
    scar_mask, myocardium_mask = _mask_pair(scar, myocardium)
    myocardium_count = np.count_nonzero(myocardium_mask)
    if myocardium_count == 0:
        raise DataError(
            "scar burden is undefined for an empty myocardium mask; "
            "drop the slice or check its myocardium label"
        )
    scar_count = np.count_nonzero(scar_mask & myocardium_mask)
    return float(100.0 * np.int64(scar_count) / np.int64(myocardium_count))


def per_case_table(
    probabilities: Any,
    scar: Any,
    myocardium: Any,
    case_ids: Sequence[str],
    *,
    kind: str = "probabilities",
    threshold: float = 0.5,
    spacing_mm: float | Sequence[float] | np.ndarray | None = None,
    clean_scar: Any | None = None,
) -> pd.DataFrame:
    """Compute every per-case metric of a batch of predictions.

    The prediction is thresholded with ``binarize`` and restricted to the
    myocardium. The reference scar (and ``clean_scar``) is restricted to the
    myocardium too, so every metric counts the same pixels.

    Args:
        probabilities: network outputs ``(N, H, W)`` or ``(N, 1, H, W)``.
        scar: reference scar masks, same shape.
        myocardium: myocardium masks, same shape.
        case_ids: one id per case, unique.
        kind: ``"probabilities"`` (default) or ``"logits"``.
        threshold: probability threshold, see ``binarize``.
        spacing_mm: in-plane pixel spacing, one value for all cases or one per
            case; None (or NaN for a case) leaves ``hd95_mm`` NaN.
        clean_scar: optional noise-free reference masks; adds ``dice_clean``.

    Returns:
        One row per case with the columns of ``METRIC_COLUMNS`` (burdens in
        percent of the myocardium, ``burden_error`` = predicted − true in
        percentage points), plus ``dice_clean`` when ``clean_scar`` is given.

    Raises:
        DataError: shapes or case ids do not match, a mask is not binary, or a
            case has an empty myocardium (the message names the case).
    """
    ids = [str(case_id) for case_id in case_ids]
    predicted = binarize(_stack(probabilities, "probabilities"), kind=kind, threshold=threshold)
    reference = _binary_stack(scar, "scar")
    myocardium_masks = _binary_stack(myocardium, "myocardium")
    clean = None if clean_scar is None else _binary_stack(clean_scar, "clean_scar")
    _check_batch(ids, predicted, reference, myocardium_masks, clean)
    spacings = _spacing_per_case(spacing_mm, len(ids))

    outside = np.count_nonzero(reference & ~myocardium_masks, axis=(1, 2))
    if outside.any():
        logger.warning(
            "%d case(s) have reference scar outside the myocardium (e.g. %s); those pixels are ignored",
            int(np.count_nonzero(outside)),
            ids[int(np.flatnonzero(outside)[0])],
        )

    rows = []
    for index, case_id in enumerate(ids):
        clean_mask = None if clean is None else clean[index]
        rows.append(
            _case_row(
                case_id,
                predicted[index],
                reference[index],
                myocardium_masks[index],
                spacings[index],
                clean_mask,
            )
        )
    columns = list(METRIC_COLUMNS) + (["dice_clean"] if clean is not None else [])
    return pd.DataFrame(rows, columns=columns)


# ---------------------------------------------------------------------------
# helpers


def _case_row(
    case_id: str,
    predicted: np.ndarray,
    reference: np.ndarray,
    myocardium: np.ndarray,
    spacing_mm: float,
    clean: np.ndarray | None,
) -> dict[str, Any]:
    if not myocardium.any():
        raise DataError(
            f"case {case_id!r} has an empty myocardium mask, so its scar burden is undefined; "
            "remove the case from the test set or fix its myocardium label"
        )
    predicted = predicted & myocardium
    reference = reference & myocardium

    hd95_px = hausdorff_distance_95(predicted, reference)
    true_burden = scar_burden(reference, myocardium)
    pred_burden = scar_burden(predicted, myocardium)
    row = {
        "case_id": case_id,
        "dice": dice(predicted, reference),
        "iou": iou(predicted, reference),
        "precision": precision(predicted, reference),
        "sensitivity": sensitivity(predicted, reference),
        "hd95_px": hd95_px,
        "hd95_mm": hd95_px * spacing_mm,
        "true_burden": true_burden,
        "pred_burden": pred_burden,
        "burden_error": pred_burden - true_burden,
        "abs_burden_error": abs(pred_burden - true_burden),
    }
    if clean is not None:
        row["dice_clean"] = dice(predicted, clean & myocardium)
    return row


def _as_array(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor, possibly on a GPU
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def _to_mask(value: Any, name: str) -> np.ndarray:
    array = _as_array(value)
    if array.dtype == bool:
        return array
    if not (np.issubdtype(array.dtype, np.number)):
        raise DataError(f"{name} mask has dtype {array.dtype}; pass a boolean, 0/1 or 0/255 mask")

    values = np.unique(array)
    if not (np.isin(values, (0, 1)).all() or np.isin(values, (0, 255)).all()):
        shown = ", ".join(f"{v:g}" for v in values[:5])
        raise DataError(
            f"invalid {name} mask: it contains values other than 0/1 or 0/255 (found {shown}); "
            "threshold probabilities with binarize() first"
        )
    return array != 0


def _mask_pair(first: Any, second: Any) -> tuple[np.ndarray, np.ndarray]:
    first_mask = _to_mask(first, "first")
    second_mask = _to_mask(second, "second")
    if first_mask.shape != second_mask.shape:
        raise DataError(f"mask shapes differ: {first_mask.shape} and {second_mask.shape}")
    return first_mask, second_mask


def _counts(pred: np.ndarray, truth: np.ndarray) -> tuple[np.int64, np.int64, np.int64]:
    intersection = np.int64(np.count_nonzero(pred & truth))
    return intersection, np.int64(np.count_nonzero(pred)), np.int64(np.count_nonzero(truth))


def _boundary(mask: np.ndarray) -> np.ndarray:
    return mask ^ ndimage.binary_erosion(mask)


def _directed_distances(
    source_edges: np.ndarray, target_edges: np.ndarray, spacing_mm: float | Sequence[float]
) -> np.ndarray:
    distance_to_target = ndimage.distance_transform_edt(~target_edges, sampling=spacing_mm)
    return distance_to_target[source_edges]


def _stack(value: Any, name: str) -> np.ndarray:
    array = _as_array(value)
    if array.ndim == 4 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 3:
        raise DataError(f"{name} has shape {array.shape}; expected (N, H, W) or (N, 1, H, W)")
    return array


def _binary_stack(value: Any, name: str) -> np.ndarray:
    return _to_mask(_stack(value, name), name)


def _check_batch(
    ids: list[str],
    predicted: np.ndarray,
    reference: np.ndarray,
    myocardium: np.ndarray,
    clean: np.ndarray | None,
) -> None:
    shapes = {
        "probabilities": predicted.shape,
        "scar": reference.shape,
        "myocardium": myocardium.shape,
    }
    if clean is not None:
        shapes["clean_scar"] = clean.shape
    if len(set(shapes.values())) != 1:
        listing = ", ".join(f"{name} {shape}" for name, shape in shapes.items())
        raise DataError(f"per-case inputs have different shapes ({listing}); pass aligned arrays")
    if len(ids) != predicted.shape[0]:
        raise DataError(
            f"{len(ids)} case id(s) for {predicted.shape[0]} prediction(s); pass one id per case"
        )
    duplicated = pd.Index(ids)[pd.Index(ids).duplicated()].unique().tolist()
    if duplicated:
        raise DataError(f"case ids are not unique, e.g. {duplicated[:3]}; pass one row per case")


def _spacing_per_case(spacing_mm: Any, count: int) -> np.ndarray:
    if spacing_mm is None:
        return np.full(count, np.nan)
    spacings = np.asarray(spacing_mm, dtype=np.float64)
    if spacings.ndim == 0:
        spacings = np.full(count, float(spacings))
    if spacings.shape != (count,):
        raise DataError(
            f"spacing_mm has shape {spacings.shape} for {count} case(s); pass one value or one per case"
        )
    if (spacings[~np.isnan(spacings)] <= 0).any():
        raise DataError(f"spacing_mm must be positive (found min {np.nanmin(spacings):g} mm)")
    return spacings

"""Per-case metrics: thresholds, empty-mask rules, counting, HD95 and the per-case table."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from bench.errors import DataError
from bench.evaluation.metrics import (
    METRIC_COLUMNS,
    binarize,
    dice,
    hausdorff_distance_95,
    iou,
    per_case_table,
    precision,
    scar_burden,
    sensitivity,
)


def square(size: int, top: int, left: int, side: int) -> np.ndarray:
    mask = np.zeros((size, size), dtype=bool)
    mask[top : top + side, left : left + side] = True
    return mask


# --- binarize ---------------------------------------------------------------


def test_binarize_logits_pinned_case():
    mask = binarize(np.array([-2.0, -0.2, 0.3, 1.0, 3.0]), kind="logits")
    assert mask.tolist() == [False, False, True, True, True]


def test_binarize_logit_and_probability_agree():
    logits = np.linspace(-6, 6, 1001)
    probabilities = 1.0 / (1.0 + np.exp(-logits))
    for threshold in (0.5, 0.3, 0.8):
        from_logits = binarize(logits, kind="logits", threshold=threshold)
        from_probabilities = binarize(probabilities, kind="probabilities", threshold=threshold)
        # Only a value within rounding of the cut itself may differ.
        assert np.count_nonzero(from_logits != from_probabilities) <= 1


def test_binarize_threshold_is_strict():
    assert binarize(np.array([0.5]), kind="probabilities").tolist() == [False]
    assert binarize(np.array([0.0]), kind="logits").tolist() == [False]


def test_binarize_accepts_torch_tensor():
    mask = binarize(torch.tensor([0.2, 0.7]), kind="probabilities")
    assert mask.tolist() == [False, True]


@pytest.mark.parametrize(
    ("output", "kind", "threshold"),
    [
        (np.array([0.2]), "sigmoid", 0.5),
        (np.array([0.2]), None, 0.5),
        (np.array([0.2]), "probabilities", 1.0),
        (np.array([-1.0, 2.0]), "probabilities", 0.5),
        (np.array([np.nan]), "logits", 0.5),
    ],
)
def test_binarize_rejects_bad_input(output, kind, threshold):
    with pytest.raises(DataError):
        binarize(output, kind=kind, threshold=threshold)


def test_binarize_kind_message_names_the_fix():
    with pytest.raises(DataError, match="kind='logits'"):
        binarize(np.array([-3.0, 4.0]), kind="probabilities")


# --- dice and friends ---------------------------------------------------------


def test_dice_both_empty_is_nan():
    empty = np.zeros((8, 8), dtype=bool)
    assert math.isnan(dice(empty, empty))


@pytest.mark.parametrize("predicted_pixels", [1, 100])
def test_dice_truth_empty_is_zero(predicted_pixels):
    pred = np.zeros(200, dtype=bool)
    pred[:predicted_pixels] = True
    assert dice(pred, np.zeros(200, dtype=bool)) == 0.0


def test_dice_uint8_255_masks_do_not_wrap():
    mask = np.zeros((64, 64), dtype=np.uint8)
    mask[10:40, 10:40] = 255
    assert dice(mask, mask.copy()) == 1.0
    # The bug this guards against: a uint8 product wraps 255 * 255 to 1.
    wrapped = 2 * np.sum(mask * mask) / (np.sum(mask) + np.sum(mask))
    assert wrapped != pytest.approx(1.0)


def test_dice_accepts_bool_01_and_255_alike():
    truth = square(16, 2, 2, 6)
    pred = square(16, 4, 4, 6)
    expected = dice(pred, truth)
    assert dice(pred.astype(np.uint8), truth.astype(np.int64)) == expected
    assert dice(pred.astype(np.uint8) * 255, truth) == expected
    assert dice(pred.astype(np.float32), truth.astype(np.float32)) == expected


def test_dice_known_value():
    truth = square(10, 0, 0, 4)  # 16 pixels
    pred = square(10, 0, 0, 2)  # 4 pixels, all inside
    assert dice(pred, truth) == pytest.approx(2 * 4 / 20)
    assert iou(pred, truth) == pytest.approx(4 / 16)
    assert precision(pred, truth) == 1.0
    assert sensitivity(pred, truth) == pytest.approx(4 / 16)


def test_dice_stays_within_unit_interval():
    rng = np.random.default_rng(0)
    for _ in range(50):
        pred = rng.random((12, 12)) > rng.random()
        truth = rng.random((12, 12)) > rng.random()
        value = dice(pred, truth)
        assert math.isnan(value) or 0.0 <= value <= 1.0


def test_undefined_ratios_are_nan():
    empty = np.zeros((6, 6), dtype=bool)
    full = np.ones((6, 6), dtype=bool)
    assert math.isnan(iou(empty, empty))
    assert math.isnan(precision(empty, full))
    assert math.isnan(sensitivity(full, empty))
    assert iou(full, empty) == 0.0


def test_dice_rejects_probabilities():
    with pytest.raises(DataError, match="binarize"):
        dice(np.array([0.2, 0.9]), np.array([0, 1]))


def test_dice_rejects_shape_mismatch():
    with pytest.raises(DataError, match="shapes differ"):
        dice(np.zeros((4, 4)), np.zeros((4, 5)))


# --- scar burden ----------------------------------------------------------------


def test_scar_burden_percent_of_myocardium():
    myocardium = np.zeros((10, 10), dtype=bool)
    myocardium[:, :4] = True  # 40 pixels
    scar = np.zeros((10, 10), dtype=bool)
    scar[:2, :4] = True  # 8 pixels inside
    assert scar_burden(scar, myocardium) == pytest.approx(20.0)


def test_scar_burden_ignores_scar_outside_myocardium():
    myocardium = np.zeros((10, 10), dtype=bool)
    myocardium[:, :4] = True
    scar = np.zeros((10, 10), dtype=bool)
    scar[:2, :] = True  # 8 inside, 12 outside
    assert scar_burden(scar, myocardium) == pytest.approx(20.0)


def test_scar_burden_empty_myocardium_raises():
    with pytest.raises(DataError, match="empty myocardium"):
        scar_burden(np.zeros((4, 4)), np.zeros((4, 4)))


# --- HD95 -------------------------------------------------------------------------


def test_hd95_empty_mask_is_nan():
    mask = square(16, 2, 2, 5)
    empty = np.zeros((16, 16), dtype=bool)
    assert math.isnan(hausdorff_distance_95(mask, empty))
    assert math.isnan(hausdorff_distance_95(empty, mask))
    assert math.isnan(hausdorff_distance_95(empty, empty))


def test_hd95_identical_masks_is_zero():
    mask = square(16, 2, 2, 5)
    assert hausdorff_distance_95(mask, mask) == 0.0


def test_hd95_shifted_square():
    truth = square(32, 5, 5, 10)
    pred = square(32, 5, 8, 10)  # shifted 3 pixels along x
    assert hausdorff_distance_95(pred, truth) == pytest.approx(3.0)
    assert hausdorff_distance_95(pred, truth, spacing_mm=1.5) == pytest.approx(4.5)


def test_hd95_matches_monai():
    from monai.metrics import compute_hausdorff_distance

    rng = np.random.default_rng(3)
    for _ in range(10):
        truth = square(32, *rng.integers(0, 12, 2), int(rng.integers(4, 18)))
        pred = square(32, *rng.integers(0, 12, 2), int(rng.integers(4, 18)))
        pred |= rng.random((32, 32)) > 0.98

        def one_hot(mask: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.stack([~mask, mask])[None].astype(np.float32))

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            expected = compute_hausdorff_distance(
                one_hot(pred), one_hot(truth), percentile=95
            ).item()
        # MONAI returns float32, so compare to float32 precision.
        assert hausdorff_distance_95(pred, truth) == pytest.approx(expected, rel=1e-6)


# --- per-case table ---------------------------------------------------------------


def make_batch():
    myocardium = np.zeros((3, 16, 16), dtype=bool)
    myocardium[:, 2:14, 2:14] = True
    scar = np.zeros_like(myocardium)
    scar[0, 2:6, 2:14] = True  # case a: 48 of 144 pixels
    scar[1, 2:4, 2:14] = True  # case b: 24 of 144
    probabilities = np.zeros(myocardium.shape, dtype=np.float32)
    probabilities[0][scar[0]] = 0.9  # perfect
    probabilities[1, 2:6, 2:14] = 0.8  # twice the truth
    probabilities[2, 0, :] = 0.99  # outside the myocardium only; truth empty
    return probabilities, scar, myocardium


def test_per_case_table_columns_and_values():
    probabilities, scar, myocardium = make_batch()
    table = per_case_table(probabilities, scar, myocardium, ["a", "b", "c"], spacing_mm=1.25)

    assert list(table.columns) == list(METRIC_COLUMNS)
    assert table["case_id"].tolist() == ["a", "b", "c"]
    assert table.loc[0, "dice"] == 1.0
    assert table.loc[0, "hd95_px"] == 0.0
    assert table.loc[1, "dice"] == pytest.approx(2 * 24 / (24 + 48))
    assert table.loc[1, "true_burden"] == pytest.approx(100 * 24 / 144)
    assert table.loc[1, "pred_burden"] == pytest.approx(100 * 48 / 144)
    assert table.loc[1, "burden_error"] == pytest.approx(100 * 24 / 144)
    assert table.loc[1, "hd95_mm"] == pytest.approx(table.loc[1, "hd95_px"] * 1.25)


def test_per_case_table_restricts_prediction_to_myocardium():
    probabilities, scar, myocardium = make_batch()
    table = per_case_table(probabilities, scar, myocardium, ["a", "b", "c"])
    # Case c predicts only outside the myocardium, so inside it both masks are empty.
    assert math.isnan(table.loc[2, "dice"])
    assert table.loc[2, "pred_burden"] == 0.0
    assert math.isnan(table.loc[2, "hd95_px"])


def test_per_case_table_channel_axis_logits_and_tensors():
    probabilities, scar, myocardium = make_batch()
    logits = np.log(np.clip(probabilities, 1e-6, 1 - 1e-6) / np.clip(1 - probabilities, 1e-6, 1))
    expected = per_case_table(probabilities, scar, myocardium, ["a", "b", "c"])
    table = per_case_table(
        torch.from_numpy(logits[:, None]),
        torch.from_numpy(scar[:, None]),
        torch.from_numpy(myocardium[:, None]),
        ["a", "b", "c"],
        kind="logits",
    )
    pd.testing.assert_frame_equal(table, expected)


def test_per_case_table_spacing_per_case_and_missing():
    probabilities, scar, myocardium = make_batch()
    table = per_case_table(
        probabilities, scar, myocardium, ["a", "b", "c"], spacing_mm=[1.0, 2.0, np.nan]
    )
    assert table.loc[1, "hd95_mm"] == pytest.approx(2.0 * table.loc[1, "hd95_px"])
    no_spacing = per_case_table(probabilities, scar, myocardium, ["a", "b", "c"])
    assert no_spacing["hd95_mm"].isna().all()


def test_per_case_table_dice_clean():
    probabilities, scar, myocardium = make_batch()
    clean = scar.copy()
    clean[1] = False
    clean[1, 2:6, 2:14] = True  # the clean truth equals case b's prediction
    table = per_case_table(probabilities, scar, myocardium, ["a", "b", "c"], clean_scar=clean)
    assert table.columns[-1] == "dice_clean"
    assert table.loc[1, "dice_clean"] == 1.0


def test_per_case_table_empty_myocardium_names_case():
    probabilities, scar, myocardium = make_batch()
    myocardium[1] = False
    scar[1] = False
    with pytest.raises(DataError, match="'b'"):
        per_case_table(probabilities, scar, myocardium, ["a", "b", "c"])


@pytest.mark.parametrize(
    "case_ids",
    [["a", "b"], ["a", "a", "c"]],
)
def test_per_case_table_rejects_bad_ids(case_ids):
    probabilities, scar, myocardium = make_batch()
    with pytest.raises(DataError):
        per_case_table(probabilities, scar, myocardium, case_ids)


def test_per_case_table_rejects_shape_mismatch():
    probabilities, scar, myocardium = make_batch()
    with pytest.raises(DataError, match="different shapes"):
        per_case_table(probabilities[:, :8], scar, myocardium, ["a", "b", "c"])


@pytest.mark.emidec
def test_per_case_table_on_emidec_labels(emidec_dir):
    from PIL import Image

    paths = sorted((emidec_dir / "labels").glob("Case_P*.png"))[:12]
    labels = np.stack([np.asarray(Image.open(path)) for path in paths])
    myocardium = np.isin(labels, (2, 3, 4))
    scar = np.isin(labels, (3, 4))
    ids = [path.stem for path in paths]

    table = per_case_table(scar.astype(np.float32), scar, myocardium, ids)

    expected_burden = 100 * scar.sum(axis=(1, 2)) / myocardium.sum(axis=(1, 2))
    np.testing.assert_allclose(table["true_burden"], expected_burden)
    assert (table["burden_error"] == 0).all()
    has_scar = scar.any(axis=(1, 2))
    assert (table.loc[has_scar, "dice"] == 1.0).all()
    assert table.loc[~has_scar, "dice"].isna().all()

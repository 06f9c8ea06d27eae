"""Tests of the report's paired-test table, built from hand-made per-case rows."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from bench.reporting.tables import improvement_lines, wilcoxon_table


def _paired_rows(standard_dice: list[float], curriculum_dice: list[float]) -> pd.DataFrame:
    """Rows shaped like ``paired_cases`` output: one model, two strategies, one row per case."""
    case_ids = [f"case{index}" for index in range(len(standard_dice))]
    rows = []
    for strategy, dice_values in (("standard", standard_dice), ("curriculum", curriculum_dice)):
        for position, (case_id, dice_value) in enumerate(zip(case_ids, dice_values, strict=True)):
            rows.append(
                {
                    "model": "unet-small",
                    "strategy": strategy,
                    "case_id": case_id,
                    "dice": dice_value,
                    "abs_burden_error": 1.0 + position + (0.5 if strategy == "curriculum" else 0.0),
                }
            )
    return pd.DataFrame(rows)


def test_wilcoxon_medians_use_complete_pairs():
    # case4: the reference scar is empty, standard predicts nothing (Dice NaN) and
    # curriculum predicts a false positive (Dice 0). The test drops case4, so the
    # medians beside it must drop it too.
    paired = _paired_rows(
        standard_dice=[0.2, 0.4, 0.6, 0.8, math.nan],
        curriculum_dice=[0.3, 0.5, 0.7, 0.9, 0.0],
    )

    table = wilcoxon_table(paired, {"all test cases": None})
    dice_row = table[table["metric"] == "dice"].iloc[0]

    assert dice_row["n"] == 4
    assert dice_row["n_dropped"] == 1
    assert dice_row["median_reference"] == pytest.approx(0.5)
    assert dice_row["median_other"] == pytest.approx(0.6)
    assert dice_row["median_difference"] == pytest.approx(0.1)


def test_improvement_line_matches_paired_n():
    paired = _paired_rows(
        standard_dice=[0.2, 0.4, 0.6, 0.8, math.nan],
        curriculum_dice=[0.3, 0.5, 0.7, 0.9, 0.0],
    )

    lines = improvement_lines(wilcoxon_table(paired, {"all test cases": None}))

    assert lines == [
        "unet-small, all test cases (n = 4): median Dice from 0.500 (standard) "
        "to 0.600 (curriculum) (+20.0 %)"
    ]


def test_wilcoxon_medians_without_missing_values():
    paired = _paired_rows(
        standard_dice=[0.2, 0.4, 0.6, 0.8, 0.1],
        curriculum_dice=[0.3, 0.5, 0.7, 0.9, 0.0],
    )

    table = wilcoxon_table(paired, {"all test cases": None})
    dice_row = table[table["metric"] == "dice"].iloc[0]
    error_row = table[table["metric"] == "abs_burden_error"].iloc[0]

    assert dice_row["n"] == 5
    assert dice_row["median_reference"] == pytest.approx(0.4)
    assert dice_row["median_other"] == pytest.approx(0.5)
    assert error_row["median_reference"] == pytest.approx(3.0)
    assert error_row["median_other"] == pytest.approx(3.5)

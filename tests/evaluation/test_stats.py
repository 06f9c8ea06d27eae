"""Cohort statistics: pinned edge cases, conventions carried in results, library cross-checks."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pingouin
import pytest
import scipy
from scipy import stats as scipy_stats
from statsmodels.stats.multitest import multipletests

from bench.errors import DataError
from bench.evaluation.stats import (
    adjust,
    bland_altman,
    compare_arms,
    paired_wilcoxon,
    pearson,
    summarize,
)

# --- summarize ------------------------------------------------------------------


def test_summarize_pinned_dice_case():
    values = [0.8, float("nan"), 0.6]
    first = summarize(values)
    second = summarize(values)
    assert first.median == pytest.approx(0.7)
    assert first.n == 2
    assert first.n_excluded == 1
    assert first == second


def test_summarize_does_not_modify_input():
    values = np.array([0.3, np.nan, 0.9, 0.1])
    before = values.copy()
    summarize(values)
    np.testing.assert_array_equal(values, before)


def test_summarize_quartiles_sd_and_ci():
    rng = np.random.default_rng(1)
    values = rng.normal(0.6, 0.1, size=80)
    result = summarize(values, seed=7)
    q1, q3 = np.percentile(values, [25, 75])
    assert result.iqr == pytest.approx(q3 - q1)
    assert result.sd == pytest.approx(np.std(values, ddof=1))
    assert result.median_ci_low < result.median < result.median_ci_high
    assert summarize(values, seed=7) == result
    assert result.ddof == 1
    assert result.bootstrap_method == "percentile"


def test_summarize_edge_cases():
    assert math.isnan(summarize([float("nan")]).median)
    assert summarize([]).n == 0
    single = summarize([0.4])
    assert single.median == 0.4
    assert math.isnan(single.median_ci_low)
    constant = summarize([0.0, 0.0, 0.0])
    assert (constant.median_ci_low, constant.median_ci_high) == (0.0, 0.0)


def test_summarize_rejects_infinity():
    with pytest.raises(DataError, match="infinite"):
        summarize([0.1, float("inf")])


def test_results_serialise_to_strict_json():
    payload = {
        "summary": summarize([0.8, float("nan"), 0.6]).to_dict(),
        "pearson": pearson([0, 5.2, 12.1, 3.3], [0, 0, 0, 0]).to_dict(),
        "bland_altman": bland_altman([1.0], [2.0]).to_dict(),
        "wilcoxon": paired_wilcoxon([1, 2], [1, 2]).to_dict(),
        "adjusted": adjust([0.01, float("nan")]).to_dict(),
    }
    text = json.dumps(payload, allow_nan=False)
    assert json.loads(text)["pearson"]["r"] is None
    assert payload["wilcoxon"]["scipy_version"] == scipy.__version__


# --- pearson ----------------------------------------------------------------------


def test_pearson_constant_input_is_nan_with_reason():
    result = pearson([0, 5.2, 12.1, 3.3], [0, 0, 0, 0])
    assert math.isnan(result.r)
    assert math.isnan(result.p)
    assert result.reason == "constant input"


def test_pearson_too_few_pairs():
    result = pearson([1.0, 2.0, float("nan")], [2.0, 4.0, 5.0])
    assert math.isnan(result.r)
    assert result.n == 2
    assert result.n_dropped == 1
    assert "fewer than 3" in result.reason


def test_pearson_three_pairs_has_r_but_no_interval():
    result = pearson([1.0, 2.0, 3.0], [1.0, 3.0, 2.0])
    assert result.r == pytest.approx(0.5)
    assert math.isnan(result.ci_low)


def test_pearson_fisher_z_interval():
    rng = np.random.default_rng(2)
    x = rng.normal(size=40)
    y = x + rng.normal(size=40)
    result = pearson(x, y, confidence=0.9)
    z = np.arctanh(result.r)
    half_width = scipy_stats.norm.ppf(0.95) / np.sqrt(40 - 3)
    assert result.ci_low == pytest.approx(np.tanh(z - half_width))
    assert result.ci_high == pytest.approx(np.tanh(z + half_width))


def test_pearson_rejects_length_mismatch():
    with pytest.raises(DataError, match="one value per case"):
        pearson([1, 2, 3], [1, 2])


# --- bland_altman -------------------------------------------------------------------


def test_bland_altman_pinned_burden_case():
    result = bland_altman([0, 0, 5, 10, 20], [0, 1, 6, 8, 25])
    assert result.bias == pytest.approx(1.0)
    assert result.sd == pytest.approx(2.5495, abs=1e-4)
    assert result.lower_limit == pytest.approx(-4.00, abs=5e-3)
    assert result.upper_limit == pytest.approx(6.00, abs=5e-3)
    assert result.difference == "measured - reference"


def test_bland_altman_pure_proportional_bias():
    true = np.array([2, 5, 10, 20, 40], dtype=float)
    result = bland_altman(true, 1.05 * true)
    assert result.slope == pytest.approx(0.04878, abs=1e-5)
    assert result.intercept == pytest.approx(0.0, abs=1e-9)
    assert result.slope_p < 1e-6


def test_bland_altman_limit_intervals_follow_formula():
    rng = np.random.default_rng(4)
    reference = rng.uniform(0, 40, 30)
    measured = reference + rng.normal(1, 3, 30)
    result = bland_altman(reference, measured, multiplier=1.96, confidence=0.95)
    differences = measured - reference
    s = differences.std(ddof=1)
    t = scipy_stats.t.ppf(0.975, 29)
    assert result.t_critical == pytest.approx(t)
    assert result.bias_ci_high - result.bias == pytest.approx(t * s / np.sqrt(30))
    assert result.upper_limit_ci_high - result.upper_limit == pytest.approx(
        t * np.sqrt(3 * s**2 / 30)
    )
    assert result.lower_limit - result.lower_limit_ci_low == pytest.approx(
        t * np.sqrt(3 * s**2 / 30)
    )


def test_bland_altman_drops_nan_pairs():
    result = bland_altman([1, 2, np.nan, 4], [1.5, 2.5, 3, np.nan])
    assert result.n == 2
    assert result.n_dropped == 2


def test_bland_altman_single_pair_notes_undefined():
    result = bland_altman([1.0], [2.0])
    assert result.bias == 1.0
    assert math.isnan(result.sd)
    assert "fewer than 2" in result.note


def test_bland_altman_rejects_bad_multiplier():
    with pytest.raises(DataError, match="multiplier"):
        bland_altman([1, 2, 3], [1, 2, 3], multiplier=0)


# --- paired_wilcoxon ------------------------------------------------------------------


def test_wilcoxon_five_pairs_one_direction_is_exact():
    result = paired_wilcoxon([0.71, 0.64, 0.80, 0.55, 0.62], [0.60, 0.61, 0.70, 0.50, 0.42])
    assert result.p == pytest.approx(0.0625)
    assert result.method == "exact"
    assert result.rank_biserial == 1.0
    asymptotic = scipy_stats.wilcoxon([0.11, 0.03, 0.10, 0.05, 0.20], method="asymptotic").pvalue
    assert asymptotic == pytest.approx(0.043, abs=1e-3)


def test_wilcoxon_identical_arms_p_is_one():
    values = [0.5, 0.7, 0.9, 0.1]
    result = paired_wilcoxon(values, list(values))
    assert result.p == 1.0
    assert result.n_zero == 4
    assert "all differences are zero" in result.note


def test_wilcoxon_symmetric_ties_and_zeros():
    differences = [1] * 15 + [0] * 40 + [-1] * 15
    result = paired_wilcoxon(differences, [0] * 70)
    assert result.p == pytest.approx(1.0)
    assert result.n_zero == 40
    assert result.method == "asymptotic"


def test_wilcoxon_rounds_floating_point_noise():
    a = [0.1 + 0.2, 0.5, 0.9]
    b = [0.3, 0.5, 0.9]
    result = paired_wilcoxon(a, b)
    assert result.n_zero == 3
    assert result.p == 1.0


def test_wilcoxon_pairs_by_case_id():
    a = [0.9, 0.1, 0.5, 0.7, 0.3, 0.6]
    ids_a = ["c1", "c2", "c3", "c4", "c5", "c6"]
    order = [3, 0, 5, 2, 4, 1]
    b_by_case = {"c1": 0.8, "c2": 0.15, "c3": 0.3, "c4": 0.72, "c5": 0.1, "c6": 0.61}
    ids_b = [ids_a[i] for i in order]
    b = [b_by_case[case] for case in ids_b]
    joined = paired_wilcoxon(a, b, ids_a=ids_a, ids_b=ids_b)
    positional = paired_wilcoxon(a, [b_by_case[case] for case in ids_a])
    assert joined == positional


def test_wilcoxon_different_id_sets_raise():
    with pytest.raises(DataError, match="different cases"):
        paired_wilcoxon([1, 2], [1, 2], ids_a=["a", "b"], ids_b=["a", "c"])


def test_wilcoxon_one_id_list_raises():
    with pytest.raises(DataError, match="both ids_a and ids_b"):
        paired_wilcoxon([1, 2], [1, 2], ids_a=["a", "b"])


def test_wilcoxon_duplicate_ids_raise():
    with pytest.raises(DataError, match="not unique"):
        paired_wilcoxon([1, 2], [1, 2], ids_a=["a", "a"], ids_b=["a", "b"])


def test_wilcoxon_method_matches_scipy_auto():
    rng = np.random.default_rng(5)
    cases = [
        rng.normal(0.1, 1, 12),  # exact
        np.round(rng.normal(0.1, 1, 12), 1),  # ties, permutation
        np.round(rng.normal(0.3, 1, 30), 1),  # ties, asymptotic
        rng.normal(0.2, 1, 80),  # large, asymptotic
    ]
    for differences in cases:
        ours = paired_wilcoxon(differences, np.zeros_like(differences))
        auto = scipy_stats.wilcoxon(np.round(differences, 12), method="auto")
        assert ours.p == pytest.approx(auto.pvalue)
        assert ours.statistic == pytest.approx(auto.statistic)


@pytest.mark.parametrize("zero_method", ["wilcox", "pratt", "zsplit"])
def test_wilcoxon_cross_checks_pingouin(zero_method):
    # pingouin 0.7 applies a continuity correction by default, and scarbench does not.
    rng = np.random.default_rng(6)
    a = np.round(rng.uniform(0, 1, 60), 2)
    b = np.round(a + rng.normal(0.03, 0.05, 60), 2)
    ours = paired_wilcoxon(a, b, zero_method=zero_method)
    differences = np.round(a - b, 12)
    theirs = pingouin.wilcoxon(differences, zero_method=zero_method, correction=False)
    assert ours.statistic == pytest.approx(theirs.loc["Wilcoxon", "W_val"])
    assert ours.p == pytest.approx(theirs.loc["Wilcoxon", "p_val"])
    assert ours.rank_biserial == pytest.approx(theirs.loc["Wilcoxon", "RBC"])
    corrected = pingouin.wilcoxon(differences, zero_method=zero_method)
    assert corrected.loc["Wilcoxon", "p_val"] != pytest.approx(ours.p, rel=1e-6)


def test_wilcoxon_unrounded_differences_split_ties():
    # 0.57 - 0.54 and 0.33 - 0.30 are both 0.03, but not in binary floating point,
    # so a library that does not round ranks them apart.
    a = np.array([0.57, 0.33, 0.81, 0.12, 0.66, 0.45])
    b = np.array([0.54, 0.30, 0.70, 0.20, 0.60, 0.40])
    unrounded = np.abs(a - b)
    assert np.unique(unrounded).size > np.unique(np.round(unrounded, 12)).size
    ours = paired_wilcoxon(a, b)
    scipy_unrounded = scipy_stats.wilcoxon(a, b, method="asymptotic")
    scipy_rounded = scipy_stats.wilcoxon(np.round(a - b, 12), method="asymptotic")
    assert ours.n_zero == 0
    assert ours.statistic == pytest.approx(scipy_rounded.statistic)
    # The tie correction of the variance differs, so the p-values differ.
    assert scipy_unrounded.pvalue != pytest.approx(scipy_rounded.pvalue, rel=1e-4)
    assert paired_wilcoxon(a, b).p == paired_wilcoxon(np.round(a - b, 12), np.zeros(6)).p


def test_wilcoxon_records_conventions():
    result = paired_wilcoxon([1.0, 2.0, 3.5], [0.5, 1.0, 1.0])
    fields = result.to_dict()
    for key in ("method", "zero_method", "alternative", "correction", "scipy_version", "n_zero"):
        assert key in fields
    assert fields["correction"] is False


# --- adjust and compare_arms -------------------------------------------------------------


def test_adjust_holm_matches_statsmodels_and_keeps_nan():
    p_values = [0.01, 0.04, float("nan"), 0.03]
    result = adjust(p_values)
    _, expected, _, _ = multipletests([0.01, 0.04, 0.03], method="holm")
    assert result.p_adjusted[0] == pytest.approx(expected[0])
    assert result.p_adjusted[1] == pytest.approx(expected[1])
    assert math.isnan(result.p_adjusted[2])
    assert result.p_adjusted[3] == pytest.approx(expected[2])
    assert result.n_tests == 3
    # Holm by hand: sorted 0.01, 0.03, 0.04 times 3, 2, 1, then made monotone.
    assert result.p_adjusted[0] == pytest.approx(0.03)
    assert result.p_adjusted[3] == pytest.approx(0.06)
    assert result.p_adjusted[1] == pytest.approx(0.06)


def test_adjust_rejects_bad_input():
    with pytest.raises(DataError, match="lie in"):
        adjust([0.2, 1.5])
    with pytest.raises(DataError, match="unknown p-value adjustment"):
        adjust([0.2], method="holmes")


def test_compare_arms_per_backbone_with_holm():
    rng = np.random.default_rng(8)
    rows = []
    for backbone, shift in (("unet", 0.05), ("attention_unet", 0.0)):
        base = rng.uniform(0.3, 0.8, 20)
        for seed in (0, 1):
            for strategy, values in (
                ("standard", base),
                ("curriculum", base + shift + rng.normal(0, 0.01, 20)),
            ):
                for index, value in enumerate(values):
                    rows.append(
                        {
                            "backbone": backbone,
                            "strategy": strategy,
                            "seed": seed,
                            "case_id": f"c{index}",
                            "dice": value,
                        }
                    )
    table = pd.DataFrame(rows)

    result = compare_arms(table, "dice")

    assert result["backbone"].tolist() == ["attention_unet", "unet"]
    unet = result.set_index("backbone").loc["unet"]
    assert unet["n"] == 20
    assert unet["median_difference"] > 0
    assert unet["p"] < 0.001
    expected = adjust(result["p"].to_numpy()).p_adjusted
    np.testing.assert_allclose(result["p_adjusted"], expected)


def test_compare_arms_missing_column():
    with pytest.raises(DataError, match="no column"):
        compare_arms(pd.DataFrame({"dice": [0.1]}), "dice")


def test_median_bootstrap_matches_case_resampling():
    from scipy import stats as scipy_stats

    from bench.evaluation.stats import _bootstrap_medians

    rng = np.random.default_rng(5)
    for n in (10, 11):
        data = np.sort(rng.normal(size=n))
        fast = _bootstrap_medians(data, 100_000, np.random.default_rng(0))
        brute = np.median(data[rng.integers(0, n, size=(100_000, n))], axis=1)

        assert scipy_stats.ks_2samp(fast, brute).pvalue > 0.001


def test_median_ci_agrees_with_scipy_bootstrap():
    from scipy import stats as scipy_stats

    values = np.random.default_rng(2).beta(2, 3, size=400)
    reference = scipy_stats.bootstrap(
        (values,), np.median, n_resamples=9999, method="percentile", rng=np.random.default_rng(0)
    ).confidence_interval

    result = summarize(values)

    assert result.median_ci_low == pytest.approx(reference.low, abs=0.01)
    assert result.median_ci_high == pytest.approx(reference.high, abs=0.01)

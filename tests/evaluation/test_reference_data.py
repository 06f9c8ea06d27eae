"""The statistics reproduce values published for well-known reference data sets.

Sources:

- PEFR: Bland JM, Altman DG. Statistical methods for assessing agreement between
  two methods of clinical measurement. Lancet 1986;327(8476):307-310. The first
  reading of each meter for 17 subjects, as listed in the R package BlandAltmanLeh
  (``bland.altman.PEFR``). The published values used here (r = 0.94; differences
  large − mini with mean −2.1 l/min, SD 38.8 l/min, limits −79.7 and 75.5 l/min
  at mean ± 2 SD, SE of the mean 9.4 and of the limits 16.3 l/min) are quoted in
  R. Nicholls, "Statistics in Python: Bland-Altman Analysis" (rowannicholls.github.io).
- Anscombe FJ. Graphs in statistical analysis. The American Statistician
  1973;27(1):17-21. The quartet and its published properties (mean of x 9, sample
  variance of x 11 exactly, mean of y 7.50, sample variance of y 4.125 ± 0.003,
  r = 0.816 to 3 decimals) as tabulated in Wikipedia's "Anscombe's quartet".
- Wilcoxon F. Individual comparisons by ranking methods. Biometrics Bulletin
  1945;1(6):80-83: height differences of 15 pairs of cross- and self-fertilised
  corn plants, whose two negative differences rank 10th and 14th, so T = 24;
  the example of ``scipy.stats.wilcoxon`` and of R. Nicholls' "Wilcoxon
  Signed-Rank Test" page.
- The worked example of Wikipedia's "Wilcoxon signed-rank test" (10 pairs with
  one zero difference and one tie): T+ = 27, T− = 18, W = T+ − T− = 9, as quoted
  on R. Nicholls' "Wilcoxon Signed-Rank Test" page.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from bench.evaluation.stats import bland_altman, paired_wilcoxon, pearson, summarize

PEFR_LARGE_METER = [
    494,
    395,
    516,
    434,
    476,
    557,
    413,
    442,
    650,
    433,
    417,
    656,
    267,
    478,
    178,
    423,
    427,
]
PEFR_MINI_METER = [
    512,
    430,
    520,
    428,
    500,
    600,
    364,
    380,
    658,
    445,
    432,
    626,
    260,
    477,
    259,
    350,
    451,
]

ANSCOMBE_X = [10, 8, 13, 9, 11, 14, 6, 4, 12, 7, 5]
ANSCOMBE_X4 = [8, 8, 8, 8, 8, 8, 8, 19, 8, 8, 8]
ANSCOMBE_Y = {
    "I": [8.04, 6.95, 7.58, 8.81, 8.33, 9.96, 7.24, 4.26, 10.84, 4.82, 5.68],
    "II": [9.14, 8.14, 8.74, 8.77, 9.26, 8.10, 6.13, 3.10, 9.13, 7.26, 4.74],
    "III": [7.46, 6.77, 12.74, 7.11, 7.81, 8.84, 6.08, 5.39, 8.15, 6.42, 5.73],
    "IV": [6.58, 5.76, 7.71, 8.84, 8.47, 7.04, 5.25, 12.50, 5.56, 7.91, 6.89],
}

CORN_HEIGHT_DIFFERENCES = [6, 8, 14, 16, 23, 24, 28, 29, 41, -48, 49, 56, 60, -67, 75]

WIKIPEDIA_GROUP_1 = [110, 122, 125, 120, 140, 124, 123, 137, 135, 145]
WIKIPEDIA_GROUP_2 = [125, 115, 130, 140, 140, 115, 140, 125, 140, 135]


# --- Bland–Altman -----------------------------------------------------------------


def test_bland_altman_pefr_1986():
    # The paper's differences are large − mini, so the mini meter is the reference.
    result = bland_altman(PEFR_MINI_METER, PEFR_LARGE_METER, multiplier=2.0)

    assert result.n == 17
    assert result.bias == pytest.approx(-2.1, abs=0.05)
    assert result.sd == pytest.approx(38.8, abs=0.05)
    # The paper rounded the mean and SD first, so allow 0.1 l/min on the limits.
    assert result.lower_limit == pytest.approx(-79.7, abs=0.1)
    assert result.upper_limit == pytest.approx(75.5, abs=0.1)


def test_bland_altman_pefr_1986_standard_errors():
    result = bland_altman(PEFR_MINI_METER, PEFR_LARGE_METER, multiplier=2.0)
    se_bias = (result.bias_ci_high - result.bias) / result.t_critical
    se_limits = (result.upper_limit_ci_high - result.upper_limit) / result.t_critical

    assert result.t_critical == pytest.approx(2.12, abs=0.005)  # t on 16 df
    assert se_bias == pytest.approx(9.4, abs=0.05)
    assert se_limits == pytest.approx(16.3, abs=0.05)
    assert result.lower_limit_ci_high - result.lower_limit == pytest.approx(2.12 * 16.3, abs=0.15)


def test_bland_altman_pefr_1986_default_multiplier():
    # With 1.96 SD instead of the paper's 2 SD, the limits move in by 0.04 SD.
    result = bland_altman(PEFR_MINI_METER, PEFR_LARGE_METER)
    assert result.upper_limit - result.lower_limit == pytest.approx(2 * 1.96 * result.sd)
    assert result.multiplier == 1.96


# --- Pearson -----------------------------------------------------------------------


def test_pearson_pefr_1986():
    result = pearson(PEFR_LARGE_METER, PEFR_MINI_METER)
    assert round(result.r, 2) == 0.94
    assert result.p < 0.001
    assert result.ci_low < result.r < result.ci_high


@pytest.mark.parametrize("dataset", ["I", "II", "III", "IV"])
def test_pearson_anscombe_quartet(dataset):
    x = ANSCOMBE_X4 if dataset == "IV" else ANSCOMBE_X
    result = pearson(x, ANSCOMBE_Y[dataset])
    # Published as 0.816 "to 3 decimal places"; data set IV gives 0.81652.
    assert result.r == pytest.approx(0.816, abs=1e-3)
    assert result.n == 11


# --- summarize ---------------------------------------------------------------------


def test_summarize_anscombe_x_uses_sample_sd():
    result = summarize(ANSCOMBE_X)
    assert result.mean == 9
    assert result.sd**2 == pytest.approx(11.0)  # ddof=0 would give 10
    assert result.median == 9


@pytest.mark.parametrize("dataset", ["I", "II", "III", "IV"])
def test_summarize_anscombe_y(dataset):
    result = summarize(ANSCOMBE_Y[dataset])
    assert round(result.mean, 2) == 7.50
    assert result.sd**2 == pytest.approx(4.125, abs=0.003)


# --- Wilcoxon signed-rank ------------------------------------------------------------


def test_wilcoxon_corn_1945():
    result = paired_wilcoxon(CORN_HEIGHT_DIFFERENCES, [0] * 15)

    assert result.statistic == 24
    assert result.w_minus == 10 + 14
    assert result.method == "exact"
    assert result.p == pytest.approx(_exact_two_sided_p(CORN_HEIGHT_DIFFERENCES))
    assert result.p < 0.05


def test_wilcoxon_wikipedia_worked_example():
    result = paired_wilcoxon(WIKIPEDIA_GROUP_2, WIKIPEDIA_GROUP_1)

    assert result.n_zero == 1
    assert result.w_plus == 27
    assert result.w_minus == 18
    assert result.w_plus - result.w_minus == 9
    assert result.statistic == 18
    assert result.p > 0.5


def _exact_two_sided_p(differences: list[int]) -> float:
    """Enumerate all 2**n sign patterns of distinct nonzero differences."""
    ranks = np.argsort(np.argsort(np.abs(differences))) + 1
    observed = min(ranks[np.array(differences) > 0].sum(), ranks[np.array(differences) < 0].sum())
    count = 0
    total = 0
    for signs in itertools.product((0, 1), repeat=len(ranks)):
        w_plus = int(np.dot(signs, ranks))
        w_minus = int(ranks.sum()) - w_plus
        count += min(w_plus, w_minus) <= observed
        total += 1
    return count / total

"""Evaluation: per-case metrics (``metrics``) and cohort statistics (``stats``).

Example:
    >>> from bench.evaluation import per_case_table, summarize, paired_wilcoxon
    >>> summarize([0.8, float("nan"), 0.6]).n_excluded
    1

Per-case results are the primary record; every cohort number is derived from
the per-case table. ``docs/statistics.md`` lists the conventions.
"""

from __future__ import annotations

from bench.evaluation.metrics import (
    binarize,
    dice,
    hausdorff_distance_95,
    iou,
    per_case_table,
    precision,
    scar_burden,
    sensitivity,
)
from bench.evaluation.stats import (
    AdjustedPValues,
    BlandAltmanResult,
    PearsonResult,
    Summary,
    WilcoxonResult,
    adjust,
    bland_altman,
    compare_arms,
    paired_wilcoxon,
    pearson,
    summarize,
)

__all__ = [
    "binarize",
    "dice",
    "iou",
    "precision",
    "sensitivity",
    "hausdorff_distance_95",
    "scar_burden",
    "per_case_table",
    "Summary",
    "PearsonResult",
    "BlandAltmanResult",
    "WilcoxonResult",
    "AdjustedPValues",
    "summarize",
    "pearson",
    "bland_altman",
    "paired_wilcoxon",
    "adjust",
    "compare_arms",
]

"""The report's tables, built from per-case rows through ``bench.evaluation.stats``.

Example:
    >>> from bench.reporting.load import load_runs
    >>> from bench.reporting import tables
    >>> data = load_runs(["runs/smoke"])  # doctest: +SKIP
    >>> tables.wilcoxon_table(tables.paired_cases(data.per_case), {"all": None})  # doctest: +SKIP

This module computes no statistic itself: medians, IQRs, correlations,
limits of agreement, tests and adjusted p-values all come from
``bench.evaluation.stats``. It only selects rows, pairs cases and lays the
results out. When several seeds or runs hold the same case, the case's
metric is averaged over them before pairing, so each case enters a paired
test once.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from bench.evaluation import stats
from bench.reporting.load import ReportData, TaskRecord

__all__ = [
    "REFERENCE_STRATEGY",
    "PAIRED_METRICS",
    "task_summary_table",
    "task_statistics",
    "paired_cases",
    "wilcoxon_table",
    "improvement_lines",
    "breakdown_table",
    "clean_truth_table",
    "budget_table",
    "problem_table",
    "format_p",
]

logger = logging.getLogger(__name__)

# Each other strategy is compared with this one, per backbone.
REFERENCE_STRATEGY = "standard"

# Metric column → label; Dice is better when higher, burden error when lower.
PAIRED_METRICS = {"dice": "Dice", "abs_burden_error": "|burden error| (pp)"}

# Below this, a p-value prints as "< 1e-10" instead of a number that rounds to 0.
P_FLOOR = 1e-10


def task_statistics(per_case: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Compute the summary, Pearson and Bland–Altman results of each done task.

    Returns:
        ``task_label`` → ``{"dice": Summary, "pearson": PearsonResult,
        "bland_altman": BlandAltmanResult}``.
    """
    results = {}
    for label, rows in per_case.groupby("task_label", sort=False):
        results[label] = {
            "dice": stats.summarize(rows["dice"].to_numpy(dtype=float)),
            "pearson": stats.pearson(
                rows["true_burden"].to_numpy(dtype=float), rows["pred_burden"].to_numpy(dtype=float)
            ),
            "bland_altman": stats.bland_altman(
                rows["true_burden"].to_numpy(dtype=float), rows["pred_burden"].to_numpy(dtype=float)
            ),
        }
    return results


def task_summary_table(
    data: ReportData, statistics: Mapping[str, Mapping[str, Any]]
) -> pd.DataFrame:
    """Lay out one row per task: Dice, burden agreement, correlation and compute budget.

    Tasks that are not done keep their row, with the status and reason and
    empty statistics.
    """
    rows = []
    for task in data.tasks:
        row: dict[str, Any] = {
            "task": task.label,
            "model": task.model,
            "strategy": task.strategy,
            "seed": task.seed,
            "status": task.status,
            "reason": task.reason,
        }
        if task.label in statistics:
            row.update(_statistics_columns(statistics[task.label]))
            row.update(_scar_free_counts(data.per_case, task.label))
        row.update(_budget_totals(task))
        rows.append(row)

    table = pd.DataFrame(rows)
    for column in (
        "seed",
        "dice_n",
        "dice_n_excluded",
        "burden_pearson_n",
        "scar_free_n",
        "scar_free_false_positive",
        "optimizer_steps",
        "images_seen",
    ):
        if column in table:
            # Counts stay integers even where a task without statistics leaves a gap.
            table[column] = pd.to_numeric(table[column]).astype("Int64")
    return table


def paired_cases(per_case: pd.DataFrame) -> pd.DataFrame:
    """Average each case's metrics over seeds and runs, one row per model, strategy and case.

    Returns:
        Columns ``model``, ``strategy``, ``case_id``, the paired metrics,
        ``dice_clean`` when present, ``difficulty``, ``site``, ``scanner``
        and ``n_seeds`` (how many task rows were averaged).
    """
    metrics = [column for column in (*PAIRED_METRICS, "dice_clean") if column in per_case]
    keys = ["model", "strategy", "case_id"]
    grouped = per_case.groupby(keys, sort=False)

    averaged = grouped[metrics].mean()
    averaged["n_seeds"] = grouped.size()
    for column in ("difficulty", "site", "scanner", "patient_id"):
        if column in per_case:
            averaged[column] = grouped[column].first()
    return averaged.reset_index()


def wilcoxon_table(
    paired: pd.DataFrame, subsets: Mapping[str, Sequence[str] | None]
) -> pd.DataFrame:
    """Test each strategy against the reference strategy, per model, metric and subset.

    Args:
        paired: output of ``paired_cases``.
        subsets: subset name → case ids (None means every case).

    Returns:
        One row per test with the Wilcoxon fields, the medians of both arms,
        and ``p_holm``: Holm's adjustment over every row of the table.
    """
    rows = []
    for subset_name, case_ids in subsets.items():
        rows.extend(_subset_tests(paired, subset_name, case_ids))
    table = pd.DataFrame(rows)
    if table.empty:
        return table

    table["p"] = pd.to_numeric(table["p"], errors="coerce")
    adjusted = stats.adjust(table["p"].to_numpy(dtype=float), method="holm")
    table["p_holm"] = np.asarray(adjusted.p_adjusted, dtype=float)
    return table


def improvement_lines(table: pd.DataFrame, metric: str = "dice") -> list[str]:
    """Sentences such as "median Dice from 0.61 to 0.66 (+8.2 %)", one per model and subset."""
    lines = []
    for row in table[table["metric"] == metric].itertuples():
        change = _percent_change(row.median_reference, row.median_other)
        lines.append(
            f"{row.model}, {row.subset} (n = {row.n}): median {PAIRED_METRICS[metric]} "
            f"from {row.median_reference:.3f} ({row.reference}) to "
            f"{row.median_other:.3f} ({row.other}) ({change})"
        )
    return lines


def breakdown_table(paired: pd.DataFrame, column: str, metric: str = "dice") -> pd.DataFrame:
    """Summarise ``metric`` per model, strategy and level of ``column`` (difficulty, site, scanner).

    Returns:
        An empty frame when ``column`` is absent or has fewer than two levels.
    """
    if (
        column not in paired
        or paired[column].dropna().astype(str).replace("", np.nan).nunique() < 2
    ):
        return pd.DataFrame()
    rows = []
    for (model, strategy, level), group in paired.groupby(
        ["model", "strategy", column], sort=True, dropna=False
    ):
        summary = _describe(group[metric])
        rows.append(
            {
                "model": model,
                "strategy": strategy,
                column: "unknown" if pd.isna(level) or level == "" else level,
                **_summary_columns(summary, metric),
            }
        )
    return pd.DataFrame(rows)


def clean_truth_table(paired: pd.DataFrame) -> pd.DataFrame:
    """Dice against the noisy labels beside Dice against the clean truth (synthetic data).

    Returns:
        An empty frame when the runs have no ``dice_clean`` column.
    """
    if "dice_clean" not in paired or paired["dice_clean"].isna().all():
        return pd.DataFrame()
    rows = []
    for (model, strategy), group in paired.groupby(["model", "strategy"], sort=True):
        noisy = _describe(group["dice"])
        clean = _describe(group["dice_clean"])
        rows.append(
            {
                "model": model,
                "strategy": strategy,
                **_summary_columns(noisy, "dice_noisy"),
                **_summary_columns(clean, "dice_clean"),
            }
        )
    return pd.DataFrame(rows)


def budget_table(data: ReportData) -> pd.DataFrame:
    """Compute budget of every task that wrote ``budget.json``, per stage and in total."""
    rows = []
    for task in data.tasks:
        for stage, values in _budget_stages(task.budget):
            rows.append({"task": task.label, "stage": stage, **values})
    return pd.DataFrame(rows)


def problem_table(data: ReportData) -> pd.DataFrame:
    """Tasks that are failed, incomplete or missing, with the reason."""
    return pd.DataFrame(
        [
            {
                "run": task.run_name,
                "task": task.task_id,
                "status": task.status,
                "reason": task.reason,
            }
            for task in data.problem_tasks
        ],
        columns=["run", "task", "status", "reason"],
    )


def format_p(p: float | None) -> str:
    """Format a p-value in scientific notation as published tables do: ``6.25e-02``, ``< 1e-10``."""
    if p is None or pd.isna(p):
        return "n/a"
    if p < P_FLOOR:
        return "< 1e-10"
    return f"{p:.2e}"


def _statistics_columns(results: Mapping[str, Any]) -> dict[str, Any]:
    dice = _as_dict(results["dice"])
    pearson = _as_dict(results["pearson"])
    agreement = _as_dict(results["bland_altman"])
    return {
        **_summary_columns(dice, "dice"),
        "burden_bias": agreement["bias"],
        "burden_bias_ci_low": agreement["bias_ci_low"],
        "burden_bias_ci_high": agreement["bias_ci_high"],
        "burden_loa_lower": agreement["lower_limit"],
        "burden_loa_upper": agreement["upper_limit"],
        "burden_proportional_slope": agreement["slope"],
        "burden_proportional_slope_p": agreement["slope_p"],
        "burden_pearson_r": pearson["r"],
        "burden_pearson_ci_low": pearson["ci_low"],
        "burden_pearson_ci_high": pearson["ci_high"],
        "burden_pearson_p": pearson["p"],
        "burden_pearson_n": pearson["n"],
        "burden_pearson_note": pearson.get("reason") or "",
    }


def _scar_free_counts(per_case: pd.DataFrame, task_label: str) -> dict[str, int]:
    """Count a task's scar-free test slices and those where it predicted scar.

    Dice leaves scar-free slices out (undefined when both masks are empty, 0 on
    a false positive that the median then counts), so the false-positive count
    is what shows how often a strategy invents scar.
    """
    rows = per_case[per_case["task_label"] == task_label]
    scar_free = rows["true_burden"] == 0
    return {
        "scar_free_n": int(scar_free.sum()),
        "scar_free_false_positive": int((scar_free & (rows["pred_burden"] > 0)).sum()),
    }


def _describe(values: pd.Series) -> dict[str, Any]:
    """Summary of a breakdown or paired-test cell, whose median CI the report does not show."""
    summary = stats.summarize(values.to_numpy(dtype=float))
    return _as_dict(summary) | {"median_ci_low": None, "median_ci_high": None}


def _summary_columns(summary: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    interval = {}
    if summary["median_ci_low"] is not None:
        interval = {
            f"{prefix}_median_ci_low": summary["median_ci_low"],
            f"{prefix}_median_ci_high": summary["median_ci_high"],
        }
    return {
        f"{prefix}_median": summary["median"],
        f"{prefix}_q1": summary["q1"],
        f"{prefix}_q3": summary["q3"],
        **interval,
        f"{prefix}_mean": summary["mean"],
        f"{prefix}_sd": summary["sd"],
        f"{prefix}_n": summary["n"],
        f"{prefix}_n_excluded": summary["n_excluded"],
    }


def _subset_tests(
    paired: pd.DataFrame, subset_name: str, case_ids: Sequence[str] | None
) -> list[dict[str, Any]]:
    rows = paired if case_ids is None else paired[paired["case_id"].isin(set(case_ids))]
    tests = []
    for model, model_rows in rows.groupby("model", sort=True):
        arms = dict(tuple(model_rows.groupby("strategy", sort=True)))
        if REFERENCE_STRATEGY not in arms:
            logger.warning("model %s has no %s task; no paired test", model, REFERENCE_STRATEGY)
            continue
        for other in sorted(set(arms) - {REFERENCE_STRATEGY}):
            for metric in PAIRED_METRICS:
                tests.append(
                    _paired_test(arms[REFERENCE_STRATEGY], arms[other], metric)
                    | {"model": model, "subset": subset_name, "other": other}
                )
    return tests


def _paired_test(reference: pd.DataFrame, other: pd.DataFrame, metric: str) -> dict[str, Any]:
    """Wilcoxon test of ``other`` against ``reference`` on the cases both arms hold."""
    common = sorted(set(reference["case_id"]) & set(other["case_id"]))
    n_unpaired = len(set(reference["case_id"]) ^ set(other["case_id"]))
    reference = reference.set_index("case_id").loc[common]
    other = other.set_index("case_id").loc[common]

    # The medians describe the same pairs as the test. A case whose metric is NaN in one
    # arm (Dice with both masks empty) is left out of both medians, as the test leaves it out.
    complete = reference[metric].notna() & other[metric].notna()
    row: dict[str, Any] = {
        "metric": metric,
        "reference": REFERENCE_STRATEGY,
        "n_unpaired": n_unpaired,
        "median_reference": _describe(reference.loc[complete, metric])["median"],
        "median_other": _describe(other.loc[complete, metric])["median"],
    }
    if not common:
        return row | {"n": 0, "p": np.nan, "note": "no case is in both arms"}

    # a = other, b = reference: differences, medians and effect sizes read "other − reference".
    result = stats.paired_wilcoxon(
        other[metric].to_numpy(dtype=float),
        reference[metric].to_numpy(dtype=float),
        ids_a=list(common),
        ids_b=list(common),
    )
    return row | _as_dict(result)


def _percent_change(before: float | None, after: float | None) -> str:
    if before is None or after is None or pd.isna(before) or pd.isna(after) or before == 0:
        return "change n/a"
    return f"{100.0 * (after - before) / before:+.1f} %"


def _budget_totals(task: TaskRecord) -> dict[str, Any]:
    total = dict(_budget_stages(task.budget)).get("total", {})
    device = task.budget.get("device") or task.config.get("device") or ""
    return {
        "optimizer_steps": total.get("optimizer_steps"),
        "images_seen": total.get("images_seen"),
        "wall_time_s": total.get("wall_time_s"),
        "device": str(device),
    }


def _budget_stages(budget: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """``(stage name, counters)`` pairs from ``budget.json``, the total last."""
    stages = []
    per_stage = budget.get("stages") or budget.get("per_stage") or []
    if isinstance(per_stage, Mapping):
        per_stage = [dict(values, stage=name) for name, values in per_stage.items()]
    for position, values in enumerate(per_stage, start=1):
        if isinstance(values, Mapping):
            stages.append((str(values.get("stage", position)), _budget_counters(values)))
    total = budget.get("total")
    if isinstance(total, Mapping):
        stages.append(("total", _budget_counters(total)))
    elif budget:
        stages.append(("total", _budget_counters(budget)))
    return stages


def _budget_counters(values: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "optimizer_steps": values.get("optimizer_steps", values.get("steps")),
        "images_seen": values.get("images_seen"),
        "wall_time_s": values.get("wall_time_s", values.get("wall_time")),
    }


def _as_dict(result: Any) -> dict[str, Any]:
    return result.to_dict() if hasattr(result, "to_dict") else dict(result)

"""The regression gate: compare a finished run with a stored baseline.

Example:
    $ bench baseline update runs/smoke --out baselines/smoke.json
    $ bench check runs/smoke --baseline baselines/smoke.json

A baseline is plain JSON: per task the config hash, the Dice and burden
summaries and the per-case Dice, plus the curriculum-vs-standard comparison of
each backbone, the tolerances, and the code version and environment it came
from. ``bench check`` flags a task as a regression when

- it is missing from the run, unfinished, or its config hash changed;
- its median Dice, over the cases that have a Dice in both, dropped by more
  than ``tolerances["dice_median"]`` and a paired one-sided Wilcoxon test of
  the run's per-case Dice against the baseline's (joined by case id) gives
  p < ``tolerances["p_value"]``;
- its Bland–Altman burden bias moved by more than ``tolerances["burden_bias"]``
  percentage points;

and flags the run as a whole when the median paired Dice change over the cases
of all tasks is below ``-tolerances["dice_pooled"]`` with p < ``p_value``. It
flags a backbone when its curriculum-vs-standard comparison was
significant (p < 0.05) in the baseline and is now significant in the other
direction. A direction change without significance on both sides is reported
as a note, not a regression.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import numpy as np
import pandas as pd

from bench import __version__
from bench.errors import ConfigError, RunError
from bench.fileio import write_json

__all__ = [
    "BASELINE_FORMAT",
    "DEFAULT_TOLERANCES",
    "CheckRow",
    "make_baseline",
    "check_run",
    "read_run_results",
    "check",
    "baseline",
]

logger = logging.getLogger(__name__)

BASELINE_FORMAT = 1

# Defaults; a baseline file stores its own tolerances, which take precedence.
DEFAULT_TOLERANCES: dict[str, float] = {
    "dice_median": 0.02,  # largest allowed drop of a task's median Dice (over paired cases)
    "dice_pooled": 0.02,  # largest allowed median paired Dice change over all tasks' cases
    "p_value": 0.01,  # the paired one-sided test must reach this to call a drop real
    "burden_bias": 5.0,  # largest allowed shift of the burden bias, percentage points
    "direction_p": 0.05,  # a comparison counts as significant below this (unadjusted) p
}

ARMS = ("standard", "curriculum")
CASE_DECIMALS = 6


@dataclass(frozen=True)
class CheckRow:
    """The verdict on one task or one backbone comparison."""

    item: str
    metric: str
    baseline: float | str
    now: float | str
    change: float | str
    verdict: str  # "ok", "regression", "note" or "new"
    detail: str = ""


@dataclass
class RunResults:
    """Task configs, finished tasks and per-case rows read from a run folder."""

    path: Path
    run_info: dict[str, Any]
    task_configs: dict[str, dict[str, Any]] = field(default_factory=dict)
    finished: set[str] = field(default_factory=set)
    per_case: pd.DataFrame = field(default_factory=pd.DataFrame)


def read_run_results(run_dir: str | Path) -> RunResults:
    """Read the task configs, DONE markers and per-case tables of a run folder.

    Raises:
        RunError: the folder has no ``run.json`` (it is not a run folder).
    """
    run_dir = Path(run_dir)
    run_json = run_dir / "run.json"
    if not run_json.is_file():
        raise RunError(
            f"{run_dir} is not a run folder (no run.json); pass the folder that `bench run` wrote, "
            "e.g. runs/smoke"
        )
    results = RunResults(path=run_dir, run_info=json.loads(run_json.read_text()))

    tables = []
    for task_dir in sorted(path for path in run_dir.iterdir() if (path / "config.json").is_file()):
        task_id = task_dir.name
        results.task_configs[task_id] = json.loads((task_dir / "config.json").read_text())
        if (task_dir / "DONE").is_file() and (task_dir / "per_case.csv").is_file():
            results.finished.add(task_id)
            table = pd.read_csv(task_dir / "per_case.csv", dtype={"case_id": str})
            table["task_id"] = task_id
            tables.append(table)
    if tables:
        results.per_case = pd.concat(tables, ignore_index=True)
    return results


def make_baseline(
    run_dir: str | Path, tolerances: dict[str, float] | None = None
) -> dict[str, Any]:
    """Build the baseline document of a finished run.

    Raises:
        RunError: the run has no finished task.
    """
    from bench.evaluation.stats import bland_altman, summarize

    results = read_run_results(run_dir)
    if not results.finished:
        raise RunError(f"run {results.path} has no finished task; finish it with `bench run` first")
    unfinished = sorted(set(results.task_configs) - results.finished)
    if unfinished:
        logger.warning("baseline leaves out unfinished tasks: %s", ", ".join(unfinished))

    tasks = {}
    for task_id, table in results.per_case.groupby("task_id", sort=True):
        dice = summarize(table["dice"])
        agreement = bland_altman(table["true_burden"], table["pred_burden"])
        tasks[task_id] = {
            "config_hash": _config_hash(results.task_configs[task_id]),
            "backbone": _first(table, "backbone"),
            "strategy": _first(table, "strategy"),
            "n": dice.n,
            "n_excluded": dice.n_excluded,
            "dice_median": _round(dice.median),
            "dice_iqr": _round(dice.iqr),
            "burden_bias": _round(agreement.bias),
            "burden_limits": [_round(agreement.lower_limit), _round(agreement.upper_limit)],
            "case_ids": table["case_id"].astype(str).tolist(),
            "dice": [_round(value) for value in table["dice"]],
        }

    return {
        "format": BASELINE_FORMAT,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "run": {
            "path": str(results.path),
            "matrix": results.run_info.get("matrix"),
            "dataset": _portable_dataset(results.run_info.get("dataset")),
        },
        "code": {
            "scarbench": __version__,
            "git_commit": results.run_info.get("environment", {}).get("git_commit"),
        },
        "environment": _environment(results.run_info),
        "tolerances": {**DEFAULT_TOLERANCES, **(tolerances or {})},
        "tasks": tasks,
        "comparisons": _comparisons(results.per_case),
    }


def check_run(run_dir: str | Path, baseline_doc: dict[str, Any]) -> list[CheckRow]:
    """Compare a run with a baseline document; return one row per task metric and comparison."""
    if baseline_doc.get("format") != BASELINE_FORMAT:
        raise ConfigError(
            f"baseline format {baseline_doc.get('format')!r} is not supported (expected "
            f"{BASELINE_FORMAT}); rewrite it with `bench baseline update`"
        )
    tolerances = {**DEFAULT_TOLERANCES, **baseline_doc.get("tolerances", {})}
    results = read_run_results(run_dir)

    rows: list[CheckRow] = []
    for task_id, stored in sorted(baseline_doc["tasks"].items()):
        rows.extend(_check_task(task_id, stored, results, tolerances))
    for task_id in sorted(results.finished - set(baseline_doc["tasks"])):
        rows.append(CheckRow(task_id, "task", "-", "present", "-", "new", "not in the baseline"))

    rows.append(_check_pooled(baseline_doc["tasks"], results, tolerances))
    rows.extend(_check_environment(baseline_doc.get("environment", {}), results.run_info))

    current = _comparisons(results.per_case)
    for key, stored in sorted(baseline_doc.get("comparisons", {}).items()):
        rows.append(_check_comparison(key, stored, current.get(key), tolerances))
    return rows


# ---------------------------------------------------------------------------
# task and comparison checks


def _check_task(
    task_id: str, stored: dict[str, Any], results: RunResults, tolerances: dict[str, float]
) -> list[CheckRow]:
    from bench.evaluation.stats import bland_altman, paired_wilcoxon

    if task_id not in results.task_configs:
        return [
            CheckRow(
                task_id,
                "task",
                "present",
                "missing",
                "-",
                "regression",
                "task missing from the run",
            )
        ]
    if task_id not in results.finished:
        return [
            CheckRow(
                task_id,
                "task",
                "finished",
                "unfinished",
                "-",
                "regression",
                "task has no DONE marker",
            )
        ]
    now_hash = _config_hash(results.task_configs[task_id])
    if now_hash != stored["config_hash"]:
        detail = f"config hash {stored['config_hash'][:12]} → {now_hash[:12]}; update the baseline if intended"
        return [
            CheckRow(
                task_id,
                "config",
                stored["config_hash"][:12],
                now_hash[:12],
                "-",
                "regression",
                detail,
            )
        ]

    table = results.per_case[results.per_case["task_id"] == task_id]
    pairs = _paired_dice(table, stored)
    dice_base = float(np.median(pairs["baseline"])) if len(pairs) else math.nan
    dice_now = float(np.median(pairs["now"])) if len(pairs) else math.nan
    dice_change = dice_now - dice_base
    drop_test = paired_wilcoxon(pairs["now"], pairs["baseline"], alternative="less")
    dropped = dice_change < -tolerances["dice_median"] and drop_test.p < tolerances["p_value"]
    dice_row = CheckRow(
        task_id,
        "median Dice",
        _round(dice_base),
        _round(dice_now),
        _round(dice_change),
        "regression" if dropped else "ok",
        f"over the {len(pairs)} cases with a Dice in both; one-sided paired Wilcoxon "
        f"(now < baseline) p = {drop_test.p:.3g}; tolerance {tolerances['dice_median']}",
    )

    bias_now = bland_altman(table["true_burden"], table["pred_burden"]).bias
    bias_change = bias_now - stored["burden_bias"]
    shifted = abs(bias_change) > tolerances["burden_bias"]
    bias_row = CheckRow(
        task_id,
        "burden bias (pp)",
        stored["burden_bias"],
        _round(bias_now),
        _round(bias_change),
        "regression" if shifted else "ok",
        f"tolerance ±{tolerances['burden_bias']} percentage points",
    )
    return [dice_row, bias_row]


def _check_pooled(
    stored_tasks: dict[str, dict[str, Any]], results: RunResults, tolerances: dict[str, float]
) -> CheckRow:
    """Pool the case pairs of every finished task and test the median paired Dice change.

    A change that costs every backbone a few Dice points shifts the median of the
    pooled paired differences, while the run-to-run noise of single tasks, which
    goes both ways, cancels out.
    """
    from bench.evaluation.stats import paired_wilcoxon

    frames = [
        _paired_dice(results.per_case[results.per_case["task_id"] == task_id], stored)
        for task_id, stored in stored_tasks.items()
        if task_id in results.finished
    ]
    pairs = (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame({"now": [], "baseline": []})
    )
    test = paired_wilcoxon(pairs["now"], pairs["baseline"], alternative="less")
    change = test.median_difference
    dropped = change < -tolerances["dice_pooled"] and test.p < tolerances["p_value"]
    return CheckRow(
        "all tasks",
        "median paired Dice change",
        "-",
        "-",
        _round(change),
        "regression" if dropped else "ok",
        f"{len(pairs)} case pairs from {len(frames)} task(s); one-sided paired Wilcoxon "
        f"(now < baseline) p = {test.p:.3g}; tolerance {tolerances['dice_pooled']}",
    )


def _check_environment(stored: dict[str, Any], run_info: dict[str, Any]) -> list[CheckRow]:
    """Note the settings that make CPU results differ from the baseline's without any code change."""
    now = run_info.get("environment", {})
    rows = []
    for key in ("torch", "torch_threads", "cpu_count"):
        if key in stored and stored.get(key) != now.get(key):
            rows.append(
                CheckRow(
                    "environment",
                    key,
                    str(stored.get(key)),
                    str(now.get(key)),
                    "-",
                    "note",
                    "training is bit-identical only at equal versions and thread counts; "
                    "expect run-to-run noise within the tolerances",
                )
            )
    return rows


def _paired_dice(table: pd.DataFrame, stored: dict[str, Any]) -> pd.DataFrame:
    """Join a task's current per-case Dice with the baseline's by case id; keep cases with both.

    Dice is undefined (NaN) when prediction and truth are both empty. Which
    scar-free slices get a prediction changes from run to run, so medians over
    different case sets would show a Dice change where no case changed.
    """
    baseline = pd.DataFrame(
        {
            "case_id": [str(case) for case in stored["case_ids"]],
            "baseline": [math.nan if value is None else value for value in stored["dice"]],
        }
    )
    # The baseline stores Dice rounded to CASE_DECIMALS; round the run the same way so
    # that an identical run differs by exactly zero, not by rounding residue.
    now = pd.DataFrame(
        {
            "case_id": table["case_id"].astype(str),
            "now": table["dice"].astype(float).round(CASE_DECIMALS),
        }
    )
    pairs = now.merge(baseline, on="case_id", how="inner", validate="one_to_one")
    return pairs.dropna(subset=["now", "baseline"]).reset_index(drop=True)


def _check_comparison(
    key: str, stored: dict[str, Any], current: dict[str, Any] | None, tolerances: dict[str, float]
) -> CheckRow:
    label = f"{key}: {ARMS[1]} vs {ARMS[0]}"
    if current is None:
        return CheckRow(
            label,
            "Wilcoxon direction",
            stored["direction"],
            "missing",
            "-",
            "regression",
            "one of the two arms is missing from the run",
        )
    significant_before = stored["p"] < tolerances["direction_p"]
    significant_now = current["p"] < tolerances["direction_p"]
    flipped = stored["direction"] != current["direction"]
    if flipped and significant_before and significant_now:
        verdict = "regression"
    elif flipped:
        verdict = "note"
    else:
        verdict = "ok"
    detail = (
        f"p {stored['p']:.3g} → {current['p']:.3g} (significance level {tolerances['direction_p']})"
    )
    return CheckRow(
        label, "Wilcoxon direction", stored["direction"], current["direction"], "-", verdict, detail
    )


def _comparisons(per_case: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Compare curriculum with standard per backbone (and preset/seed group) on Dice."""
    from bench.evaluation.stats import compare_arms

    if per_case.empty:
        return {}
    table = per_case.copy()
    table["group"] = table["backbone"].astype(str) + "-" + table["preset"].astype(str)
    complete = [
        group
        for group, rows in table.groupby("group")
        if set(ARMS) <= set(rows["strategy"].astype(str))
    ]
    table = table[table["group"].isin(complete) & table["strategy"].isin(ARMS)]
    if table.empty:
        return {}
    compared = compare_arms(table, "dice", by="group", arms=ARMS)
    comparisons = {}
    for _, row in compared.iterrows():
        difference = float(row["median_difference"])
        if difference > 0:
            direction = f"{ARMS[1]} higher"
        elif difference < 0:
            direction = f"{ARMS[0]} higher"
        else:
            direction = "no difference"
        comparisons[str(row["group"])] = {
            "direction": direction,
            "median_difference": _round(difference),
            "p": _round(float(row["p"])),
            "n": int(row["n"]),
        }
    return comparisons


# ---------------------------------------------------------------------------
# helpers


def _config_hash(config: dict[str, Any]) -> str:
    value = config.get("config_hash")
    if not value:
        raise RunError(
            f"task config has no config_hash: {sorted(config)}; rerun the task with `bench run`"
        )
    return str(value)


def _first(table: pd.DataFrame, column: str) -> str | None:
    return str(table[column].iloc[0]) if column in table.columns and len(table) else None


def _round(value: float) -> float | None:
    value = float(value)
    return None if math.isnan(value) else round(value, CASE_DECIMALS)


def _environment(run_info: dict[str, Any]) -> dict[str, Any]:
    """Return the environment the run's numbers came from, without the host name."""
    stored = dict(run_info.get("environment", {}))
    stored.pop("hostname", None)
    stored.pop("git_commit", None)
    return stored


def _portable_dataset(dataset: Any) -> Any:
    """Drop the absolute manifest path, which names the machine the baseline was made on."""
    if not isinstance(dataset, dict):
        return dataset
    return {key: value for key, value in dataset.items() if key != "manifest_path"}


def _format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:+.4f}" if value < 0 else f"{value:.4f}"
    return "-" if value is None else str(value)


def _print_rows(rows: list[CheckRow]) -> None:
    frame = pd.DataFrame(
        {
            "task / comparison": [row.item for row in rows],
            "metric": [row.metric for row in rows],
            "baseline": [_format_value(row.baseline) for row in rows],
            "now": [_format_value(row.now) for row in rows],
            "change": [_format_value(row.change) for row in rows],
            "verdict": [
                row.verdict.upper() if row.verdict == "regression" else row.verdict for row in rows
            ],
            "detail": [row.detail for row in rows],
        }
    )
    with pd.option_context("display.max_colwidth", 90, "display.width", 250):
        click.echo(frame.to_string(index=False))


# ---------------------------------------------------------------------------
# command line


@click.command("check")
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--baseline",
    "baseline_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("baselines/smoke.json"),
    show_default=True,
    help="Baseline JSON written by `bench baseline update`.",
)
def check(run_dir: Path, baseline_path: Path) -> None:
    """Compare RUN_DIR with a stored baseline; exit 1 on any regression."""
    if not baseline_path.is_file():
        raise ConfigError(
            f"baseline {baseline_path} not found; write one with "
            f"`bench baseline update RUN --out {baseline_path}`"
        )
    rows = check_run(run_dir, json.loads(baseline_path.read_text()))
    _print_rows(rows)
    regressions = [row for row in rows if row.verdict == "regression"]
    if regressions:
        click.echo(f"\n{len(regressions)} regression(s) against {baseline_path}", err=True)
        raise SystemExit(1)
    click.echo(f"\nno regression against {baseline_path}")


@click.group("baseline")
def baseline() -> None:
    """Write or update a stored baseline."""


@baseline.command("update")
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Where to write the baseline JSON, e.g. baselines/smoke.json.",
)
@click.option(
    "--dice-tolerance",
    type=float,
    default=DEFAULT_TOLERANCES["dice_median"],
    show_default=True,
    help="Largest allowed drop of a task's median Dice.",
)
@click.option(
    "--pooled-tolerance",
    type=float,
    default=DEFAULT_TOLERANCES["dice_pooled"],
    show_default=True,
    help="Largest allowed median paired Dice change over the cases of all tasks.",
)
@click.option(
    "--bias-tolerance",
    type=float,
    default=DEFAULT_TOLERANCES["burden_bias"],
    show_default=True,
    help="Largest allowed shift of the burden bias, in percentage points.",
)
def update(
    run_dir: Path, out: Path, dice_tolerance: float, pooled_tolerance: float, bias_tolerance: float
) -> None:
    """Write the baseline of the finished run RUN_DIR to --out."""
    tolerances = {
        "dice_median": dice_tolerance,
        "dice_pooled": pooled_tolerance,
        "burden_bias": bias_tolerance,
    }
    document = make_baseline(run_dir, tolerances)
    write_json(out, document)
    click.echo(
        f"wrote {out}: {len(document['tasks'])} task(s), {len(document['comparisons'])} comparison(s)"
    )

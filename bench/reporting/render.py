"""Assemble the report: tables, figures and header into one self-contained HTML file.

Example:
    >>> from bench.reporting.render import write_report
    >>> written = write_report(["runs/smoke"], "reports/smoke.html")  # doctest: +SKIP
    >>> sorted(path.name for path in written)  # doctest: +SKIP
    ['smoke.html', 'smoke.summary.json', 'smoke.tasks.csv', 'smoke.wilcoxon.csv', ...]

Outputs sit beside the HTML and share its stem: ``NAME.html``,
``NAME.summary.json`` and one ``NAME.<table>.csv`` per table, so several
reports can share the ``reports/`` folder. The HTML embeds every figure as a
base64 PNG and contains no external script, font, style or link.
"""

from __future__ import annotations

import logging
import math
import platform
import shlex
import sys
import time
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import pandas as pd

from bench import __version__
from bench.errors import RunError
from bench.fileio import write_csv, write_json, write_text
from bench.reporting import figures, tables
from bench.reporting.gallery import gallery_figures
from bench.reporting.load import ReportData, load_prepared_for_run, load_runs

__all__ = ["write_report", "build_context", "render_html", "default_output", "HARD_DIFFICULTY"]

logger = logging.getLogger(__name__)

# The hardest difficulty level (0 easy, 1 medium, 2 hard).
HARD_DIFFICULTY = 2

_LIBRARIES = ("numpy", "scipy", "statsmodels", "pingouin", "pandas", "matplotlib", "torch", "monai")


def write_report(
    run_folders: Sequence[str | Path],
    output: str | Path | None = None,
    case_lists: Mapping[str, Sequence[str]] | None = None,
    command: str | None = None,
) -> list[Path]:
    """Read run folders and write the HTML report, ``summary.json`` and the table CSVs.

    Args:
        run_folders: one or more run folders; several merge into one comparison.
        output: the HTML path; defaults to ``reports/<run-name>.html``.
        case_lists: extra named subsets for the paired tests (name → case ids).
        command: the command line shown in the header; defaults to ``sys.argv``.

    Returns:
        The paths written, the HTML first.

    Raises:
        RunError: a folder is not a run, or no task of any run is done.
    """
    started = time.perf_counter()
    data = load_runs(list(run_folders))
    output = Path(output) if output is not None else default_output(data)
    context = build_context(data, case_lists or {}, command or " ".join(sys.argv))

    written = [write_text(output, render_html(context))]
    written.append(write_json(output.with_suffix(".summary.json"), context["summary"]))
    for name, frame in context["csv_tables"].items():
        written.append(write_csv(output.with_name(f"{output.stem}.{name}.csv"), frame))
    logger.info("wrote report %s in %.1f s", output, time.perf_counter() - started)
    return written


def default_output(data: ReportData) -> Path:
    """``reports/<run-name>.html``, the names joined by ``+`` for several runs."""
    name = "+".join(run.folder.name for run in data.runs)
    return Path("reports") / f"{name}.html"


def build_context(
    data: ReportData, case_lists: Mapping[str, Sequence[str]], command: str
) -> dict[str, Any]:
    """Compute every table and figure of the report into the template's context.

    Raises:
        RunError: no task of any run is done, so there is nothing to compare.
    """
    if not data.done_tasks:
        listing = "; ".join(f"{task.label}: {task.status} ({task.reason})" for task in data.tasks)
        raise RunError(
            f"no finished task in {', '.join(str(run.folder) for run in data.runs)} "
            f"({listing or 'no task folders'}); finish the run with `bench run` first"
        )

    per_case = data.per_case
    prepared_by_run = {run.name: load_prepared_for_run(run) for run in data.runs}
    statistics = tables.task_statistics(per_case)
    paired = tables.paired_cases(per_case)
    subsets = _subsets(paired, case_lists)
    wilcoxon = tables.wilcoxon_table(paired, subsets)
    task_table = tables.task_summary_table(data, statistics)
    breakdowns = {
        column: tables.breakdown_table(paired, column)
        for column in ("difficulty", "site", "scanner")
    }
    clean = tables.clean_truth_table(paired)
    budget = tables.budget_table(data)
    problems = tables.problem_table(data)

    header = _header(data, command, prepared_by_run)
    csv_tables = {
        "tasks": task_table,
        "wilcoxon": wilcoxon,
        "budget": budget,
        "problems": problems,
        **{f"by_{name}": frame for name, frame in breakdowns.items() if not frame.empty},
    }
    if not clean.empty:
        csv_tables["clean_truth"] = clean

    conventions = _conventions(statistics, wilcoxon)
    return {
        "title": "scarbench report: " + ", ".join(run.name for run in data.runs),
        "header": header,
        "tasks": task_table.to_dict("records"),
        "problems": problems.to_dict("records"),
        "wilcoxon": _group_by_subset(wilcoxon),
        "improvements": {
            subset: tables.improvement_lines(rows)
            for subset, rows in _subset_frames(wilcoxon).items()
        },
        "hard_subset": _hard_subset_name(subsets),
        "breakdowns": {
            name: _breakdown_display(frame, name)
            for name, frame in breakdowns.items()
            if not frame.empty
        },
        "clean": clean.to_dict("records"),
        "budget": budget.to_dict("records"),
        "figures": _figures(data, per_case, paired, statistics, prepared_by_run),
        "conventions": conventions,
        "csv_tables": csv_tables,
        "summary": _summary_json(
            header, task_table, wilcoxon, problems, breakdowns, clean, conventions
        ),
    }


def render_html(context: Mapping[str, Any]) -> str:
    """Render the Jinja2 template ``templates/report.html.j2`` with ``context``."""
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["p"] = tables.format_p
    environment.filters["num"] = _format_number
    return environment.get_template("report.html.j2").render(**context)


def _subsets(
    paired: pd.DataFrame, case_lists: Mapping[str, Sequence[str]]
) -> dict[str, list[str] | None]:
    subsets: dict[str, list[str] | None] = {"all test cases": None}
    if "difficulty" in paired and (paired["difficulty"] == HARD_DIFFICULTY).any():
        hard = paired.loc[paired["difficulty"] == HARD_DIFFICULTY, "case_id"].unique().tolist()
        subsets[f"difficulty {HARD_DIFFICULTY} (hardest)"] = hard
    for name, case_ids in case_lists.items():
        unknown = sorted(set(case_ids) - set(paired["case_id"]))
        if unknown:
            logger.warning(
                "case list %s: %d ids are not test cases, e.g. %s", name, len(unknown), unknown[:3]
            )
        subsets[name] = list(case_ids)
    return subsets


def _hard_subset_name(subsets: Mapping[str, Any]) -> str:
    return next((name for name in subsets if name.startswith(f"difficulty {HARD_DIFFICULTY}")), "")


def _subset_frames(wilcoxon: pd.DataFrame) -> dict[str, pd.DataFrame]:
    if wilcoxon.empty:
        return {}
    return {subset: rows for subset, rows in wilcoxon.groupby("subset", sort=False)}


def _group_by_subset(wilcoxon: pd.DataFrame) -> dict[str, list[dict[str, Any]]]:
    return {subset: rows.to_dict("records") for subset, rows in _subset_frames(wilcoxon).items()}


def _figures(
    data: ReportData,
    per_case: pd.DataFrame,
    paired: pd.DataFrame,
    statistics: Mapping[str, Any],
    prepared_by_run: Mapping[str, tuple[Any, str]],
) -> dict[str, Any]:
    curves = [
        (task.label, task.strategy, task.train_log, task.reselected)
        for task in data.done_tasks
        if task.train_log is not None and not task.train_log.empty
    ]
    return {
        "dice": figures.dice_distribution_figure(paired),
        "scatter": figures.burden_scatter_figure(per_case, statistics),
        "bland_altman": figures.bland_altman_figure(per_case, statistics),
        "training": figures.training_curves_figure(curves) if curves else None,
        "gallery": gallery_figures(data, paired, prepared_by_run),
    }


def _header(
    data: ReportData, command: str, prepared_by_run: Mapping[str, tuple[Any, str]]
) -> dict[str, Any]:
    first = data.runs[0]
    return {
        "dataset": _dataset_header(first.info),
        "runs": [_run_header(run) for run in data.runs],
        "difficulty": _difficulty_counts(data, prepared_by_run),
        "report_command": command,
        "report_versions": {
            "scarbench": __version__,
            "python": platform.python_version(),
            **_library_versions(),
        },
        "generated": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def _dataset_header(info: Mapping[str, Any]) -> dict[str, Any]:
    """Name, citation and licence, from ``run.json`` or else from the dataset descriptor."""
    dataset = info.get("dataset")
    header: dict[str, Any] = (
        dict(dataset) if isinstance(dataset, Mapping) else {"name": str(dataset or "")}
    )
    if header.get("citation") and (header.get("licence") or header.get("license")):
        return _dataset_fields(header)

    source = header.get("descriptor") or header.get("source") or header.get("name")
    if source:
        header.update(_descriptor_fields(str(source)))
    return _dataset_fields(header)


def _descriptor_fields(source: str) -> dict[str, Any]:
    try:
        from bench.data.manifest import load_descriptor

        descriptor = load_descriptor(source)
    except Exception as error:  # the dataset may live on another machine; the header says so
        logger.warning("cannot read the descriptor of dataset %r: %s", source, error)
        return {"descriptor_note": f"descriptor not readable here ({error})"}
    values = descriptor.to_dict() if hasattr(descriptor, "to_dict") else vars(descriptor)
    return {key: value for key, value in values.items() if isinstance(value, (str, int, float))}


def _dataset_fields(header: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "name": header.get("name", ""),
        "citation": header.get("citation", ""),
        "licence": header.get("licence") or header.get("license") or "",
        "source": header.get("source") or header.get("descriptor") or "",
        "note": header.get("descriptor_note", ""),
    }


def _run_header(run: Any) -> dict[str, Any]:
    info = run.info
    environment = info.get("environment") if isinstance(info.get("environment"), Mapping) else {}
    matrix = info.get("matrix")
    devices = environment.get("devices") or info.get("devices") or []
    command = info.get("command") or ""
    return {
        "name": run.name,
        "folder": str(run.folder),
        "command": command
        if isinstance(command, str)
        else shlex.join(str(part) for part in command),
        "matrix": matrix.get("name", "") if isinstance(matrix, Mapping) else str(matrix or ""),
        "code_version": _code_version(environment),
        "versions": {
            key: str(value)
            for key, value in environment.items()
            if key not in ("devices", "hostname") and value is not None
        },
        "devices": ", ".join(map(str, devices)) if isinstance(devices, list) else str(devices),
        "started": info.get("started") or info.get("created") or "",
        "finished": info.get("finished") or "",
        "split": _split_counts(run.split),
        "n_tasks": len(run.tasks),
    }


def _code_version(environment: Mapping[str, Any]) -> str:
    version = str(environment.get("scarbench") or "")
    commit = environment.get("git_commit")
    return (
        f"{version} (commit {str(commit)[:12]}{'+dirty' if str(commit).endswith('+dirty') else ''})"
        if commit
        else version
    )


def _split_counts(split: pd.DataFrame | None) -> dict[str, dict[str, int]]:
    if split is None or "split" not in split:
        return {}
    counts = {}
    for name, rows in split.groupby("split", sort=True):
        counts[str(name)] = {
            "patients": int(rows["patient_id"].nunique()),
            "slices": int(len(rows)),
        }
    return counts


def _difficulty_counts(
    data: ReportData, prepared_by_run: Mapping[str, tuple[Any, str]]
) -> dict[str, Any]:
    """Count slices per split and difficulty level, and name the levels' source (expert or estimated).

    The counts come from the first run's prepared dataset and split. When
    the dataset cannot be read here, only the test slices of ``per_case.csv``
    are counted.
    """
    first = data.runs[0]
    prepared, _ = prepared_by_run[first.name]
    if prepared is not None and first.split is not None:
        cases = prepared.cases[["case_id", "difficulty", "difficulty_source"]].merge(
            first.split[["case_id", "split"]], on="case_id", how="inner"
        )
        sources = sorted(set(cases["difficulty_source"].dropna().astype(str)) - {""})
    else:
        per_case = data.per_case
        if "difficulty" not in per_case:
            return {}
        cases = per_case.drop_duplicates(["run", "case_id"]).assign(split="test")
        sources = []

    levels = cases["difficulty"].astype("Int64").astype(str).replace("<NA>", "unknown")
    counts = pd.crosstab(cases["split"], levels)
    counts = counts.reindex(sorted(counts.index, key=lambda split: (split != "train", split)))
    return {
        "levels": [str(level) for level in counts.columns],
        "by_split": {split: [int(value) for value in row] for split, row in counts.iterrows()},
        "sources": sources,
    }


def _breakdown_display(frame: pd.DataFrame, column: str) -> dict[str, Any]:
    """Arrange a breakdown as one row per model and level, with one cell per strategy."""
    strategies = figures.ordered_strategies(frame["strategy"].unique())
    rows = []
    for (model, level), group in frame.groupby(["model", column], sort=True):
        by_strategy = {row["strategy"]: row for row in group.to_dict("records")}
        rows.append(
            {
                "model": model,
                "level": level,
                "cells": [by_strategy.get(name) for name in strategies],
            }
        )
    return {"strategies": strategies, "rows": rows}


def _library_versions() -> dict[str, str]:
    versions = {}
    for name in _LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def _conventions(
    statistics: Mapping[str, Any], wilcoxon: pd.DataFrame
) -> dict[str, dict[str, Any]]:
    """The convention fields that the statistics results carry (ddof, multiplier, method, …)."""
    first = next(iter(statistics.values()))
    conventions = {
        "summary": _convention_fields(first["dice"]),
        "pearson": _convention_fields(first["pearson"]),
        "bland_altman": _convention_fields(first["bland_altman"]),
    }
    if not wilcoxon.empty:
        methods = (
            sorted(wilcoxon["method"].dropna().astype(str).unique()) if "method" in wilcoxon else []
        )
        fields = {
            key: wilcoxon[key].dropna().iloc[0]
            for key in ("zero_method", "alternative", "scipy_version")
            if key in wilcoxon and wilcoxon[key].notna().any()
        }
        conventions["wilcoxon"] = {
            **fields,
            "methods used": ", ".join(methods),
            "adjustment": "Holm over every row of the table",
        }
    return conventions


def _convention_fields(result: Any) -> dict[str, Any]:
    """Fields of a result that describe how it was computed, not what it found."""
    values = result.to_dict() if hasattr(result, "to_dict") else dict(result)
    conventions = {}
    for key, value in values.items():
        if key in ("note", "reason"):
            continue
        if isinstance(value, Mapping):
            conventions.update({f"{key}.{inner}": str(item) for inner, item in value.items()})
        elif isinstance(value, (str, bool)) or key in (
            "ddof",
            "multiplier",
            "confidence",
            "n_resamples",
            "seed",
        ):
            conventions[key] = value
    return conventions


def _summary_json(
    header: Mapping[str, Any],
    task_table: pd.DataFrame,
    wilcoxon: pd.DataFrame,
    problems: pd.DataFrame,
    breakdowns: Mapping[str, pd.DataFrame],
    clean: pd.DataFrame,
    conventions: Mapping[str, Any],
) -> dict[str, Any]:
    return {
        "header": header,
        "tasks": _records(task_table),
        "wilcoxon": _records(wilcoxon),
        "problems": _records(problems),
        "breakdowns": {
            name: _records(frame) for name, frame in breakdowns.items() if not frame.empty
        },
        "clean_truth": _records(clean),
        "conventions": conventions,
    }


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as JSON-ready dicts, NaN and <NA> as null."""
    cleaned = frame.astype(object).where(frame.notna(), None)
    return [
        {key: _plain(value) for key, value in row.items()} for row in cleaned.to_dict("records")
    ]


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _format_number(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)) or value is pd.NA:
        return "–"
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.{digits}f}"
    return str(value)

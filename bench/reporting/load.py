"""Read run folders into tables for the report.

Example:
    >>> from bench.reporting.load import load_runs
    >>> data = load_runs(["runs/smoke"])  # doctest: +SKIP
    >>> data.per_case.groupby(["backbone", "strategy"]).dice.median()  # doctest: +SKIP

Every task that ``run.json`` lists or that has a folder becomes a
``TaskRecord`` with one of these statuses:

- ``done``: ``DONE`` written and ``per_case.csv`` readable.
- ``failed``: ``error.txt`` present, or ``DONE`` without a readable ``per_case.csv``.
- ``incomplete``: a folder without ``DONE``.
- ``missing``: listed in ``run.json`` without a folder.

Only ``done`` tasks feed the statistics. The report lists the others, so
none is dropped silently.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.errors import RunError, ScarbenchError

__all__ = [
    "TaskRecord",
    "RunRecord",
    "ReportData",
    "load_runs",
    "load_run",
    "load_prepared_for_run",
    "read_predictions",
    "TASK_STATUSES",
]

logger = logging.getLogger(__name__)

TASK_STATUSES = ("done", "failed", "incomplete", "missing")

# ``<backbone>[-<preset>]--<strategy>--seed<N>``, the task-id form of the run layout.
_TASK_ID = re.compile(r"^(?P<arm>[^/]+?)--(?P<strategy>[^/-][^/]*?)--seed(?P<seed>\d+)$")


@dataclass
class TaskRecord:
    """One task of a run: its identity, status and the files it left.

    Attributes:
        run_name: name of the run folder the task belongs to.
        task_id: folder name, e.g. ``attention_unet-small--curriculum--seed0``.
        folder: the task folder (it may not exist when ``status`` is ``missing``).
        status: one of ``TASK_STATUSES``.
        reason: why a task is not ``done``; empty for done tasks.
        backbone, preset, strategy, seed: the task's place in the matrix.
        config: ``config.json``, empty when absent.
        train_log: ``train_log.csv``, or None.
        reselected: ``reselected.csv``, or None (standard training writes none).
        budget: ``budget.json``, empty when absent.
        per_case: ``per_case.csv`` with a ``run`` column added, or None.
        predictions_path: ``predictions.npz`` when it exists.
    """

    run_name: str
    task_id: str
    folder: Path
    status: str
    reason: str = ""
    backbone: str = ""
    preset: str = ""
    strategy: str = ""
    seed: int | None = None
    config: dict[str, Any] = field(default_factory=dict)
    train_log: pd.DataFrame | None = None
    reselected: pd.DataFrame | None = None
    budget: dict[str, Any] = field(default_factory=dict)
    per_case: pd.DataFrame | None = None
    predictions_path: Path | None = None
    merged: bool = False

    @property
    def arm(self) -> str:
        """Backbone (with preset) and strategy, the unit that seeds are pooled over."""
        return f"{self.model} / {self.strategy}"

    @property
    def model(self) -> str:
        """Backbone name with its preset, e.g. ``attention_unet-small``."""
        return f"{self.backbone}-{self.preset}" if self.preset else self.backbone

    @property
    def label(self) -> str:
        """Task id, prefixed by the run name when several runs are merged."""
        return f"{self.run_name}/{self.task_id}" if self.merged else self.task_id


@dataclass
class RunRecord:
    """One run folder: ``run.json``, ``split.csv`` and its tasks."""

    name: str
    folder: Path
    info: dict[str, Any]
    split: pd.DataFrame | None
    tasks: list[TaskRecord]


@dataclass
class ReportData:
    """Everything a report needs from one or more run folders.

    Attributes:
        runs: the runs, in the order given.
        per_case: the ``per_case.csv`` rows of every done task, with ``run``
            and ``task_label`` columns.
    """

    runs: list[RunRecord]
    per_case: pd.DataFrame

    @property
    def tasks(self) -> list[TaskRecord]:
        """Every task of every run, done or not."""
        return [task for run in self.runs for task in run.tasks]

    @property
    def done_tasks(self) -> list[TaskRecord]:
        return [task for task in self.tasks if task.status == "done"]

    @property
    def problem_tasks(self) -> list[TaskRecord]:
        """Tasks that are failed, incomplete or missing."""
        return [task for task in self.tasks if task.status != "done"]


def load_runs(paths: list[str | Path]) -> ReportData:
    """Read run folders into one ``ReportData``; several runs merge into one comparison.

    Args:
        paths: run folders, each holding a ``run.json``.

    Returns:
        The runs and the concatenated per-case table of their done tasks.

    Raises:
        RunError: no path is given, a path is not a run folder, or two paths
            name the same run folder.
    """
    if not paths:
        raise RunError("no run folder given; pass at least one folder written by `bench run`")

    folders = [Path(path).resolve() for path in paths]
    duplicates = sorted({str(folder) for folder in folders if folders.count(folder) > 1})
    if duplicates:
        raise RunError(f"run folder given twice: {duplicates[0]}; pass each run once")

    runs = [load_run(folder, unique_name=_unique_run_name(folder, folders)) for folder in folders]
    if len(runs) > 1:
        for run in runs:
            for task in run.tasks:
                task.merged = True
            _relabel_per_case(run)
    return ReportData(runs=runs, per_case=_concatenate_per_case(runs))


def load_run(folder: str | Path, unique_name: str | None = None) -> RunRecord:
    """Read one run folder.

    Args:
        folder: a folder written by ``bench run``.
        unique_name: the name tasks are labelled with; defaults to the folder name.

    Raises:
        RunError: the folder does not exist or has no readable ``run.json``.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise RunError(f"run folder not found: {folder}; pass a folder written by `bench run`")

    info = _read_run_json(folder)
    name = unique_name or folder.name
    split = _read_csv(folder / "split.csv", dtype={"case_id": str, "patient_id": str})
    if split is None:
        logger.warning("run %s has no split.csv; train/test counts will be missing", folder)

    task_ids = sorted(set(_listed_task_ids(info)) | set(_task_folders(folder)))
    tasks = [_load_task(folder / task_id, name) for task_id in task_ids]
    logger.info("read run %s: %d tasks", folder, len(tasks))
    return RunRecord(name=name, folder=folder, info=info, split=split, tasks=tasks)


def read_predictions(task: TaskRecord) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(case_ids, probabilities)`` from a task's ``predictions.npz``.

    Raises:
        RunError: the file is absent or lacks ``case_ids`` or ``probabilities``.
    """
    if task.predictions_path is None:
        raise RunError(f"task {task.label} has no predictions.npz; rerun it with `bench run`")
    try:
        return _read_prediction_arrays(task.predictions_path, allow_pickle=False)
    except ValueError:
        # NOTE: `bench run` stores case ids as an object array, which np.load
        # reads only with pickle enabled. Run folders are this tool's own
        # output, so they are trusted enough for that.
        logger.debug("%s stores case ids as an object array", task.predictions_path)
        return _read_prediction_arrays(task.predictions_path, allow_pickle=True)


def load_prepared_for_run(run: RunRecord) -> tuple[Any | None, str]:
    """Load the run's prepared dataset (images, masks, per-case table) as ``bench run`` built it.

    Returns:
        ``(dataset, "")``, or ``(None, reason)`` when the dataset cannot be
        read on this machine. The report then shows the reason in place of
        the gallery and of the training-set difficulty counts.
    """
    source = _dataset_source(run.info)
    if not source:
        return None, f"{run.folder / 'run.json'} names no dataset source"
    try:
        from bench.data.cache import load_prepared

        return load_prepared(source), ""
    except (ScarbenchError, OSError, ImportError) as error:
        logger.warning("cannot load dataset %r of run %s: %s", source, run.folder, error)
        return None, f"dataset {source!r} cannot be read here ({error})"


def _dataset_source(info: dict[str, Any]) -> str:
    dataset = info.get("dataset")
    if isinstance(dataset, dict):
        return str(
            dataset.get("source") or dataset.get("manifest_path") or dataset.get("name") or ""
        )
    return str(dataset or "")


def _read_prediction_arrays(path: Path, allow_pickle: bool) -> tuple[np.ndarray, np.ndarray]:
    with np.load(path, allow_pickle=allow_pickle) as archive:
        missing = {"case_ids", "probabilities"} - set(archive.files)
        if missing:
            raise RunError(
                f"{path} lacks {sorted(missing)} (has {archive.files}); "
                "rerun the task with `bench run`"
            )
        return archive["case_ids"].astype(str), archive["probabilities"]


def _read_run_json(folder: Path) -> dict[str, Any]:
    path = folder / "run.json"
    if not path.is_file():
        raise RunError(
            f"{folder} is not a run folder: it has no run.json; "
            "pass a folder written by `bench run` (e.g. runs/<run-id>)"
        )
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RunError(f"cannot read {path}: {error}; the run folder is damaged") from None
    if not isinstance(info, dict):
        raise RunError(
            f"{path} contains a {type(info).__name__}, expected a JSON object; the run folder is damaged"
        )
    return info


def _unique_run_name(folder: Path, folders: list[Path]) -> str:
    """Folder name, or ``parent/name`` when two runs share a folder name."""
    same_name = [other for other in folders if other.name == folder.name]
    return folder.name if len(same_name) == 1 else f"{folder.parent.name}/{folder.name}"


def _listed_task_ids(info: dict[str, Any]) -> list[str]:
    """Task ids that ``run.json`` lists under ``tasks`` (ids, or objects with ``task_id``)."""
    listed = info.get("tasks")
    if listed is None and isinstance(info.get("matrix"), dict):
        listed = info["matrix"].get("tasks")
    if isinstance(listed, dict):
        return [str(task_id) for task_id in listed]
    ids = []
    for entry in listed or []:
        if isinstance(entry, str):
            ids.append(entry)
        elif isinstance(entry, dict) and "task_id" in entry:
            ids.append(str(entry["task_id"]))
    return ids


def _task_folders(folder: Path) -> list[str]:
    """Sub-folders that look like tasks: they hold ``config.json`` or match the task-id form."""
    names = []
    for child in folder.iterdir():
        if not child.is_dir() or child.name.startswith("."):
            continue
        if (child / "config.json").is_file() or _TASK_ID.match(child.name):
            names.append(child.name)
    return names


def _load_task(folder: Path, run_name: str) -> TaskRecord:
    task = TaskRecord(run_name=run_name, task_id=folder.name, folder=folder, status="missing")
    _fill_identity(task, {})
    if not folder.is_dir():
        task.reason = "listed in run.json but its folder does not exist"
        return task

    task.config = _read_json(folder / "config.json")
    _fill_identity(task, task.config)
    task.train_log = _read_csv(folder / "train_log.csv")
    task.reselected = _read_csv(folder / "reselected.csv", dtype={"case_id": str})
    task.budget = _read_json(folder / "budget.json")
    predictions = folder / "predictions.npz"
    task.predictions_path = predictions if predictions.is_file() else None

    task.status, task.reason = _task_status(folder)
    if task.status == "done":
        task.per_case = _read_per_case(folder / "per_case.csv", task)
        if task.per_case is None:
            task.status, task.reason = "failed", "DONE exists but per_case.csv is missing or empty"
    return task


def _task_status(folder: Path) -> tuple[str, str]:
    error = folder / "error.txt"
    if (folder / "DONE").is_file():
        return "done", ""
    if error.is_file():
        return "failed", _last_error_line(error)
    return "incomplete", "no DONE file: the task did not finish (resume it with `bench run`)"


def _last_error_line(path: Path) -> str:
    """Return the last non-empty line of a traceback, which names the exception."""
    lines = [
        line.strip() for line in path.read_text(encoding="utf-8", errors="replace").splitlines()
    ]
    lines = [line for line in lines if line]
    return lines[-1] if lines else "error.txt is empty"


def _fill_identity(task: TaskRecord, config: dict[str, Any]) -> None:
    """Set backbone, preset, strategy and seed from ``config.json``, else from the task id."""
    match = _TASK_ID.match(task.task_id)
    arm = match["arm"] if match else task.task_id
    parsed_backbone, _, parsed_preset = arm.partition("-")

    backbone = config.get("backbone")
    if isinstance(backbone, dict):
        task.backbone = str(backbone.get("name", parsed_backbone))
        task.preset = str(backbone.get("preset", config.get("preset", parsed_preset)) or "")
    else:
        task.backbone = str(backbone or parsed_backbone)
        task.preset = str(config.get("preset", parsed_preset) or "")

    strategy = config.get("strategy")
    if isinstance(strategy, dict):
        strategy = strategy.get("name")
    task.strategy = str(strategy or (match["strategy"] if match else ""))

    seed = config.get("seed", match["seed"] if match else None)
    task.seed = int(seed) if seed is not None else None


def _read_per_case(path: Path, task: TaskRecord) -> pd.DataFrame | None:
    frame = _read_csv(path, dtype={"case_id": str, "patient_id": str, "site": str, "scanner": str})
    if frame is None or frame.empty:
        return None
    if "dice" not in frame.columns:
        raise RunError(
            f"{path} has no 'dice' column (columns: {list(frame.columns)}); "
            "it was not written by `bench run`"
        )

    frame = frame.copy()
    frame["run"] = task.run_name
    frame["task_label"] = task.label
    frame["backbone"] = task.backbone
    frame["preset"] = task.preset
    frame["model"] = task.model
    frame["strategy"] = task.strategy
    frame["seed"] = task.seed
    for column in ("site", "scanner"):
        if column in frame.columns:
            frame[column] = frame[column].fillna("")
    if "difficulty" in frame.columns:
        frame["difficulty"] = pd.to_numeric(frame["difficulty"], errors="coerce").astype("Int64")
    return frame


def _relabel_per_case(run: RunRecord) -> None:
    for task in run.tasks:
        if task.per_case is not None:
            task.per_case["task_label"] = task.label


def _concatenate_per_case(runs: list[RunRecord]) -> pd.DataFrame:
    frames = [task.per_case for run in runs for task in run.tasks if task.per_case is not None]
    if not frames:
        return pd.DataFrame(
            columns=["run", "task_label", "model", "strategy", "seed", "case_id", "dice"]
        )
    return pd.concat(frames, ignore_index=True)


def _read_csv(path: Path, dtype: dict[str, Any] | None = None) -> pd.DataFrame | None:
    if not path.is_file():
        return None
    try:
        frame = pd.read_csv(path, dtype=dtype, keep_default_na=True)
    except (OSError, ValueError, pd.errors.ParserError) as error:
        raise RunError(f"cannot read {path}: {error}; the run folder is damaged") from None
    return frame


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RunError(f"cannot read {path}: {error}; the run folder is damaged") from None
    return value if isinstance(value, dict) else {}

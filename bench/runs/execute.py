"""Plan a run and execute one task end to end: train, predict, per-case metrics, DONE.

``plan_run`` checks everything before any task starts: names, seeds,
training options, dataset, the run folder and every stored task
configuration. ``execute_task`` runs one task under its lock. It records a
failure's traceback in the task folder instead of raising.

Example:
    >>> from bench.runs.matrices import resolve_matrix
    >>> from bench.runs.execute import plan_run, execute_task
    >>> plan = plan_run(resolve_matrix("smoke"), "runs/smoke")  # doctest: +SKIP
    >>> outcomes = [execute_task(plan.request(task)) for task in plan.tasks]  # doctest: +SKIP
"""

from __future__ import annotations

import functools
import hashlib
import logging
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.errors import ConfigError
from bench.fileio import save_npz, write_csv, write_json
from bench.runs.rundir import (
    DONE_FILE,
    ERROR_FILE,
    RunFolder,
    collect_environment,
    task_lock,
    utc_now,
)
from bench.runs.tasks import Task, build_tasks

__all__ = [
    "RunPlan",
    "TaskRequest",
    "TaskOutcome",
    "plan_run",
    "start_run",
    "finish_run",
    "execute_task",
    "dataset_identity",
    "IDENTITY_COLUMNS",
]

logger = logging.getLogger(__name__)

# Columns that ``per_case.csv`` has before the metric columns (``docs/internals.md``).
IDENTITY_COLUMNS = (
    "task_id",
    "backbone",
    "preset",
    "strategy",
    "seed",
    "case_id",
    "patient_id",
    "difficulty",
    "site",
    "scanner",
)


@dataclass(frozen=True)
class TaskRequest:
    """Everything a worker process needs to run one task (picklable).

    Attributes:
        run_dir: the run folder.
        dataset: dataset source (descriptor YAML, manifest CSV or registered name).
        dataset_identity: the identity stored in each ``config.json``.
        task: the task.
        progress: show a progress bar while training.
    """

    run_dir: str
    dataset: str
    dataset_identity: dict[str, Any]
    task: Task
    progress: bool = False


@dataclass(frozen=True)
class TaskOutcome:
    """Outcome of one task in this invocation.

    Attributes:
        task_id: the task.
        status: ``done`` (ran now), ``skipped`` (already done), ``failed``,
            ``locked`` (another process has its lock), or ``submitted``
            (a cluster job that ``bench run --no-wait`` did not wait for).
        wall_time_s: seconds this attempt took, or the stored time of a skipped task.
        error: the exception line of a failure.
    """

    task_id: str
    status: str
    wall_time_s: float | None = None
    error: str = ""


@dataclass(frozen=True)
class RunPlan:
    """A validated run: matrix, tasks, dataset identity and run folder."""

    matrix: Any
    run_dir: Path
    tasks: list[Task]
    dataset: str
    dataset_identity: dict[str, Any]

    @property
    def folder(self) -> RunFolder:
        return RunFolder(self.run_dir)

    def request(self, task: Task, *, progress: bool = False) -> TaskRequest:
        """Return the picklable request that runs ``task``."""
        return TaskRequest(str(self.run_dir), self.dataset, self.dataset_identity, task, progress)


def plan_run(matrix, run_dir: str | Path) -> RunPlan:
    """Validate a matrix against a run folder; write nothing.

    Args:
        matrix: a ``bench.runs.matrices.Matrix`` with overrides applied.
        run_dir: the run folder, new or holding the same run.

    Raises:
        ConfigError: no dataset, or invalid training options.
        RegistryError: an unknown backbone, strategy or dataset.
        RunError: the folder contains a different run, or a task folder stores
            another configuration hash.
    """
    if matrix.dataset is None:
        raise ConfigError(
            matrix.dataset_hint or f"matrix {matrix.name!r} has no dataset; pass --dataset"
        )
    tasks = build_tasks(matrix)
    identity = dataset_identity(matrix.dataset)

    folder = RunFolder(run_dir)
    folder.check_same_run(matrix.name, identity)
    for task in tasks:
        folder.check_task_config(task.task_id, task.config_hash)

    return RunPlan(matrix, Path(run_dir), tasks, matrix.dataset, identity)


def start_run(
    plan: RunPlan, command: list[str], executor: str, options: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Make or reuse ``split.csv`` and write ``run.json`` before the tasks start.

    Args:
        plan: the validated run.
        command: the command line as typed (``sys.argv``).
        executor: the executor, for the record.
        options: the parsed command-line options, for the record.

    Returns:
        The ``run.json`` content as written.
    """
    from bench.data.split import load_split, make_split, save_split

    folder = plan.folder
    folder.path.mkdir(parents=True, exist_ok=True)
    dataset = _load_dataset(plan.dataset)
    if folder.split_path.is_file():
        split = load_split(folder.split_path)
        dataset.index_of(split["case_id"].tolist())
        logger.info("reusing the split in %s", folder.split_path)
    else:
        split = make_split(
            dataset, test_fraction=plan.matrix.test_fraction, seed=plan.matrix.split_seed
        )
        save_split(folder.split_path, split)

    metadata = _run_metadata(plan, split, command, executor, options or {})
    write_json(folder.run_json_path, metadata)
    return metadata


def finish_run(plan: RunPlan, outcomes: list[TaskOutcome]) -> None:
    """Record the end time and the outcome counts of this invocation in ``run.json``."""
    folder = plan.folder
    metadata = folder.read_run_json() or {}
    metadata["finished"] = utc_now()
    counts: dict[str, int] = {}
    for outcome in outcomes:
        counts[outcome.status] = counts.get(outcome.status, 0) + 1
    metadata["outcomes"] = counts
    if metadata.get("invocations"):
        metadata["invocations"][-1].update(finished=metadata["finished"], outcomes=counts)
    write_json(folder.run_json_path, metadata)


def execute_task(request: TaskRequest) -> TaskOutcome:
    """Run one task under its lock: skip it if done, resume it if partial.

    A failure is written to ``<task>/error.txt`` with its traceback and
    returned as a ``failed`` outcome, so the other tasks go on.
    KeyboardInterrupt and SystemExit still propagate.
    """
    folder = RunFolder(request.run_dir)
    task = request.task
    task_dir = folder.task_dir(task.task_id)

    with task_lock(task_dir) as acquired:
        if not acquired:
            logger.warning("task %s is locked by another process; skipping it", task.task_id)
            return TaskOutcome(task.task_id, "locked")
        if (task_dir / DONE_FILE).is_file():
            logger.debug("task %s is done; skipping it", task.task_id)
            return TaskOutcome(task.task_id, "skipped", folder.task_wall_time_s(task.task_id))

        started = time.perf_counter()
        try:
            resumed = _run_locked_task(folder, request)
        except Exception as error:
            folder.write_error(task.task_id, traceback.format_exc())
            logger.error(
                "task %s failed: %s (traceback in %s)", task.task_id, error, task_dir / ERROR_FILE
            )
            return TaskOutcome(
                task.task_id, "failed", time.perf_counter() - started, _one_line(error)
            )

        wall_time_s = time.perf_counter() - started
        (task_dir / ERROR_FILE).unlink(missing_ok=True)
        folder.write_done(task.task_id, wall_time_s, resumed=resumed)
        logger.info("task %s done in %.1f s", task.task_id, wall_time_s)
        return TaskOutcome(task.task_id, "done", wall_time_s)


def dataset_identity(source: str) -> dict[str, Any]:
    """Return what identifies a dataset: source, name, manifest path and its SHA-256.

    Raises:
        RegistryError: an unknown registered dataset name.
        ManifestError: a missing or invalid descriptor or manifest.
    """
    from bench.data.manifest import load_descriptor

    descriptor = load_descriptor(source)
    manifest_path = Path(descriptor.manifest_path)
    return {
        "source": source,
        "name": descriptor.name,
        "manifest_path": str(manifest_path),
        "manifest_sha256": hashlib.sha256(manifest_path.read_bytes()).hexdigest(),
        "citation": getattr(descriptor, "citation", None),
        "licence": getattr(descriptor, "licence", None),
    }


def _run_locked_task(folder: RunFolder, request: TaskRequest) -> bool:
    """Train, predict and evaluate one task; return whether training resumed from a checkpoint."""
    from bench.data.split import load_split
    from bench.training.config import TrainConfig
    from bench.training.engine import predict, train

    task = request.task
    task_dir = folder.task_dir(task.task_id)
    folder.check_task_config(task.task_id, task.config_hash)
    folder.write_task_config(task, request.dataset_identity)

    dataset = _load_dataset(request.dataset)
    split = load_split(folder.split_path)
    train_data = dataset.subset(dataset.index_of(_case_ids(split, "train")))
    test_data = dataset.subset(dataset.index_of(_case_ids(split, "test")))

    config = TrainConfig.from_dict(task.train_config)
    result = train(config, train_data, task_dir, progress=request.progress)
    probabilities = np.asarray(
        predict(result.model, test_data, device=result.device), dtype=np.float32
    )

    case_ids = np.array(test_data.cases["case_id"].astype(str).tolist(), dtype=str)
    save_npz(task_dir / "predictions.npz", case_ids=case_ids, probabilities=probabilities)
    write_csv(task_dir / "per_case.csv", _per_case_table(task, test_data, probabilities))
    return bool(result.resumed)


def _per_case_table(task: Task, test_data, probabilities: np.ndarray):
    from bench.evaluation.metrics import per_case_table

    cases = test_data.cases.reset_index(drop=True)
    spacing_mm = cases["spacing_mm"].to_numpy(dtype=float)
    clean_scar = test_data.extra_masks.get("scar_clean")

    metrics = per_case_table(
        probabilities,
        test_data.scar[:, 0].numpy(),
        test_data.myocardium[:, 0].numpy(),
        cases["case_id"].astype(str).tolist(),
        kind="probabilities",
        spacing_mm=None if np.isnan(spacing_mm).all() else spacing_mm,
        clean_scar=None if clean_scar is None else clean_scar[:, 0].numpy(),
    )

    identity = cases[["case_id", "patient_id", "difficulty", "site", "scanner"]].copy()
    identity.insert(0, "seed", task.seed)
    identity.insert(0, "strategy", task.strategy)
    identity.insert(0, "preset", task.preset)
    identity.insert(0, "backbone", task.backbone)
    identity.insert(0, "task_id", task.task_id)
    metric_columns = [column for column in metrics.columns if column != "case_id"]
    table = identity.merge(metrics, on="case_id", how="left", validate="one_to_one")
    return table[list(IDENTITY_COLUMNS) + metric_columns]


def _case_ids(split, side: str) -> list[str]:
    ids = split.loc[split["split"] == side, "case_id"].astype(str).tolist()
    if not ids:
        raise ConfigError(
            f"the split has no {side} cases; the dataset is too small for a patient-level split "
            "with this test_fraction: use more patients or another test_fraction"
        )
    return ids


@functools.lru_cache(maxsize=2)
def _load_dataset(source: str):
    """Load the prepared dataset once per process (every local task shares it)."""
    from bench.data.cache import load_prepared

    return load_prepared(source)


def _run_metadata(
    plan: RunPlan, split, command: list[str], executor: str, options: dict[str, Any]
) -> dict[str, Any]:
    folder = plan.folder
    previous = folder.read_run_json() or {}
    now = utc_now()
    invocation = {"command": command, "options": options, "executor": executor, "started": now}
    task_ids = sorted(set(previous.get("tasks", [])) | {task.task_id for task in plan.tasks})
    counts = split["split"].value_counts()
    return {
        "run_id": folder.run_id,
        "created": previous.get("created", now),
        "command": command,
        "options": options,
        "executor": executor,
        "started": now,
        "finished": None,
        "matrix": plan.matrix.to_dict(),
        "dataset": plan.dataset_identity,
        "split": {
            "path": "split.csv",
            "test_fraction": plan.matrix.test_fraction,
            "seed": plan.matrix.split_seed,
            "train_cases": int(counts.get("train", 0)),
            "test_cases": int(counts.get("test", 0)),
            "train_patients": int(split.loc[split["split"] == "train", "patient_id"].nunique()),
            "test_patients": int(split.loc[split["split"] == "test", "patient_id"].nunique()),
        },
        "tasks": task_ids,
        "environment": collect_environment(),
        "invocations": [*previous.get("invocations", []), invocation],
    }


def _one_line(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}"
    return text.splitlines()[0] if text else type(error).__name__

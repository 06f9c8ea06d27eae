"""The run folder: its layout, per-task state and locks, and ``run.json``.

Layout (fixed in ``docs/internals.md``)::

    runs/<run-id>/
      run.json  split.csv
      <task-id>/  config.json  train_log.csv  ...  per_case.csv  error.txt  DONE  .lock

Example:
    >>> from bench.runs.rundir import RunFolder
    >>> folder = RunFolder("runs/smoke")
    >>> folder.task_state("unet-small--standard--seed0")  # doctest: +SKIP
    <TaskState.DONE: 'done'>
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import platform
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path
from typing import Any

from bench import __version__
from bench.errors import RunError
from bench.fileio import write_json, write_text

__all__ = [
    "RunFolder",
    "TaskState",
    "task_lock",
    "collect_environment",
    "git_commit",
    "utc_now",
    "DONE_FILE",
    "ERROR_FILE",
    "CONFIG_FILE",
    "LOCK_FILE",
    "RUN_FILE",
    "SPLIT_FILE",
]

logger = logging.getLogger(__name__)

RUN_FILE = "run.json"
SPLIT_FILE = "split.csv"
CONFIG_FILE = "config.json"
DONE_FILE = "DONE"
ERROR_FILE = "error.txt"
LOCK_FILE = ".lock"
CHECKPOINT_FILE = "checkpoint.pt"
SLURM_FOLDER = "slurm"


class TaskState(str, Enum):
    """State of a task folder, as ``bench status`` shows it."""

    DONE = "done"
    FAILED = "failed"
    PARTIAL = "partial"  # a checkpoint but no DONE: the next run resumes it
    RUNNING = "running"  # another process holds the task's lock
    PENDING = "pending"


class RunFolder:
    """One run folder: paths, task states, stored configurations and metadata.

    Args:
        path: the run folder, e.g. ``runs/smoke``; it need not exist yet.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    @property
    def run_id(self) -> str:
        return self.path.name

    @property
    def run_json_path(self) -> Path:
        return self.path / RUN_FILE

    @property
    def split_path(self) -> Path:
        return self.path / SPLIT_FILE

    def task_dir(self, task_id: str) -> Path:
        return self.path / task_id

    def read_run_json(self) -> dict[str, Any] | None:
        """Return the parsed ``run.json``, or ``None`` when the folder has none.

        Raises:
            RunError: ``run.json`` exists but is not valid JSON.
        """
        return _read_json(self.run_json_path)

    def check_same_run(self, matrix_name: str, dataset: dict[str, Any]) -> None:
        """Check that this folder is new, empty, or contains a run of the same matrix and dataset.

        Raises:
            RunError: the folder contains another run, or files that are not a run.
        """
        stored = self.read_run_json()
        if stored is None:
            self._check_no_foreign_files()
            return

        stored_matrix = stored.get("matrix", {}).get("name")
        if stored_matrix != matrix_name:
            raise RunError(
                f"run folder {self.path} contains a run of matrix {stored_matrix!r}, not {matrix_name!r}; "
                "pass a new --out or --run-id for this matrix"
            )
        stored_dataset = stored.get("dataset", {})
        if _dataset_key(stored_dataset) != _dataset_key(dataset):
            raise RunError(
                f"run folder {self.path} contains a run on dataset {stored_dataset.get('name')!r} "
                f"(manifest sha256 {str(stored_dataset.get('manifest_sha256'))[:12]}…), not "
                f"{dataset.get('name')!r} (manifest sha256 {str(dataset.get('manifest_sha256'))[:12]}…); "
                "pass a new --out or --run-id for this dataset"
            )

    def check_task_config(self, task_id: str, config_hash: str) -> None:
        """Raise when the task folder stores a different configuration hash.

        Raises:
            RunError: ``config.json`` of the task has another hash.
        """
        stored = _read_json(self.task_dir(task_id) / CONFIG_FILE)
        if stored is None:
            return
        if stored.get("config_hash") != config_hash:
            raise RunError(
                f"task {task_id} in {self.path} was run with another configuration "
                f"(config hash {str(stored.get('config_hash'))[:12]}…, now {config_hash[:12]}…); "
                "results are never reused or overwritten: pass a new --out or --run-id"
            )

    def task_ids(self) -> list[str]:
        """Return the ids of the task folders (those with a ``config.json``), sorted."""
        if not self.path.is_dir():
            return []
        return sorted(
            child.name for child in self.path.iterdir() if (child / CONFIG_FILE).is_file()
        )

    def task_state(self, task_id: str) -> TaskState:
        """Return the state of one task from the files in its folder and its lock."""
        folder = self.task_dir(task_id)
        if (folder / DONE_FILE).is_file():
            return TaskState.DONE
        if folder.is_dir() and _is_locked(folder):
            return TaskState.RUNNING
        if (folder / ERROR_FILE).is_file():
            return TaskState.FAILED
        if (folder / CHECKPOINT_FILE).is_file():
            return TaskState.PARTIAL
        return TaskState.PENDING

    def task_wall_time_s(self, task_id: str) -> float | None:
        """Return the wall time of the attempt that finished the task, from ``DONE``."""
        done = _read_json(self.task_dir(task_id) / DONE_FILE, tolerant=True)
        if not done:
            return None
        value = done.get("wall_time_s")
        return float(value) if value is not None else None

    def task_error(self, task_id: str) -> str:
        """Return the last line of the task's ``error.txt`` (the exception), or ``""``."""
        path = self.task_dir(task_id) / ERROR_FILE
        if not path.is_file():
            return ""
        lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        return lines[-1] if lines else ""

    def write_task_config(self, task, dataset: dict[str, Any]) -> None:
        """Write the task's ``config.json``: TrainConfig dict, dataset identity and config hash."""
        write_json(
            self.task_dir(task.task_id) / CONFIG_FILE,
            {
                "task_id": task.task_id,
                "backbone": task.backbone,
                "preset": task.preset,
                "strategy": task.strategy,
                "seed": task.seed,
                "config_hash": task.config_hash,
                "train_config": task.train_config,
                "dataset": dataset,
            },
        )

    def write_done(self, task_id: str, wall_time_s: float, **details: Any) -> None:
        """Mark a task finished; written last, after every other file of the task.

        Args:
            task_id: the task.
            wall_time_s: seconds of the attempt that finished it.
            **details: further JSON-safe facts, e.g. ``resumed=True``.
        """
        write_json(
            self.task_dir(task_id) / DONE_FILE,
            {"finished": utc_now(), "wall_time_s": round(wall_time_s, 3), **details},
        )

    def write_error(self, task_id: str, traceback_text: str) -> None:
        write_text(self.task_dir(task_id) / ERROR_FILE, traceback_text)

    def _check_no_foreign_files(self) -> None:
        if not self.path.is_dir():
            return
        # A run that another process is starting has split.csv, task folders and
        # temporary files before its run.json; anything else is not a run folder.
        foreign = sorted(
            entry.name
            for entry in self.path.iterdir()
            if entry.name not in (SPLIT_FILE, SLURM_FOLDER)
            and not entry.name.startswith(".")
            and not (entry.is_dir() and "--seed" in entry.name)
        )
        if foreign:
            raise RunError(
                f"folder {self.path} has no {RUN_FILE} but contains other files "
                f"({len(foreign)}, e.g. {foreign[:3]}); pass a new or empty --out"
            )


@contextmanager
def task_lock(task_dir: str | os.PathLike) -> Iterator[bool]:
    """Hold the task's lock file while the block runs; yield False if another process holds it.

    The lock is ``fcntl.flock`` on ``<task>/.lock``, non-blocking, so it is
    released when the process exits for any reason, SIGKILL included.
    NOTE: flock is not reliable on some network file systems (older NFS); on
    such a cluster two processes could still write the same task.
    """
    folder = Path(task_dir)
    folder.mkdir(parents=True, exist_ok=True)
    handle = open(folder / LOCK_FILE, "a+b")  # noqa: SIM115 - closed in finally
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    finally:
        handle.close()


def collect_environment() -> dict[str, Any]:
    """Return versions, devices and CPU count for ``run.json``."""
    environment: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "hostname": platform.node(),
        "cpu_count": os.cpu_count(),
        "scarbench": __version__,
        "git_commit": git_commit(),
    }
    for module in ("torch", "monai", "numpy", "scipy", "pandas"):
        environment[module] = _module_version(module)
    environment["devices"] = _device_names()
    environment["torch_threads"] = _torch_threads()
    return environment


def _torch_threads() -> int | None:
    """Intra-op threads of torch: results on the CPU are bit-identical only at equal counts."""
    try:
        import torch
    except ImportError:
        return None
    return torch.get_num_threads()


def git_commit() -> str | None:
    """Return the commit of the source checkout (``+dirty`` when modified), or ``None``."""
    source = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(source), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        status = subprocess.run(
            ["git", "-C", str(source), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{commit}+dirty" if status else commit


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _dataset_key(dataset: dict[str, Any]) -> tuple[Any, Any]:
    return dataset.get("name"), dataset.get("manifest_sha256")


def _is_locked(folder: Path) -> bool:
    if not (folder / LOCK_FILE).exists():
        return False
    with task_lock(folder) as acquired:
        return not acquired


def _read_json(path: Path, *, tolerant: bool = False) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        if tolerant:
            return None
        raise RunError(
            f"{path} is not valid JSON ({error}); restore it or pass a new --out"
        ) from None
    if not isinstance(data, dict):
        if tolerant:
            return None
        raise RunError(f"{path} does not contain a JSON object; restore it or pass a new --out")
    return data


def _module_version(name: str) -> str | None:
    module = sys.modules.get(name)
    if module is None:
        try:
            module = __import__(name)
        except ImportError:
            return None
    return getattr(module, "__version__", None)


def _device_names() -> list[str]:
    try:
        import torch
    except ImportError:
        return []
    names = [f"cpu ({platform.processor() or platform.machine()})"]
    if torch.cuda.is_available():
        names += [
            f"cuda:{index} {torch.cuda.get_device_name(index)}"
            for index in range(torch.cuda.device_count())
        ]
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        names.append("mps")
    return names

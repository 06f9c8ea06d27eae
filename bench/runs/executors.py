"""Executors: where the tasks of a run execute.

- ``run_local``: in this process, one task after another.
- ``run_local_gpus``: one worker process per GPU, each with its own
  ``CUDA_VISIBLE_DEVICES``, pulling tasks from a shared queue.
- ``run_submitit``: one job per task as a job array through submitit
  (``make_slurm_executor`` for SLURM; ``submitit.LocalExecutor`` for tests).
  A pre-empted or timed-out job is requeued by submitit and resumes from the
  task's checkpoint.

Example:
    >>> from bench.runs.executors import run_local
    >>> outcomes = run_local(plan)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.errors import ConfigError
from bench.runs.execute import RunPlan, TaskOutcome, TaskRequest, execute_task

__all__ = [
    "run_local",
    "run_local_gpus",
    "run_submitit",
    "SlurmSettings",
    "make_slurm_executor",
    "slurm_parameters",
    "make_submitit_local_executor",
    "parse_gpus",
    "parse_time_min",
    "SubmititTask",
]

logger = logging.getLogger(__name__)


def run_local(plan: RunPlan, *, progress: bool = False) -> list[TaskOutcome]:
    """Run every task of ``plan`` in this process, one after another."""
    outcomes = []
    for index, task in enumerate(plan.tasks, start=1):
        logger.info("task %d/%d: %s", index, len(plan.tasks), task.task_id)
        outcomes.append(execute_task(plan.request(task, progress=progress)))
    return outcomes


def run_local_gpus(plan: RunPlan, gpus: list[str]) -> list[TaskOutcome]:
    """Run the tasks in one worker process per GPU, each pulling from a shared queue.

    ``CUDA_VISIBLE_DEVICES`` limits each worker to its GPU, so a task's
    ``device="auto"`` selects that GPU as ``cuda:0``.

    Args:
        plan: the validated run.
        gpus: GPU indices as the driver numbers them, e.g. ``["0", "1"]``.
    """
    context = multiprocessing.get_context("spawn")
    task_queue = context.Queue()
    result_queue = context.Queue()
    for task in plan.tasks:
        task_queue.put(plan.request(task))
    for _ in gpus:
        task_queue.put(None)

    workers = [_start_gpu_worker(context, gpu, task_queue, result_queue) for gpu in gpus]
    outcomes = _collect_outcomes(result_queue, workers, len(plan.tasks))
    for worker in workers:
        worker.join()
    return _in_task_order(plan, outcomes)


@dataclass(frozen=True)
class SlurmSettings:
    """SLURM resources of each task's job.

    Attributes:
        partition: SLURM partition.
        time_min: wall-time limit per job, in minutes.
        gpus_per_task: GPUs per job.
        cpus_per_task: CPU cores per job.
        array_parallelism: maximum number of array jobs running at once.
        mem_gb: memory per job in GB, or ``None`` for the partition default.
        account: SLURM account, or ``None``.
        setup: shell lines run before each job (e.g. ``module load cuda``).
    """

    partition: str | None = None
    time_min: int = 240
    gpus_per_task: int = 1
    cpus_per_task: int = 4
    array_parallelism: int = 8
    mem_gb: int | None = None
    account: str | None = None
    setup: tuple[str, ...] = ()


def make_slurm_executor(folder: str | Path, settings: SlurmSettings):
    """Return a submitit SLURM executor whose logs go to ``folder``.

    Raises:
        ConfigError: submitit is not installed, or this machine has no SLURM (``srun``).
    """
    submitit = _import_submitit()
    try:
        executor = submitit.SlurmExecutor(folder=str(Path(folder) / "%j"), max_num_timeout=10)
    except RuntimeError as error:  # submitit raises RuntimeError when srun is missing
        raise ConfigError(
            f"--executor slurm: {error}; run it on a SLURM login node, or use --executor local"
        ) from None
    executor.update_parameters(**slurm_parameters(settings))
    return executor


def slurm_parameters(settings: SlurmSettings) -> dict[str, Any]:
    """Return the ``submitit.SlurmExecutor`` parameters for ``settings``."""
    parameters: dict[str, Any] = {
        "job_name": "scarbench",
        "time": settings.time_min,
        "gpus_per_task": settings.gpus_per_task,
        "cpus_per_task": settings.cpus_per_task,
        "ntasks_per_node": 1,
        "array_parallelism": settings.array_parallelism,
        # SIGUSR2 this long before the time limit, so the job can requeue itself.
        "signal_delay_s": 120,
    }
    if settings.partition:
        parameters["partition"] = settings.partition
    if settings.mem_gb:
        parameters["mem"] = f"{settings.mem_gb}GB"
    if settings.account:
        parameters["account"] = settings.account
    if settings.setup:
        parameters["setup"] = list(settings.setup)
    return parameters


def make_submitit_local_executor(folder: str | Path, time_min: int = 60):
    """Return ``submitit.LocalExecutor`` (jobs as local processes), to test the cluster path.

    Raises:
        ConfigError: submitit is not installed.
    """
    submitit = _import_submitit()
    executor = submitit.LocalExecutor(folder=str(Path(folder) / "%j"))
    executor.update_parameters(timeout_min=time_min)
    return executor


def run_submitit(plan: RunPlan, executor, *, wait: bool = True) -> list[TaskOutcome]:
    """Submit one job per task as a job array; optionally wait for all of them.

    Args:
        plan: the validated run.
        executor: a submitit executor (``make_slurm_executor`` or ``make_submitit_local_executor``).
        wait: wait for every job and return their outcomes; without waiting,
            return ``submitted`` outcomes at once (``bench status RUN`` shows progress).
    """
    requests = [plan.request(task) for task in plan.tasks]
    jobs = executor.map_array(SubmititTask(), requests)
    for request, job in zip(requests, jobs, strict=True):
        logger.info("submitted task %s as job %s", request.task.task_id, job.job_id)
    if not wait:
        return [TaskOutcome(request.task.task_id, "submitted") for request in requests]
    return [_job_outcome(request, job) for request, job in zip(requests, jobs, strict=True)]


class SubmititTask:
    """The callable that each submitit job runs.

    submitit calls ``checkpoint`` when the job is pre-empted or reaches its time
    limit. Returning the same call requeues the job, and the task then resumes
    from its ``checkpoint.pt``.
    """

    def __call__(self, request: TaskRequest) -> TaskOutcome:
        _configure_worker_logging()
        return execute_task(request)

    def checkpoint(self, request: TaskRequest):
        submitit = _import_submitit()
        logger.warning(
            "job of task %s is requeued; it resumes from its checkpoint", request.task.task_id
        )
        return submitit.helpers.DelayedSubmission(SubmititTask(), request)


def parse_gpus(text: str) -> list[str]:
    """Parse ``"0,1"`` into ``["0", "1"]``.

    Raises:
        ConfigError: an empty list, a non-integer index or a repeated index.
    """
    gpus = [part.strip() for part in text.split(",") if part.strip()]
    if not gpus or not all(gpu.isdigit() for gpu in gpus):
        raise ConfigError(f"--gpus: invalid GPU list {text!r}; write GPU indices such as 0,1")
    if len(set(gpus)) != len(gpus):
        raise ConfigError(f"--gpus: GPU list {text!r} repeats an index; list each GPU once")
    return gpus


def parse_time_min(text: str) -> int:
    """Parse a time limit in sbatch's forms into whole minutes, seconds rounded up.

    The forms are ``M``, ``M:S``, ``H:M:S``, ``D-H``, ``D-H:M`` and ``D-H:M:S``.

    Raises:
        ConfigError: a value in none of these forms, or under one minute.
    """
    match = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", text.strip())
    if match is None:
        raise ConfigError(f"--time: invalid time limit {text!r}; write e.g. 4:00:00 or 1-00:00:00")
    days, *parts = match.groups()
    values = [int(part) for part in parts if part is not None]

    if days is not None:
        hours, minutes, seconds = (values + [0, 0])[:3]
        hours += int(days) * 24
    elif len(values) == 3:
        hours, minutes, seconds = values
    else:
        hours, (minutes, seconds) = 0, (values + [0])[:2]

    total_min = hours * 60 + minutes + (1 if seconds % 60 else 0) + seconds // 60
    if total_min < 1:
        raise ConfigError(f"--time: time limit {text!r} is under one minute; give at least 1")
    return total_min


def _start_gpu_worker(context, gpu: str, task_queue, result_queue):
    process = context.Process(
        target=_gpu_worker,
        args=(gpu, task_queue, result_queue, logging.getLogger().level),
        name=f"scarbench-gpu{gpu}",
    )
    previous = os.environ.get("CUDA_VISIBLE_DEVICES")
    os.environ["CUDA_VISIBLE_DEVICES"] = gpu  # a spawned child copies the environment at start
    try:
        process.start()
    finally:
        if previous is None:
            os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = previous
    logger.info("started worker %s (pid %s) on GPU %s", process.name, process.pid, gpu)
    return process


def _gpu_worker(gpu: str, task_queue, result_queue, log_level: int) -> None:
    _configure_worker_logging(log_level)
    while True:
        request = task_queue.get()
        if request is None:
            return
        logger.info("GPU %s: task %s", gpu, request.task.task_id)
        result_queue.put(execute_task(request))


def _collect_outcomes(result_queue, workers, count: int) -> list[TaskOutcome]:
    outcomes: list[TaskOutcome] = []
    while len(outcomes) < count:
        try:
            outcomes.append(result_queue.get(timeout=5))
        except Exception:  # queue.Empty: check that the workers are still alive
            if not any(worker.is_alive() for worker in workers):
                logger.error(
                    "every GPU worker exited with %d of %d tasks unreported; "
                    "see the log above and `bench status`",
                    count - len(outcomes),
                    count,
                )
                break
    return outcomes


def _in_task_order(plan: RunPlan, outcomes: list[TaskOutcome]) -> list[TaskOutcome]:
    by_id = {outcome.task_id: outcome for outcome in outcomes}
    ordered = []
    for task in plan.tasks:
        ordered.append(
            by_id.get(task.task_id)
            or TaskOutcome(
                task.task_id, "failed", error="its worker process exited without a result"
            )
        )
    return ordered


def _job_outcome(request: TaskRequest, job) -> TaskOutcome:
    try:
        return job.result()
    except Exception as error:  # submitit raises when the job itself failed or was cancelled
        logger.error("job %s of task %s failed: %s", job.job_id, request.task.task_id, error)
        message = str(error).strip().splitlines()
        return TaskOutcome(
            request.task.task_id,
            "failed",
            error=f"job {job.job_id} failed: {message[-1] if message else type(error).__name__}",
        )


def _configure_worker_logging(level: int = logging.INFO) -> None:
    if not logging.getLogger().handlers:
        logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


def _import_submitit():
    try:
        import submitit
    except ImportError:
        raise ConfigError(
            "the slurm executor needs submitit: install scarbench with the 'cluster' extra "
            "(pip install 'scarbench[cluster]')"
        ) from None
    return submitit

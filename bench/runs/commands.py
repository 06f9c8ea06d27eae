"""``bench run``, ``bench status`` and ``bench list matrices``.

Example:
    $ bench run --matrix smoke                       # writes or resumes runs/smoke
    $ bench run --matrix full --executor local --gpus 0,1
    $ bench run --matrix full --executor slurm --partition gpu --time 4:00:00
    $ bench status runs/smoke
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from bench.errors import ConfigError, RunError
from bench.runs.execute import RunPlan, TaskOutcome
from bench.runs.rundir import SLURM_FOLDER, RunFolder, TaskState

__all__ = ["run", "status", "list_matrices", "format_table"]

logger = logging.getLogger(__name__)

EXECUTORS = ("local", "slurm", "submitit-local")


def format_table(rows: list[tuple[str, str, str, str]]) -> str:
    """Format (task, status, time, detail) rows as an aligned text table with a count line."""
    header = ("task", "status", "time", "detail")
    widths = [max(len(str(row[column])) for row in [header, *rows]) for column in range(3)]
    lines = []
    for row in [header, *rows]:
        cells = [str(row[column]).ljust(widths[column]) for column in range(3)]
        lines.append("  ".join([*cells, str(row[3])]).rstrip())

    counts: dict[str, int] = {}
    for row in rows:
        counts[row[1]] = counts.get(row[1], 0) + 1
    summary = ", ".join(f"{count} {name}" for name, count in sorted(counts.items()))
    lines.append(f"{len(rows)} tasks: {summary}" if rows else "0 tasks")
    return "\n".join(lines)


def _outcome_rows(outcomes: list[TaskOutcome]) -> list[tuple[str, str, str, str]]:
    return [
        (outcome.task_id, outcome.status, _format_seconds(outcome.wall_time_s), outcome.error)
        for outcome in outcomes
    ]


def _status_rows(folder: RunFolder) -> list[tuple[str, str, str, str]]:
    metadata = folder.read_run_json() or {}
    task_ids = sorted(set(metadata.get("tasks", [])) | set(folder.task_ids()))
    rows = []
    for task_id in task_ids:
        state = folder.task_state(task_id)
        detail = folder.task_error(task_id) if state is TaskState.FAILED else ""
        if state is TaskState.PARTIAL:
            detail = "resumes from its checkpoint"
        rows.append(
            (task_id, state.value, _format_seconds(folder.task_wall_time_s(task_id)), detail)
        )
    return rows


def _format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, remainder = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{remainder:02d}s" if hours else f"{minutes}m{remainder:02d}s"


def _dry_run_rows(plan: RunPlan) -> list[tuple[str, str, str, str]]:
    folder = plan.folder
    rows = []
    for task in plan.tasks:
        state = folder.task_state(task.task_id)
        action = {
            TaskState.DONE: "skip (done)",
            TaskState.RUNNING: "skip (locked by another process)",
            TaskState.PARTIAL: "resume from checkpoint",
            TaskState.FAILED: "retry",
        }.get(state, "run")
        rows.append(
            (task.task_id, state.value, "-", f"{action}; config hash {task.config_hash[:12]}")
        )
    return rows


def _execute(plan: RunPlan, executor: str, gpus: str | None, slurm, wait: bool, progress: bool):
    from bench.runs import executors

    if executor == "local" and gpus:
        return executors.run_local_gpus(plan, executors.parse_gpus(gpus))
    if executor == "local":
        return executors.run_local(plan, progress=progress)

    logs = plan.run_dir / SLURM_FOLDER
    if executor == "slurm":
        backend = executors.make_slurm_executor(logs, slurm)
    else:
        backend = executors.make_submitit_local_executor(logs, slurm.time_min)
    return executors.run_submitit(plan, backend, wait=wait)


@click.command("run")
@click.option(
    "--matrix",
    "matrix_name",
    required=True,
    help="Registered matrix name (see `bench list matrices`) or a matrix YAML file.",
)
@click.option("--dataset", help="Dataset: descriptor YAML, manifest CSV or registered name.")
@click.option("--backbone", "backbones", help="Comma-separated backbones, replacing the matrix's.")
@click.option(
    "--strategy", "strategies", help="Comma-separated strategies, replacing the matrix's."
)
@click.option("--seeds", help="Seeds, e.g. 0,1,2 or 0-2, replacing the matrix's.")
@click.option("--epochs", type=int, help="Training epochs per task (curriculum: over all stages).")
@click.option("--device", help="Training device: auto, cpu, cuda, cuda:1 or mps.")
@click.option("--out", type=click.Path(path_type=Path), help="Run folder [default: runs/RUN_ID].")
@click.option("--run-id", help="Run id, the folder name under runs/ [default: the matrix name].")
@click.option(
    "--dry-run", is_flag=True, help="List the tasks and what would happen; write nothing."
)
@click.option(
    "--executor",
    type=click.Choice(EXECUTORS),
    default="local",
    show_default=True,
    help="local: this machine; slurm: a job array through submitit; "
    "submitit-local: submitit jobs as local processes (tests the cluster path).",
)
@click.option("--gpus", help="local executor: GPU indices, one worker process each, e.g. 0,1.")
@click.option("--partition", help="slurm: partition.")
@click.option(
    "--time",
    "time_limit",
    default="4:00:00",
    show_default=True,
    help="slurm: wall-time limit per job (sbatch forms, e.g. 4:00:00).",
)
@click.option(
    "--gpus-per-task", type=int, default=1, show_default=True, help="slurm: GPUs per job."
)
@click.option(
    "--cpus-per-task", type=int, default=4, show_default=True, help="slurm: CPU cores per job."
)
@click.option(
    "--array-parallelism",
    type=int,
    default=8,
    show_default=True,
    help="slurm: maximum number of array jobs running at once.",
)
@click.option("--mem-gb", type=int, help="slurm: memory per job in GB.")
@click.option("--account", help="slurm: account to charge.")
@click.option(
    "--wait/--no-wait",
    default=True,
    show_default=True,
    help="slurm: wait for every job, or submit and return (check with `bench status`).",
)
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Show a training progress bar [default: when the output is a terminal].",
)
def run(
    matrix_name,
    dataset,
    backbones,
    strategies,
    seeds,
    epochs,
    device,
    out,
    run_id,
    dry_run,
    executor,
    gpus,
    partition,
    time_limit,
    gpus_per_task,
    cpus_per_task,
    array_parallelism,
    mem_gb,
    account,
    wait,
    progress,
) -> None:
    """Train and evaluate every task of a matrix into a run folder; resume it if it exists.

    Tasks with DONE are skipped, partial tasks resume from their checkpoint, a
    failing task records its traceback and the others go on. Exits 1 if any task failed.
    """
    from bench.runs.executors import SlurmSettings, parse_gpus, parse_time_min
    from bench.runs.matrices import resolve_matrix

    matrix = resolve_matrix(
        matrix_name,
        dataset=dataset,
        backbones=backbones,
        strategies=strategies,
        seeds=seeds,
        epochs=epochs,
        device=device,
    )
    if gpus is not None and executor != "local":
        raise ConfigError(
            f"--gpus works with --executor local, not {executor!r}; use --gpus-per-task for slurm"
        )
    if gpus is not None:
        parse_gpus(gpus)
    slurm = SlurmSettings(
        partition=partition,
        time_min=parse_time_min(time_limit),
        gpus_per_task=gpus_per_task,
        cpus_per_task=cpus_per_task,
        array_parallelism=array_parallelism,
        mem_gb=mem_gb,
        account=account,
    )
    run_dir = out if out is not None else Path("runs") / (run_id or matrix.name)

    from bench.runs.execute import finish_run, plan_run, start_run

    plan = plan_run(matrix, run_dir)
    if dry_run:
        click.echo(f"run folder: {run_dir}  matrix: {matrix.name}  dataset: {matrix.dataset}")
        click.echo(format_table(_dry_run_rows(plan)))
        return

    options = {
        key: str(value) if isinstance(value, Path) else value
        for key, value in click.get_current_context().params.items()
    }
    start_run(plan, sys.argv, executor if not gpus else f"local --gpus {gpus}", options)
    logger.info("run folder %s: %d tasks", run_dir, len(plan.tasks))
    show_progress = sys.stderr.isatty() if progress is None else progress
    outcomes = _execute(plan, executor, gpus, slurm, wait, show_progress)
    finish_run(plan, outcomes)

    click.echo(f"run folder: {run_dir}")
    click.echo(format_table(_outcome_rows(outcomes)))
    if any(outcome.status == "failed" for outcome in outcomes):
        click.echo(
            f"some tasks failed; their tracebacks are in {run_dir}/<task>/error.txt", err=True
        )
        sys.exit(1)


@click.command("status")
@click.argument("run_dir", type=click.Path(path_type=Path))
def status(run_dir: Path) -> None:
    """Show the state of every task in the run folder RUN_DIR (done, failed, partial, running, pending)."""
    folder = RunFolder(run_dir)
    if not folder.run_json_path.is_file():
        raise RunError(
            f"{run_dir} is not a run folder (no run.json); give a folder written by `bench run`"
        )
    metadata = folder.read_run_json() or {}
    click.echo(
        f"run folder: {run_dir}  matrix: {metadata.get('matrix', {}).get('name')}  "
        f"dataset: {metadata.get('dataset', {}).get('name')}"
    )
    click.echo(format_table(_status_rows(folder)))


@click.command("matrices")
def list_matrices() -> None:
    """List the registered task matrices (a YAML file can be passed to --matrix too)."""
    from bench.registry import MATRICES

    rows = []
    for name, matrix in MATRICES.items():
        count = len(matrix.backbones) * len(matrix.strategies) * len(matrix.seeds)
        rows.append((name, f"{count} tasks", matrix.description))
    width = max((len(row[0]) for row in rows), default=0)
    for name, count, description in rows:
        click.echo(f"{name.ljust(width)}  {count.rjust(9)}  {description}")

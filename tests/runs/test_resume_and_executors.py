"""Kill-and-resume of `bench run`, the submitit path and the one-worker-per-GPU executor."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from bench.cli import main

STANDARD = "unet-small--standard--seed0"
CURRICULUM = "unet-small--curriculum--seed0"


def bench_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "bench", *args]


def wait_for(path: Path, process: subprocess.Popen, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists():
            return True
        if process.poll() is not None:
            return False
        time.sleep(0.02)
    return False


def test_killed_run_resumes(tmp_path, make_matrix):
    run_dir = tmp_path / "run"
    matrix = make_matrix(strategies=["standard"], epochs=20)
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        bench_command("run", "--matrix", str(matrix), "--out", str(run_dir)),
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert wait_for(run_dir / STANDARD / "checkpoint.pt", process, timeout_s=120)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert not (run_dir / STANDARD / "DONE").exists(), "the task finished before it was killed"

    status = CliRunner().invoke(main, ["status", str(run_dir)])
    assert "partial" in status.output

    rerun = subprocess.run(
        bench_command("run", "--matrix", str(matrix), "--out", str(run_dir)),
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "1 tasks: 1 done" in rerun.stdout
    done = json.loads((run_dir / STANDARD / "DONE").read_text())
    assert done["resumed"] is True
    log = pd.read_csv(run_dir / STANDARD / "train_log.csv")
    assert log["epoch"].max() == 20
    assert not log.duplicated(subset=["stage", "epoch"]).any()


def test_submitit_local_executor(tmp_path, make_matrix):
    run_dir = tmp_path / "run"
    matrix = make_matrix(strategies=["standard"], epochs=1)
    result = CliRunner().invoke(
        main,
        [
            "run",
            "--matrix",
            str(matrix),
            "--out",
            str(run_dir),
            "--executor",
            "submitit-local",
            "--time",
            "10",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "1 tasks: 1 done" in result.output
    assert (run_dir / STANDARD / "DONE").is_file()
    assert (run_dir / STANDARD / "per_case.csv").is_file()
    logs = list((run_dir / "slurm").rglob("*_log.out"))
    assert logs, "submitit wrote no job log under the run folder"
    assert json.loads((run_dir / "run.json").read_text())["executor"] == "submitit-local"


def test_gpu_workers_share_queue(tmp_path, make_matrix):
    """Two workers (GPU ids 0 and 1; on a CPU-only machine the tasks train on the CPU)."""
    run_dir = tmp_path / "run"
    matrix = make_matrix(strategies=["standard"], seeds=[0, 1], epochs=1)
    result = CliRunner().invoke(
        main, ["run", "--matrix", str(matrix), "--out", str(run_dir), "--gpus", "0,1"]
    )
    assert result.exit_code == 0, result.output
    assert "2 tasks: 2 done" in result.output
    for task in ["unet-small--standard--seed0", "unet-small--standard--seed1"]:
        assert (run_dir / task / "DONE").is_file()
    assert json.loads((run_dir / "run.json").read_text())["executor"] == "local --gpus 0,1"


@pytest.mark.slow
def test_smoke_matrix_under_ten_minutes(tmp_path):
    """The built-in smoke matrix on the embedded synthetic set: all 8 tasks, then a rerun that skips."""
    run_dir = tmp_path / "smoke"
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    started = time.monotonic()
    first = subprocess.run(
        bench_command("run", "--matrix", "smoke", "--out", str(run_dir)),
        env=environment,
        capture_output=True,
        text=True,
        timeout=900,
    )
    first_s = time.monotonic() - started
    assert first.returncode == 0, first.stdout + first.stderr
    assert "8 tasks: 8 done" in first.stdout
    assert first_s < 600, f"smoke took {first_s:.0f} s"

    started = time.monotonic()
    second = subprocess.run(
        bench_command("run", "--matrix", "smoke", "--out", str(run_dir)),
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert second.returncode == 0, second.stdout + second.stderr
    assert "8 tasks: 8 skipped" in second.stdout
    assert time.monotonic() - started < 30

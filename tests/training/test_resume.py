"""Kill a real training process with SIGKILL, resume it, and compare with an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

WORKER = Path(__file__).with_name("resume_worker.py")
TIMEOUT_S = 120


def start_worker(task_dir: Path) -> subprocess.Popen:
    environment = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    environment["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(WORKER.parent), environment.get("PYTHONPATH")])
    )
    return subprocess.Popen(
        [sys.executable, str(WORKER), str(task_dir)],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def wait_for(process: subprocess.Popen, condition) -> bool:
    """Poll ``condition``: return True when it is met, False when the process exits first."""
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        if condition():
            return True
        if process.poll() is not None:
            return False
        time.sleep(0.005)
    process.kill()
    pytest.fail(f"resume worker showed no progress within {TIMEOUT_S} s")


def finish(process: subprocess.Popen) -> None:
    _, stderr = process.communicate(timeout=TIMEOUT_S)
    assert process.returncode == 0, stderr.decode()


def log_rows(task_dir: Path) -> int:
    try:
        return len(pd.read_csv(task_dir / "train_log.csv"))
    except (FileNotFoundError, pd.errors.EmptyDataError):
        return 0


def kill(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=TIMEOUT_S)


def read_checkpoint(task_dir: Path) -> dict:
    return torch.load(task_dir / "checkpoint.pt", map_location="cpu", weights_only=True)


def test_killed_run_resumes_bit_identical(tmp_path):
    reference_dir, resumed_dir = tmp_path / "uninterrupted", tmp_path / "killed"
    reference = start_worker(reference_dir)

    # Kill inside stage 3 (epoch 3 of 15), after re-selection chose the oversampled slices.
    first = start_worker(resumed_dir)
    caught = wait_for(first, lambda: log_rows(resumed_dir) >= 33)
    assert caught, "the worker finished before the test could kill it; raise its epochs"
    kill(first)
    assert not read_checkpoint(resumed_dir)["finished"]
    finish(start_worker(resumed_dir))
    finish(reference)

    expected, actual = read_checkpoint(reference_dir), read_checkpoint(resumed_dir)
    assert actual["finished"]
    assert any(entry["oversampled_slices"] > 0 for entry in actual["stage_budgets"])
    for name, tensor in expected["model"].items():
        assert torch.equal(actual["model"][name], tensor), name
    assert torch.equal(actual["sample_losses"], expected["sample_losses"])
    compare_task_files(resumed_dir, reference_dir)


def compare_task_files(resumed_dir: Path, reference_dir: Path) -> None:
    for name in ("sample_losses.csv", "reselected.csv"):
        pd.testing.assert_frame_equal(
            pd.read_csv(resumed_dir / name), pd.read_csv(reference_dir / name)
        )
    # Wall times differ between runs; every other column must match.
    columns = ["stage", "epoch", "loss", "optimizer_steps", "images_seen", "spikes"]
    pd.testing.assert_frame_equal(
        pd.read_csv(resumed_dir / "train_log.csv")[columns],
        pd.read_csv(reference_dir / "train_log.csv")[columns],
    )

"""Run folder: task states, per-task locks, run identity and stored configurations."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from bench.errors import RunError
from bench.fileio import write_json
from bench.runs.rundir import RunFolder, TaskState, collect_environment, task_lock
from bench.runs.tasks import Task

DATASET = {"name": "tiny", "manifest_sha256": "a" * 64}


def make_task(config_hash: str = "h1") -> Task:
    return Task(
        task_id="unet-small--standard--seed0",
        backbone="unet",
        preset="small",
        strategy="standard",
        seed=0,
        train_config={"backbone": "unet", "epochs": 1},
        config_hash=config_hash,
    )


def test_task_state_sequence(tmp_path):
    folder = RunFolder(tmp_path / "run")
    task = make_task()
    assert folder.task_state(task.task_id) is TaskState.PENDING

    folder.write_task_config(task, DATASET)
    assert folder.task_ids() == [task.task_id]
    assert folder.task_state(task.task_id) is TaskState.PENDING

    (folder.task_dir(task.task_id) / "checkpoint.pt").write_bytes(b"x")
    assert folder.task_state(task.task_id) is TaskState.PARTIAL

    folder.write_error(task.task_id, "Traceback ...\nValueError: broken input\n")
    assert folder.task_state(task.task_id) is TaskState.FAILED
    assert folder.task_error(task.task_id) == "ValueError: broken input"

    folder.write_done(task.task_id, 12.345)
    assert folder.task_state(task.task_id) is TaskState.DONE
    assert folder.task_wall_time_s(task.task_id) == pytest.approx(12.345)


def test_lock_excludes_second_holder(tmp_path):
    folder = RunFolder(tmp_path / "run")
    task_dir = folder.task_dir("t")
    with task_lock(task_dir) as first:
        assert first
        with task_lock(task_dir) as second:
            assert not second
        assert folder.task_state("t") is TaskState.RUNNING
    with task_lock(task_dir) as again:
        assert again
    assert folder.task_state("t") is TaskState.PENDING


def test_lock_held_by_other_process(tmp_path):
    task_dir = tmp_path / "run" / "t"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from bench.runs.rundir import task_lock\n"
            "with task_lock(sys.argv[1]) as ok:\n"
            "    print(ok, flush=True)\n"
            "    time.sleep(60)\n",
            str(task_dir),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "True"
        with task_lock(task_dir) as acquired:
            assert not acquired
        assert RunFolder(tmp_path / "run").task_state("t") is TaskState.RUNNING
    finally:
        holder.kill()
        holder.wait()
    time.sleep(0.05)
    with task_lock(task_dir) as acquired:
        assert acquired


def test_same_run_accepts_new_and_empty(tmp_path):
    RunFolder(tmp_path / "absent").check_same_run("smoke", DATASET)
    (tmp_path / "empty").mkdir()
    RunFolder(tmp_path / "empty").check_same_run("smoke", DATASET)


def test_same_run_rejects_other_matrix(tmp_path):
    folder = RunFolder(tmp_path / "run")
    write_json(folder.run_json_path, {"matrix": {"name": "full"}, "dataset": DATASET})
    folder.check_same_run("full", DATASET)
    with pytest.raises(RunError, match="matrix 'full', not 'smoke'.*--out or --run-id"):
        folder.check_same_run("smoke", DATASET)


def test_same_run_rejects_other_dataset(tmp_path):
    folder = RunFolder(tmp_path / "run")
    write_json(folder.run_json_path, {"matrix": {"name": "smoke"}, "dataset": DATASET})
    other = {"name": "tiny", "manifest_sha256": "b" * 64}
    with pytest.raises(RunError, match="dataset 'tiny'"):
        folder.check_same_run("smoke", other)


def test_same_run_rejects_foreign_folder(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(RunError, match="no run.json but contains other files.*notes.txt"):
        RunFolder(tmp_path).check_same_run("smoke", DATASET)


def test_same_run_accepts_starting_run(tmp_path):
    (tmp_path / "split.csv").write_text("case_id,patient_id,split\n")
    (tmp_path / "unet-small--standard--seed0").mkdir()
    RunFolder(tmp_path).check_same_run("smoke", DATASET)


def test_corrupt_run_json(tmp_path):
    folder = RunFolder(tmp_path)
    folder.run_json_path.write_text("{not json")
    with pytest.raises(RunError, match="run.json is not valid JSON"):
        folder.check_same_run("smoke", DATASET)


def test_changed_config_hash_rejected(tmp_path):
    folder = RunFolder(tmp_path / "run")
    folder.write_task_config(make_task("h1"), DATASET)
    folder.check_task_config("unet-small--standard--seed0", "h1")
    with pytest.raises(RunError, match="another configuration.*h1.*h2.*--out or --run-id"):
        folder.check_task_config("unet-small--standard--seed0", "h2")


def test_environment_has_versions():
    environment = collect_environment()
    assert environment["cpu_count"] >= 1
    assert environment["torch"]
    assert environment["monai"]
    assert environment["devices"][0].startswith("cpu")

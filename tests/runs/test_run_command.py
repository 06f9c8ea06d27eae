"""`bench run` and `bench status` end to end on a tiny synthetic set with real training."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from bench.cli import main
from bench.runs.rundir import RunFolder, TaskState, task_lock

PER_CASE_COLUMNS = [
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
    "dice",
    "iou",
    "precision",
    "sensitivity",
    "hd95_px",
    "hd95_mm",
    "true_burden",
    "pred_burden",
    "burden_error",
    "abs_burden_error",
    "dice_clean",
]
TASKS = ["unet-small--standard--seed0", "unet-small--curriculum--seed0"]


def invoke(*args: str):
    return CliRunner().invoke(main, list(args))


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, tiny_dataset):
    """One finished tiny run (unet, both strategies, 3 epochs), shared by the read-only checks."""
    folder = tmp_path_factory.mktemp("finished")
    matrix = folder / "tiny.yaml"
    matrix.write_text(
        f"name: tiny\ndataset: {tiny_dataset}\nbackbones: [unet]\n"
        "strategies: [standard, curriculum]\nseeds: [0]\nepochs: 3\ntest_fraction: 0.25\n"
        "train: {checkpoint_every: 1, device: cpu}\n"
    )
    result = invoke("run", "--matrix", str(matrix), "--out", str(folder / "run"))
    return folder / "run", matrix, result


def test_run_completes_every_task(finished_run):
    run_dir, _, result = finished_run
    assert result.exit_code == 0, result.output
    for task in TASKS:
        assert (run_dir / task / "DONE").is_file()
        assert RunFolder(run_dir).task_state(task) is TaskState.DONE
    assert "2 tasks: 2 done" in result.output


def test_per_case_csv_columns(finished_run):
    run_dir, _, _ = finished_run
    split = pd.read_csv(run_dir / "split.csv", dtype={"case_id": str})
    test_ids = sorted(split.loc[split["split"] == "test", "case_id"])
    for task in TASKS:
        table = pd.read_csv(run_dir / task / "per_case.csv", dtype={"case_id": str})
        assert list(table.columns) == PER_CASE_COLUMNS
        assert sorted(table["case_id"]) == test_ids
        assert set(table["task_id"]) == {task}
        assert table["dice"].dropna().between(0, 1).all()


def test_predictions_match_split(finished_run):
    run_dir, _, _ = finished_run
    split = pd.read_csv(run_dir / "split.csv", dtype={"case_id": str})
    with np.load(run_dir / TASKS[0] / "predictions.npz") as stored:
        assert sorted(stored["case_ids"].tolist()) == sorted(
            split.loc[split["split"] == "test", "case_id"]
        )
        assert stored["probabilities"].dtype == np.float32
        assert stored["probabilities"].shape == (len(stored["case_ids"]), 64, 64)
        assert 0.0 <= stored["probabilities"].min() <= stored["probabilities"].max() <= 1.0


def test_run_json_metadata(finished_run):
    run_dir, _, _ = finished_run
    metadata = json.loads((run_dir / "run.json").read_text())
    assert metadata["matrix"]["name"] == "tiny"
    assert metadata["dataset"]["name"] == "synthetic"
    assert len(metadata["dataset"]["manifest_sha256"]) == 64
    assert metadata["split"]["test_patients"] == 1
    assert metadata["split"]["train_patients"] == 3
    assert metadata["tasks"] == sorted(TASKS)
    assert metadata["command"]
    assert metadata["options"]["matrix_name"].endswith("tiny.yaml")
    assert metadata["executor"] == "local"
    assert metadata["environment"]["torch"]
    assert metadata["environment"]["cpu_count"] >= 1
    assert metadata["started"] <= metadata["finished"]


def test_task_config_json(finished_run):
    run_dir, _, _ = finished_run
    config = json.loads((run_dir / TASKS[1] / "config.json").read_text())
    assert config["task_id"] == TASKS[1]
    assert config["train_config"]["strategy"] == "curriculum"
    assert config["train_config"]["epochs"] == 3
    assert len(config["config_hash"]) == 64
    assert config["dataset"]["name"] == "synthetic"


def test_rerun_skips_everything(finished_run):
    run_dir, matrix, _ = finished_run
    before = (run_dir / TASKS[0] / "per_case.csv").stat().st_mtime_ns
    result = invoke("run", "--matrix", str(matrix), "--out", str(run_dir))
    assert result.exit_code == 0, result.output
    assert "2 tasks: 2 skipped" in result.output
    assert (run_dir / TASKS[0] / "per_case.csv").stat().st_mtime_ns == before
    assert len(json.loads((run_dir / "run.json").read_text())["invocations"]) >= 2


def test_status_table(finished_run):
    run_dir, _, _ = finished_run
    result = invoke("status", str(run_dir))
    assert result.exit_code == 0, result.output
    assert "matrix: tiny" in result.output
    for task in TASKS:
        assert task in result.output
    assert "2 tasks: 2 done" in result.output


def test_changed_hyperparameter_rejected(finished_run):
    run_dir, matrix, _ = finished_run
    config_before = (run_dir / TASKS[0] / "config.json").read_text()
    result = invoke("run", "--matrix", str(matrix), "--out", str(run_dir), "--epochs", "4")
    assert result.exit_code == 2
    assert "another configuration" in result.output
    assert "--out or --run-id" in result.output
    assert (run_dir / TASKS[0] / "config.json").read_text() == config_before


def test_other_matrix_in_same_folder_rejected(finished_run, make_matrix):
    run_dir, _, _ = finished_run
    result = invoke("run", "--matrix", str(make_matrix("other")), "--out", str(run_dir))
    assert result.exit_code == 2
    assert "contains a run of matrix 'tiny', not 'other'" in result.output


def test_other_dataset_in_same_folder_rejected(finished_run, make_matrix, no_difficulty_dataset):
    run_dir, _, _ = finished_run
    matrix = make_matrix("tiny", dataset=str(no_difficulty_dataset))
    result = invoke("run", "--matrix", str(matrix), "--out", str(run_dir))
    assert result.exit_code == 2
    assert "contains a run on dataset 'synthetic'" in result.output


def test_dry_run_writes_nothing(tmp_path, make_matrix):
    run_dir = tmp_path / "dry"
    result = invoke("run", "--matrix", str(make_matrix()), "--out", str(run_dir), "--dry-run")
    assert result.exit_code == 0, result.output
    for task in TASKS:
        assert task in result.output
    assert "2 pending" in result.output
    assert not run_dir.exists()


def test_failed_task_recorded_others_go_on(tmp_path, make_matrix, no_difficulty_dataset):
    run_dir = tmp_path / "run"
    matrix = make_matrix(dataset=str(no_difficulty_dataset))
    result = invoke("run", "--matrix", str(matrix), "--out", str(run_dir))

    assert result.exit_code == 1
    assert (run_dir / TASKS[0] / "DONE").is_file()
    assert not (run_dir / TASKS[1] / "DONE").exists()
    error = (run_dir / TASKS[1] / "error.txt").read_text()
    assert "Traceback" in error
    assert "bench data difficulty" in error
    assert "1 done, 1 failed" in result.output

    status = invoke("status", str(run_dir))
    assert "failed" in status.output
    assert "bench data difficulty" in status.output


def test_locked_task_skipped(tmp_path, make_matrix):
    run_dir = tmp_path / "run"
    matrix = make_matrix()
    with task_lock(run_dir / TASKS[1]) as acquired:
        assert acquired
        result = invoke("run", "--matrix", str(matrix), "--out", str(run_dir))
    assert result.exit_code == 0, result.output
    assert "1 done, 1 locked" in result.output
    assert (run_dir / TASKS[0] / "DONE").is_file()
    assert not (run_dir / TASKS[1] / "DONE").exists()


def test_default_folder_is_runs_matrix_name(tmp_path, make_matrix, monkeypatch):
    monkeypatch.chdir(tmp_path)
    matrix = make_matrix("named", strategies=["standard"], epochs=1)
    result = invoke("run", "--matrix", str(matrix), "--dry-run")
    assert result.exit_code == 0, result.output
    assert (
        f"run folder: {tmp_path.joinpath('runs', 'named').relative_to(tmp_path)}" in result.output
    )
    result = invoke("run", "--matrix", str(matrix), "--run-id", "other-id", "--dry-run")
    assert "run folder: runs/other-id" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--matrix", "smok"], "did you mean 'smoke'"),
        (["--matrix", "smoke", "--backbone", "unte"], "did you mean 'unet'"),
        (
            ["--matrix", "smoke", "--backbone", "unet", "--strategy", "curiculum"],
            "did you mean 'curriculum'",
        ),
        (["--matrix", "smoke", "--seeds", "0,x"], "invalid seed 'x'"),
        (["--matrix", "emidec-cpu"], "bench data import emidec SRC --out DIR --scar-only"),
        (
            ["--matrix", "smoke", "--executor", "slurm", "--gpus", "0"],
            "--gpus works with --executor local",
        ),
        (["--matrix", "smoke", "--gpus", "0,a"], "invalid GPU list"),
        (["--matrix", "smoke", "--executor", "slurm", "--time", "4h"], "invalid time limit"),
    ],
)
def test_bad_input_fails_before_start(tmp_path, args, message):
    run_dir = tmp_path / "run"
    result = invoke("run", *args, "--out", str(run_dir))
    assert result.exit_code == 2
    assert message in result.output
    assert not run_dir.exists()


def test_status_of_non_run_folder(tmp_path):
    result = invoke("status", str(tmp_path))
    assert result.exit_code == 2
    assert "not a run folder" in result.output

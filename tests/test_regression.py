"""The regression gate on a real run: unchanged passes, degraded and incomplete runs fail."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from bench.cli import main
from bench.regression import check_run, make_baseline

TASKS = ("unet-small--standard--seed0", "unet-small--curriculum--seed0")


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real two-task run on the scar slices of a 16-patient phantom set.

    Like the curriculum study, it keeps only slices with scar, so that nearly
    every test case has a Dice that a 0.05 drop can lower.
    """
    folder = tmp_path_factory.mktemp("regression")
    runner = CliRunner()
    synth = runner.invoke(
        main,
        ["data", "synth", "--out", str(folder / "data"), "--patients", "16",
         "--slices-per-patient", "4", "--size", "128", "--seed", "3"],
    )  # fmt: skip
    assert synth.exit_code == 0, synth.output
    manifest_path = folder / "data" / "manifest.csv"
    manifest = pd.read_csv(manifest_path)
    manifest[manifest["pattern"] != "none"].to_csv(manifest_path, index=False)

    matrix = folder / "gate.yaml"
    matrix.write_text(
        yaml.safe_dump(
            {
                "name": "gate",
                "dataset": str(folder / "data" / "dataset.yaml"),
                "backbones": ["unet"],
                "strategies": ["standard", "curriculum"],
                "epochs": 9,
                "test_fraction": 0.25,
                "train": {"learning_rate": 3.0e-3, "batch_size": 4, "device": "cpu"},
            }
        )
    )
    run_dir = folder / "run"
    result = runner.invoke(main, ["run", "--matrix", str(matrix), "--out", str(run_dir)])
    assert result.exit_code == 0, result.output
    return run_dir


@pytest.fixture(scope="module")
def baseline_file(finished_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("baseline") / "gate.json"
    result = CliRunner().invoke(main, ["baseline", "update", str(finished_run), "--out", str(path)])
    assert result.exit_code == 0, result.output
    return path


def test_baseline_document_is_complete(baseline_file: Path):
    document = json.loads(baseline_file.read_text())

    assert set(document["tasks"]) == set(TASKS)
    assert document["tolerances"]["dice_median"] == 0.02
    assert "unet-small" in document["comparisons"]
    for task in document["tasks"].values():
        assert len(task["case_ids"]) == len(task["dice"]) == task["n"] + task["n_excluded"]
        assert len(task["config_hash"]) >= 12


def test_unchanged_run_passes(finished_run: Path, baseline_file: Path):
    result = CliRunner().invoke(
        main, ["check", str(finished_run), "--baseline", str(baseline_file)]
    )

    assert result.exit_code == 0, result.output
    assert "no regression" in result.output
    assert "REGRESSION" not in result.output


def test_lowered_dice_fails(finished_run: Path, baseline_file: Path, tmp_path: Path):
    degraded = tmp_path / "degraded"
    shutil.copytree(finished_run, degraded)
    table_path = degraded / TASKS[0] / "per_case.csv"
    table = pd.read_csv(table_path)
    lowerable = table["dice"] >= 0.05
    assert lowerable.mean() > 0.5, (
        f"the fixture run should give Dice >= 0.05 on most cases: {table['dice'].tolist()}"
    )
    table.loc[lowerable, "dice"] -= 0.05
    table.to_csv(table_path, index=False)

    result = CliRunner().invoke(main, ["check", str(degraded), "--baseline", str(baseline_file)])

    assert result.exit_code == 1, result.output
    verdicts = {
        (row.item, row.metric): row.verdict
        for row in check_run(degraded, json.loads(baseline_file.read_text()))
    }
    assert verdicts[(TASKS[0], "median Dice")] == "regression"
    assert verdicts[(TASKS[1], "median Dice")] == "ok"


def test_small_dice_noise_passes(finished_run: Path, baseline_file: Path, tmp_path: Path):
    noisy = tmp_path / "noisy"
    shutil.copytree(finished_run, noisy)
    table_path = noisy / TASKS[0] / "per_case.csv"
    table = pd.read_csv(table_path)
    table["dice"] = (table["dice"] - 0.005).clip(lower=0.0)
    table.to_csv(table_path, index=False)

    rows = check_run(noisy, json.loads(baseline_file.read_text()))

    assert all(row.verdict != "regression" for row in rows), rows


def test_missing_task_named(finished_run: Path, baseline_file: Path, tmp_path: Path):
    incomplete = tmp_path / "incomplete"
    shutil.copytree(finished_run, incomplete)
    shutil.rmtree(incomplete / TASKS[1])

    result = CliRunner().invoke(main, ["check", str(incomplete), "--baseline", str(baseline_file)])

    assert result.exit_code == 1
    assert TASKS[1] in result.output
    assert "task missing from the run" in result.output


def test_changed_config_fails(finished_run: Path, baseline_file: Path, tmp_path: Path):
    changed = tmp_path / "changed"
    shutil.copytree(finished_run, changed)
    config_path = changed / TASKS[0] / "config.json"
    config = json.loads(config_path.read_text())
    config["config_hash"] = "0" * 64
    config_path.write_text(json.dumps(config))

    rows = check_run(changed, json.loads(baseline_file.read_text()))

    task_rows = [row for row in rows if row.item == TASKS[0]]
    assert [row.verdict for row in task_rows] == ["regression"]
    assert task_rows[0].metric == "config"


def test_not_a_run_folder(tmp_path: Path, baseline_file: Path):
    result = CliRunner().invoke(main, ["check", str(tmp_path), "--baseline", str(baseline_file)])

    assert result.exit_code == 2
    assert "is not a run folder" in result.output


def test_baseline_keeps_run_provenance(finished_run: Path):
    document = make_baseline(finished_run)

    assert document["run"]["matrix"] is not None
    assert document["environment"]["torch"]


def test_undefined_dice_not_read_as_drop(finished_run: Path, baseline_file: Path, tmp_path: Path):
    changed = tmp_path / "undefined"
    shutil.copytree(finished_run, changed)
    table_path = changed / TASKS[0] / "per_case.csv"
    table = pd.read_csv(table_path)
    best = table["dice"].nlargest(4).index
    table.loc[best, "dice"] = float("nan")
    table.to_csv(table_path, index=False)

    rows = check_run(changed, json.loads(baseline_file.read_text()))

    dice_row = next(row for row in rows if row.item == TASKS[0] and row.metric == "median Dice")
    assert dice_row.change == 0.0
    assert dice_row.verdict == "ok"


def test_pooled_drop_caught(finished_run: Path, baseline_file: Path, tmp_path: Path):
    document = json.loads(baseline_file.read_text())
    document["tolerances"]["dice_median"] = 0.5
    degraded = tmp_path / "pooled"
    shutil.copytree(finished_run, degraded)
    for task in TASKS:
        table_path = degraded / task / "per_case.csv"
        table = pd.read_csv(table_path)
        table.loc[table["dice"] >= 0.05, "dice"] -= 0.05
        table.to_csv(table_path, index=False)

    rows = check_run(degraded, document)

    verdicts = {(row.item, row.metric): row.verdict for row in rows}
    assert verdicts[(TASKS[0], "median Dice")] == "ok"
    assert verdicts[(TASKS[1], "median Dice")] == "ok"
    assert verdicts[("all tasks", "median paired Dice change")] == "regression"


def test_environment_difference_noted(finished_run: Path, baseline_file: Path):
    document = json.loads(baseline_file.read_text())
    document["environment"]["torch_threads"] = 64

    rows = check_run(finished_run, document)

    notes = [row for row in rows if row.item == "environment"]
    assert [row.metric for row in notes] == ["torch_threads"]
    assert notes[0].verdict == "note"


def test_identical_run_has_zero_differences(finished_run: Path, baseline_file: Path):
    rows = check_run(finished_run, json.loads(baseline_file.read_text()))

    dice_rows = [row for row in rows if row.metric == "median Dice"]
    assert len(dice_rows) == len(TASKS)
    for row in dice_rows:
        assert row.change == 0.0
        assert "p = 1;" in row.detail

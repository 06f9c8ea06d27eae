"""Smoke tests of ``bench perf`` with tiny settings; they check structure, never timings."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner

from bench.cli import main
from bench.errors import ConfigError
from bench.perf import PerfSettings, format_table, run_perf


def _positive_numbers(values: list[float]) -> bool:
    return bool(values) and all(math.isfinite(value) and value > 0 for value in values)


@pytest.fixture(scope="module")
def quick_results() -> dict:
    """One tiny run of every measurement (unet-small, one repeat)."""
    return run_perf(PerfSettings.quick(repeats=1, report_cases=120))


def test_training_pairs_engine_and_bare(quick_results: dict) -> None:
    (row,) = quick_results["training"]
    assert row["backbone"] == "unet"
    assert row["preset"] == "small"
    assert row["slices"] == 16
    assert len(row["engine_images_per_s"]) == 1
    assert _positive_numbers(row["engine_images_per_s"])
    assert _positive_numbers(row["bare_images_per_s"])
    expected = row["engine_images_per_s"][0] / row["bare_images_per_s"][0]
    assert row["ratio"] == pytest.approx(expected)
    assert row["parameters"] > 0


def test_prediction_covers_prepared_slices(quick_results: dict) -> None:
    (row,) = quick_results["prediction"]
    assert row["slices"] == quick_results["preparation"]["slices"]
    assert _positive_numbers(row["predict_images_per_s"])
    assert _positive_numbers(row["bare_images_per_s"])


def test_preparation_cold_and_cached(quick_results: dict) -> None:
    preparation = quick_results["preparation"]
    assert preparation["source"] == "phantoms"
    assert preparation["prepared_size_px"] == 64
    assert 0 < preparation["slices"] <= 18
    assert len(preparation["cold_s"]) == 1
    assert len(preparation["cached_s"]) == 1
    assert _positive_numbers(preparation["cold_s"] + preparation["cached_s"])


def test_report_times_statistics_and_report(quick_results: dict) -> None:
    report = quick_results["report"]
    assert report["rows"] == 4 * 120
    assert _positive_numbers(report["statistics_s"])
    assert "report_error" not in report, report.get("report_error")
    assert _positive_numbers(report["report_s"])


def test_machine_records_versions(quick_results: dict) -> None:
    machine = quick_results["machine"]
    assert machine["device"] == "cpu"
    assert machine["torch"]
    assert machine["cpu_count"] >= 1
    assert quick_results["settings"]["threads"] == 1


def test_table_lists_targets(quick_results: dict) -> None:
    table = format_table(quick_results)
    assert "train unet-small engine/bare" in table
    assert ">= 0.95" in table
    assert "slices cold (s)" in table
    assert "slices cached (s)" in table
    assert "statistics + report, 4 tasks x 120 cases" in table


def test_command_writes_json(tmp_path: Path) -> None:
    output = tmp_path / "perf.json"
    result = CliRunner().invoke(
        main,
        ["perf", "--quick", "--repeats", "1", "--parts", "report", "--out", str(output)],
    )
    assert result.exit_code == 0, result.output
    assert "statistics + report" in result.output
    written = json.loads(output.read_text(encoding="utf-8"))
    assert set(written) >= {"date", "machine", "settings", "report", "command"}
    assert "training" not in written


def test_settings_reject_invalid_values() -> None:
    with pytest.raises(ConfigError, match="repeats=0"):
        PerfSettings(repeats=0)
    with pytest.raises(ConfigError, match="report_tasks=3"):
        PerfSettings(report_tasks=3)
    with pytest.raises(ConfigError, match="unknown or empty --parts"):
        PerfSettings(parts=("training", "warp"))


def test_command_rejects_too_many_train_slices() -> None:
    result = CliRunner().invoke(
        main, ["perf", "--quick", "--parts", "training", "--train-slices", "500"]
    )
    assert result.exit_code == 2
    assert "--train-slices 500" in result.output

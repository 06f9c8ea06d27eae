"""Executor helpers: GPU lists, SLURM time limits and the SLURM job parameters."""

from __future__ import annotations

import shutil

import pytest

from bench.errors import ConfigError
from bench.runs.executors import (
    SlurmSettings,
    make_slurm_executor,
    parse_gpus,
    parse_time_min,
    slurm_parameters,
)


@pytest.mark.parametrize(
    ("text", "minutes"),
    [
        ("90", 90),
        ("30:30", 31),
        ("4:00:00", 240),
        ("0:0:30", 1),
        ("1-00:00:00", 1440),
        ("2-3", 51 * 60),
        ("1-2:30", 26 * 60 + 30),
    ],
)
def test_parse_time_min(text, minutes):
    assert parse_time_min(text) == minutes


@pytest.mark.parametrize("text", ["", "4h", "1:2:3:4", "0", "0:00:00", "-1"])
def test_parse_time_min_invalid(text):
    with pytest.raises(ConfigError, match="--time"):
        parse_time_min(text)


def test_parse_gpus():
    assert parse_gpus("0, 1,3") == ["0", "1", "3"]
    for text in ["", "a", "0,0", "cuda:0"]:
        with pytest.raises(ConfigError, match="--gpus"):
            parse_gpus(text)


def test_slurm_parameters_accepted_by_submitit():
    import submitit

    settings = SlurmSettings(
        partition="gpu",
        time_min=240,
        gpus_per_task=1,
        array_parallelism=3,
        mem_gb=16,
        account="lab",
    )
    parameters = slurm_parameters(settings)
    assert set(parameters) <= submitit.SlurmExecutor._valid_parameters()
    assert parameters["partition"] == "gpu"
    assert parameters["time"] == 240
    assert parameters["gpus_per_task"] == 1
    assert parameters["array_parallelism"] == 3
    assert parameters["mem"] == "16GB"


@pytest.mark.skipif(shutil.which("srun") is not None, reason="this machine has SLURM")
def test_slurm_executor_without_slurm(tmp_path):
    with pytest.raises(ConfigError, match="--executor slurm.*SLURM login node"):
        make_slurm_executor(tmp_path / "slurm", SlurmSettings())

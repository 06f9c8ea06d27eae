"""A real tiny run, made once per test session by `bench data synth` and `bench run`.

The run has 2 backbones (small presets) x 2 strategies (standard, curriculum),
seed 0 and 3 epochs (the fewest that the curriculum's 3 stages accept), on 48
synthetic 64x64 slices. It takes about 10 s of CPU time.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from bench.cli import main

BACKBONES = "unet,attention_unet"
EPOCHS = 3


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished run folder: unet-small and attention_unet-small, standard and curriculum."""
    root = tmp_path_factory.mktemp("tiny_run")
    dataset = root / "synth"
    run_folder = root / "tiny"
    runner = CliRunner()

    synth = runner.invoke(
        main,
        [
            "data",
            "synth",
            "--out",
            str(dataset),
            "--patients",
            "12",
            "--slices-per-patient",
            "4",
            "--size",
            "64",
        ],
    )
    assert synth.exit_code == 0, synth.output

    run = runner.invoke(
        main,
        [
            "run",
            "--matrix",
            "smoke",
            "--dataset",
            str(dataset / "dataset.yaml"),
            "--backbone",
            BACKBONES,
            "--epochs",
            str(EPOCHS),
            "--out",
            str(run_folder),
            "--no-progress",
        ],
    )
    assert run.exit_code == 0, run.output
    return run_folder


@pytest.fixture()
def run_copy(tiny_run: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny run that a test may damage."""
    copy = tmp_path / tiny_run.name
    shutil.copytree(tiny_run, copy)
    return copy

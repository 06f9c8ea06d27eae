"""A tiny synthetic dataset and matrix files for the run tests."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from bench.cli import main


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Descriptor of a 4-patient, 16-slice synthetic set at 64×64, written by `bench data synth`."""
    folder = tmp_path_factory.mktemp("tiny-synthetic")
    result = CliRunner().invoke(
        main,
        [
            "data",
            "synth",
            "--out",
            str(folder),
            "--patients",
            "4",
            "--slices-per-patient",
            "4",
            "--size",
            "64",
        ],
    )
    assert result.exit_code == 0, result.output
    return folder / "dataset.yaml"


@pytest.fixture(scope="session")
def no_difficulty_dataset(tiny_dataset: Path) -> Path:
    """The tiny set without difficulty columns: a curriculum task on it must fail."""
    folder = tiny_dataset.parent
    manifest = pd.read_csv(folder / "manifest.csv")
    manifest.drop(columns=["difficulty", "difficulty_source"]).to_csv(
        folder / "manifest_no_difficulty.csv", index=False
    )
    descriptor = yaml.safe_load(tiny_dataset.read_text())
    descriptor.update(name="synthetic-no-difficulty", manifest="manifest_no_difficulty.csv")
    path = folder / "no_difficulty.yaml"
    path.write_text(yaml.safe_dump(descriptor))
    return path


@pytest.fixture
def make_matrix(tmp_path: Path, tiny_dataset: Path):
    """Return a function that writes a matrix YAML and returns its path.

    The defaults are unet small, standard + curriculum, seed 0 and 3 epochs (1 per
    curriculum stage) on the CPU with a checkpoint every epoch, on the tiny dataset.
    Keyword arguments replace keys.
    """

    def write(name: str = "tiny", **fields) -> Path:
        data = {
            "name": name,
            "dataset": str(tiny_dataset),
            "backbones": ["unet"],
            "strategies": ["standard", "curriculum"],
            "seeds": [0],
            "epochs": 3,
            "test_fraction": 0.25,
            "train": {"checkpoint_every": 1, "device": "cpu"},
        }
        data.update(fields)
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(data))
        return path

    return write

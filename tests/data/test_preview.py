"""Preview grids of slices with contours."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from PIL import Image

from bench.data.manifest import load_descriptor, read_manifest
from bench.data.preview import preview_command, select_cases, write_preview
from bench.data.synthetic import write_synthetic_dataset
from bench.errors import ConfigError


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory):
    folder = tmp_path_factory.mktemp("preview")
    return write_synthetic_dataset(folder, patients=4, seed=2, slices_per_patient=4, size=64)


def test_preview_writes_png(phantoms, tmp_path):
    path = write_preview(phantoms, tmp_path / "grid.png", count=8, columns=4)
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.width > image.height  # 4 columns, 2 rows


def test_select_cases_by_level(phantoms):
    frame = read_manifest(load_descriptor(phantoms))
    level = int(frame["difficulty"].mode()[0])
    chosen = select_cases(frame, difficulty=level, count=100)
    assert len(chosen) == int((frame["difficulty"] == level).sum())
    assert set(chosen["difficulty"]) == {level}


def test_missing_level_rejected(phantoms):
    frame = read_manifest(load_descriptor(phantoms))
    frame["difficulty"] = 0
    with pytest.raises(ConfigError, match="difficulty 2"):
        select_cases(frame, difficulty=2)


def test_cli_preview(phantoms, tmp_path):
    out = tmp_path / "cli.png"
    result = CliRunner().invoke(preview_command, [str(phantoms), "--out", str(out), "--count", "3"])
    assert result.exit_code == 0, result.output
    assert out.stat().st_size > 1000

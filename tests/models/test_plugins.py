"""Third-party backbones register through --plugin or the scarbench.backbones entry point."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PLUGIN_SOURCE = """
from monai.networks.nets import BasicUNet

from bench.models import BackboneSpec, register_backbone


def build(image_size, features):
    return BasicUNet(spatial_dims=2, in_channels=1, out_channels=1, features=features)


register_backbone(
    BackboneSpec(
        name="{name}",
        description="a third-party U-Net",
        presets={{"small": {{"features": (4, 4, 8, 8, 16, 4)}}, "base": {{"features": (8, 8, 16, 16, 32, 8)}}}},
        builder=build,
        reference="test plug-in",
    )
)
"""


def _bench(arguments: list[str], python_path: Path) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHONPATH": str(python_path), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "bench", *arguments],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
    )


def test_plugin_option_registers_backbone(tmp_path: Path):
    (tmp_path / "lab_backbones.py").write_text(PLUGIN_SOURCE.format(name="lab_unet"))

    result = _bench(
        ["--plugin", "lab_backbones", "list", "backbones", "--preset", "small"], tmp_path
    )

    assert result.returncode == 0, result.stderr
    assert "lab_unet" in result.stdout
    assert "attention_unet" in result.stdout


def test_entry_point_registers_backbone(tmp_path: Path):
    (tmp_path / "entry_backbones.py").write_text(PLUGIN_SOURCE.format(name="entry_unet"))
    dist_info = tmp_path / "entry_backbones-0.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: entry-backbones\nVersion: 0.1\n"
    )
    (dist_info / "entry_points.txt").write_text(
        "[scarbench.backbones]\nentry_unet = entry_backbones\n"
    )

    result = _bench(["list", "backbones", "--preset", "small"], tmp_path)

    assert result.returncode == 0, result.stderr
    assert "entry_unet" in result.stdout


def test_missing_plugin_is_one_line_error(tmp_path: Path):
    result = _bench(["--plugin", "no_such_lab_module", "list", "backbones"], tmp_path)

    assert result.returncode == 2
    assert "cannot import plug-in module 'no_such_lab_module'" in result.stderr
    assert "Traceback" not in result.stderr

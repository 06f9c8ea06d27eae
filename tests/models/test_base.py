"""build_backbone's input checks, describe_backbone and `bench list backbones`."""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner

from bench.cli import main
from bench.errors import ConfigError, RegistryError
from bench.models import build_backbone, describe_backbone


def test_unknown_backbone_suggests_name():
    with pytest.raises(RegistryError, match="did you mean 'attention_unet'"):
        build_backbone("attention_unte")


def test_unknown_preset_lists_presets():
    with pytest.raises(ConfigError, match="unknown preset 'large'.*Supported presets: small, base"):
        build_backbone("unet", "large")


@pytest.mark.parametrize("image_size", [60, 0, 72])
def test_size_not_multiple_of_16(image_size: int):
    with pytest.raises(ConfigError, match=f"invalid image_size {image_size}.*multiple of 16"):
        build_backbone("attention_unet", image_size=image_size)


def test_more_than_one_channel_rejected():
    with pytest.raises(ConfigError, match="invalid in_channels 3.*must be 1"):
        build_backbone("transunet", in_channels=3)


def test_unknown_option_lists_supported():
    with pytest.raises(
        ConfigError, match="unknown option.*encoder_weights.*Supported options: none"
    ):
        build_backbone("unet", encoder_weights="sam.pth")

    with pytest.raises(
        ConfigError, match="unknown option.*dropout.*Supported options: encoder_weights"
    ):
        build_backbone("scarnet", dropout=0.1)


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        ((1, 3, 64, 64), r"invalid input shape \(1, 3, 64, 64\)"),
        ((1, 1, 64, 60), "invalid input size 64x60"),
    ],
)
def test_forward_rejects_bad_input(shape: tuple[int, ...], message: str):
    model = build_backbone("unet")

    with pytest.raises(ConfigError, match=message):
        model(torch.zeros(shape))


def test_describe_backbone_counts():
    description = describe_backbone("attention_unet", "small", image_size=64)
    larger = describe_backbone("attention_unet", "small", image_size=128)

    assert description["backbone"] == "attention_unet"
    assert description["preset"] == "small"
    assert description["parameters"] == 498_101
    assert description["image_size"] == 64
    assert 50 < description["mflops_per_image"] < 200
    # Convolution FLOPs grow with the pixel count: four times the pixels, four times the FLOPs.
    assert larger["mflops_per_image"] == pytest.approx(
        4 * description["mflops_per_image"], rel=0.01
    )


def test_list_backbones_command():
    result = CliRunner().invoke(main, ["list", "backbones", "--preset", "small"])

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["backbone", "preset", "parameters", "input", "MFLOPs/image"]
    assert [line.split()[0] for line in lines[1:]] == [
        "unet",
        "attention_unet",
        "transunet",
        "scarnet",
    ]
    assert "498,101" in result.output
    assert all("1x64x64" in line for line in lines[1:])


def test_list_backbones_bad_size_is_one_line():
    result = CliRunner().invoke(main, ["list", "backbones", "--image-size", "60"])

    assert result.exit_code == 2
    assert "invalid image_size 60" in result.output
    assert "Traceback" not in result.output

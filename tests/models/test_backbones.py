"""Shape, gradient, determinism, state-dict and parameter-count checks for every backbone."""

from __future__ import annotations

import io

import pytest
import torch

from bench.models import build_backbone, count_parameters
from bench.registry import BACKBONES

BACKBONE_NAMES = ("unet", "attention_unet", "transunet", "scarnet")

# Trainable parameters at image_size=64. transunet base is R50-ViT-B/16 (about
# 105 M, as in the TransUNet paper). scarnet base contains SAM's ViT-B encoder:
# 86,476,032 of its parameters, which is SAM's 89,670,912 less the position
# embedding and global relative-position tables of the 1024-pixel input grid.
PARAMETER_COUNTS = {
    ("unet", "small"): 488_241,
    ("unet", "base"): 7_782_849,
    ("attention_unet", "small"): 498_101,
    ("attention_unet", "base"): 1_987_417,
    ("transunet", "small"): 457_081,
    ("transunet", "base"): 105_131_409,
    ("scarnet", "small"): 851_963,
    ("scarnet", "base"): 95_199_753,
}


def test_registry_lists_builtins_in_order():
    assert BACKBONES.names()[:4] == list(BACKBONE_NAMES)


@pytest.mark.parametrize("name", BACKBONE_NAMES)
def test_presets_small_and_base(name: str):
    assert set(BACKBONES.get(name).presets) == {"small", "base"}


@pytest.mark.parametrize(("name", "preset"), sorted(PARAMETER_COUNTS))
def test_parameter_count_pinned(name: str, preset: str):
    model = build_backbone(name, preset, image_size=64)

    assert count_parameters(model) == PARAMETER_COUNTS[(name, preset)]


@pytest.mark.parametrize("name", BACKBONE_NAMES)
@pytest.mark.parametrize("image_size", [64, 128])
def test_output_shape(name: str, image_size: int):
    model = build_backbone(name, "small", image_size=image_size).eval()

    with torch.no_grad():
        logits = model(torch.randn(2, 1, image_size, image_size))

    assert logits.shape == (2, 1, image_size, image_size)
    assert logits.dtype == torch.float32
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("name", ["transunet", "scarnet"])
def test_position_embedding_follows_input_size(name: str):
    model = build_backbone(name, "small", image_size=64).eval()

    with torch.no_grad():
        logits = model(torch.randn(1, 1, 96, 128))

    assert logits.shape == (1, 1, 96, 128)


@pytest.mark.parametrize("name", BACKBONE_NAMES)
def test_gradients_reach_every_parameter(name: str):
    torch.manual_seed(0)
    model = build_backbone(name, "small", image_size=64)

    model(torch.randn(2, 1, 64, 64)).square().mean().backward()

    without_gradient = [
        parameter_name
        for parameter_name, parameter in model.named_parameters()
        if parameter.grad is None or not torch.any(parameter.grad != 0)
    ]
    assert without_gradient == []


@pytest.mark.parametrize("name", BACKBONE_NAMES)
def test_same_seed_same_output(name: str):
    image = torch.randn(1, 1, 64, 64, generator=torch.Generator().manual_seed(1))
    outputs = []
    for _ in range(2):
        torch.manual_seed(7)
        model = build_backbone(name, "small", image_size=64).eval()
        with torch.no_grad():
            outputs.append(model(image))

    torch.manual_seed(8)
    other = build_backbone(name, "small", image_size=64).eval()
    with torch.no_grad():
        other_output = other(image)

    assert torch.equal(outputs[0], outputs[1])
    assert not torch.equal(outputs[0], other_output)


@pytest.mark.parametrize("name", BACKBONE_NAMES)
def test_state_dict_round_trip(name: str):
    torch.manual_seed(0)
    trained = build_backbone(name, "small", image_size=64)
    trained(torch.randn(2, 1, 64, 64))  # one train-mode pass updates batch-norm statistics
    trained.eval()
    buffer = io.BytesIO()
    torch.save(trained.state_dict(), buffer)
    buffer.seek(0)

    torch.manual_seed(1)
    restored = build_backbone(name, "small", image_size=64)
    restored.load_state_dict(torch.load(buffer, weights_only=True), strict=True)
    restored.eval()

    image = torch.randn(1, 1, 64, 64)
    with torch.no_grad():
        assert torch.equal(trained(image), restored(image))

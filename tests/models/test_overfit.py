"""Each small preset overfits one synthetic LGE-like slice in a few dozen Adam steps."""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional

from bench.models import build_backbone

BACKBONE_NAMES = ("unet", "attention_unet", "transunet", "scarnet")
STEPS = 60


def synthetic_slice(size: int = 64, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Return a ``(1, 1, size, size)`` image of a myocardial ring with a bright scar arc, and its scar mask."""
    generator = torch.Generator().manual_seed(seed)
    coordinates = torch.arange(size, dtype=torch.float32) - size / 2 + 0.5
    rows, cols = torch.meshgrid(coordinates, coordinates, indexing="ij")
    radius = torch.sqrt(rows**2 + cols**2)
    angle = torch.atan2(rows, cols)

    myocardium = (radius > size * 0.22) & (radius < size * 0.36)
    scar = myocardium & (angle > -math.pi / 3) & (angle < math.pi / 4)

    image = 0.2 + 0.3 * myocardium.float() + 0.5 * scar.float()
    image = image + 0.05 * torch.randn(size, size, generator=generator)
    return image[None, None], scar[None, None].float()


def dice(logits: torch.Tensor, target: torch.Tensor) -> float:
    prediction = (logits > 0).float()
    overlap = (prediction * target).sum()
    return float(2 * overlap / (prediction.sum() + target.sum()))


@pytest.mark.parametrize("name", BACKBONE_NAMES)
def test_small_preset_overfits_one_slice(name: str):
    torch.manual_seed(0)
    image, scar = synthetic_slice()
    model = build_backbone(name, "small", image_size=64)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)

    model.train()
    for _ in range(STEPS):
        optimizer.zero_grad()
        logits = model(image)
        probabilities = torch.sigmoid(logits)
        soft_dice = 2 * (probabilities * scar).sum() / (probabilities.sum() + scar.sum())
        loss = functional.binary_cross_entropy_with_logits(logits, scar) + 1 - soft_dice
        loss.backward()
        optimizer.step()

    model.eval()
    with torch.no_grad():
        score = dice(model(image), scar)
    assert score > 0.9, f"{name} small reached Dice {score:.3f} after {STEPS} steps"

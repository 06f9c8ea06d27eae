"""Training test helpers: drawn ring phantoms and a tiny backbone.

Kept out of ``conftest.py`` so that the subprocess of the resume test can import them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import nn

from bench.data.prepared import CASE_COLUMNS, PreparedDataset
from bench.registry import BACKBONES

__all__ = ["TINY_BACKBONE", "ring_phantoms", "register_tiny_backbone"]

TINY_BACKBONE = "tiny_training_test_net"


class TinyNet(nn.Module):
    """Two 3x3 convolutions: enough to learn "bright pixels are scar"."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(1, channels, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(channels, 1, 3, padding=1),
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.layers(images)


def build_tiny(*, image_size: int, channels: int) -> nn.Module:
    return TinyNet(channels)


def register_tiny_backbone() -> str:
    """Register the tiny backbone once per process and return its name."""
    from bench.models import BackboneSpec

    if TINY_BACKBONE not in BACKBONES:
        BACKBONES.register(
            TINY_BACKBONE,
            BackboneSpec(
                name=TINY_BACKBONE,
                description="two convolutions, for training tests",
                presets={"small": {"channels": 4}},
                builder=build_tiny,
            ),
        )
    return TINY_BACKBONE


def ring_phantoms(
    count: int, size: int = 16, seed: int = 0, with_difficulty: bool = True
) -> PreparedDataset:
    """Draw ``count`` ring-shaped myocardia with a bright scar arc on some of them.

    Difficulty cycles 0, 1, 2; harder slices get a dimmer scar and more noise.
    """
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:size, :size] - (size - 1) / 2
    radius = np.hypot(x, y)
    angle = np.degrees(np.arctan2(y, x))

    images, myocardium, scar, rows = [], [], [], []
    for index in range(count):
        difficulty = index % 3
        inner = size * rng.uniform(0.18, 0.24)
        ring = (radius >= inner) & (radius <= inner + size * 0.14)
        centre = rng.uniform(-180, 180)
        width = rng.uniform(40, 110) if index % 4 else 0.0
        scar_mask = ring & (np.abs((angle - centre + 180) % 360 - 180) < width / 2)
        contrast = 1.0 - 0.3 * difficulty
        image = (
            0.3 * ring + contrast * scar_mask + rng.normal(0, 0.05 + 0.05 * difficulty, ring.shape)
        )
        images.append(image * ring)
        myocardium.append(ring)
        scar.append(scar_mask)
        rows.append(_case_row(index, difficulty, scar_mask, ring, with_difficulty))

    def stack(arrays, dtype):
        return torch.as_tensor(np.stack(arrays)[:, None], dtype=dtype)

    cases = pd.DataFrame(rows, columns=list(CASE_COLUMNS))
    cases["difficulty"] = cases["difficulty"].astype("Int64")
    return PreparedDataset(
        name="rings",
        images=stack(images, torch.float32),
        myocardium=stack(myocardium, torch.bool),
        scar=stack(scar, torch.bool),
        cases=cases,
    )


def _case_row(index, difficulty, scar_mask, ring, with_difficulty) -> dict:
    burden_percent = 100.0 * scar_mask.sum() / ring.sum()
    return {
        "case_id": f"ring{index:03d}",
        "patient_id": f"patient{index // 2:03d}",
        "difficulty": difficulty if with_difficulty else pd.NA,
        "difficulty_source": "expert" if with_difficulty else "",
        "site": "",
        "scanner": "",
        "burden_native_percent": burden_percent,
        "burden_resized_percent": burden_percent,
        "spacing_mm": float("nan"),
    }

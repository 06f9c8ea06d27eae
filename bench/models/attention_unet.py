"""``attention_unet``: Attention U-Net (Oktay et al. 2018) from MONAI.

Example:
    >>> from bench.models import build_backbone
    >>> model = build_backbone("attention_unet", "base", image_size=64)

Attention gates weight each skip connection by a gating signal from the
coarser decoder level before concatenation.
"""

from __future__ import annotations

from collections.abc import Sequence

from monai.networks.nets import AttentionUnet
from torch import nn

from bench.models.base import BackboneSpec, register_backbone

__all__ = ["build_attention_unet", "SPEC"]


def build_attention_unet(*, image_size: int, channels: Sequence[int]) -> nn.Module:
    """Build a 2D Attention U-Net with one input and one output channel.

    Args:
        image_size: input size in pixels. Any multiple of 16 works.
        channels: channels per level. Each level after the first halves the resolution.
    """
    del image_size
    return AttentionUnet(
        spatial_dims=2,
        in_channels=1,
        out_channels=1,
        channels=tuple(channels),
        strides=(2,) * (len(channels) - 1),
    )


SPEC = register_backbone(
    BackboneSpec(
        name="attention_unet",
        description="Attention U-Net (MONAI AttentionUnet)",
        presets={
            "small": {"channels": (8, 16, 32, 64, 128)},
            "base": {"channels": (16, 32, 64, 128, 256)},
        },
        builder=build_attention_unet,
        reference="Oktay et al. 2018, Attention U-Net, MIDL",
    )
)

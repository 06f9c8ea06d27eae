"""``unet``: a plain U-Net (Ronneberger et al. 2015), the floor of the comparison.

Example:
    >>> from bench.models import build_backbone
    >>> model = build_backbone("unet", "small", image_size=64)

Built from MONAI's ``BasicUNet``: two 3×3 convolutions per level, max-pool
down, transposed-convolution up and concatenated skip connections, four
halvings of resolution.
"""

from __future__ import annotations

from collections.abc import Sequence

from monai.networks.nets import BasicUNet
from torch import nn

from bench.models.base import BackboneSpec, register_backbone

__all__ = ["build_unet", "SPEC"]


def build_unet(*, image_size: int, features: Sequence[int]) -> nn.Module:
    """Build a 2D U-Net with one input and one output channel.

    Args:
        image_size: input size in pixels. A plain U-Net works at any multiple of 16.
        features: channels of the five encoder levels and of the last decoder
            level, as MONAI's ``BasicUNet`` expects.
    """
    del image_size
    return BasicUNet(
        spatial_dims=2,
        in_channels=1,
        out_channels=1,
        features=tuple(features),
        act=("relu", {"inplace": True}),
        norm="batch",
    )


SPEC = register_backbone(
    BackboneSpec(
        name="unet",
        description="plain U-Net (MONAI BasicUNet), the floor",
        presets={
            "small": {"features": (8, 16, 32, 64, 128, 8)},
            "base": {"features": (32, 64, 128, 256, 512, 32)},
        },
        builder=build_unet,
        reference="Ronneberger et al. 2015, U-Net, MICCAI",
    )
)

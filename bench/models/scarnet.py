"""``scarnet``: ScarNet (Tavakoli et al. 2025), a SAM encoder branch beside an attention U-Net.

Example:
    >>> from bench.models import build_backbone
    >>> model = build_backbone("scarnet", "base", encoder_weights="medsam_vit_b.pth")  # doctest: +SKIP

Two branches see the same slice. The encoder branch is SAM's ViT image
encoder (ViT-B in ``base``, loadable from a SAM or MedSAM checkpoint) on
16-pixel patches. Its neck output is upsampled four times through
convolution blocks with squeeze-excitation and scar attention, and the four
scales are fused at full resolution. The U-Net branch has SE convolution
blocks and gates each skip connection with scar attention. Convolutions over
both branches' concatenated outputs produce the scar logits.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import torch
from monai.networks.blocks import Convolution
from torch import nn

from bench.models.base import BackboneSpec, register_backbone
from bench.models.blocks import ScarAttention, SEConvBlock, conv_norm_act
from bench.models.sam_encoder import SamImageEncoder, load_encoder_weights

__all__ = ["ScarNet", "build_scarnet", "SPEC"]

logger = logging.getLogger(__name__)

# SAM's patch embedding takes RGB, so a grayscale slice is repeated on the
# three channels, as MedSAM does with grayscale images.
SAM_IMAGE_CHANNELS = 3


class ScarNet(nn.Module):
    """ScarNet for one input and one output channel.

    Args:
        image_size: input size in pixels, which sizes the encoder's position embedding.
        embed_dim: SAM encoder token width (768 for ViT-B).
        depth: SAM encoder blocks (12 for ViT-B).
        num_heads: SAM encoder attention heads (12 for ViT-B).
        global_attn_indexes: SAM encoder blocks with global attention.
        neck_channels: SAM neck output channels (256 in SAM).
        upsampling_channels: output channels of the four upsampling blocks of
            the encoder branch (1/8, 1/4, 1/2 and full resolution).
        unet_channels: channels of the five U-Net branch levels.
        fusion_channels: channels of the convolutions that fuse both branches.
        encoder_weights: optional path of a SAM or MedSAM checkpoint for the
            encoder. Without it the encoder starts from random weights.
    """

    def __init__(
        self,
        *,
        image_size: int,
        embed_dim: int,
        depth: int,
        num_heads: int,
        global_attn_indexes: Sequence[int],
        neck_channels: int,
        upsampling_channels: Sequence[int],
        unet_channels: Sequence[int],
        fusion_channels: int,
        encoder_weights: str | os.PathLike | None = None,
    ) -> None:
        super().__init__()
        self.image_encoder = SamImageEncoder(
            image_size=image_size,
            embed_dim=embed_dim,
            depth=depth,
            num_heads=num_heads,
            global_attn_indexes=global_attn_indexes,
            out_channels=neck_channels,
        )
        self.encoder_decoder = MultiScaleDecoder(
            neck_channels, upsampling_channels, fusion_channels
        )
        self.unet_branch = ScarAttentionUNet(unet_channels)
        self.fusion = nn.Sequential(
            conv_norm_act(fusion_channels + unet_channels[0], fusion_channels),
            conv_norm_act(fusion_channels, fusion_channels),
            nn.Conv2d(fusion_channels, 1, kernel_size=1),
        )
        if encoder_weights is not None:
            load_encoder_weights(self.image_encoder, encoder_weights)
        else:
            logger.debug("ScarNet encoder starts from random weights")

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        encoder_features = self.image_encoder(image.expand(-1, SAM_IMAGE_CHANNELS, -1, -1))
        encoder_map = self.encoder_decoder(encoder_features)

        unet_map = self.unet_branch(image)

        return self.fusion(torch.cat([encoder_map, unet_map], dim=1))


def build_scarnet(*, image_size: int, **config) -> nn.Module:
    """Build a ``ScarNet``; ``config`` contains its keyword arguments, including ``encoder_weights``."""
    return ScarNet(image_size=image_size, **config)


class AttentiveUpBlock(nn.Module):
    """Double the resolution, then an SE convolution block and scar attention."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.upsample = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
        self.convs = SEConvBlock(in_channels, out_channels)
        self.attention = ScarAttention(out_channels)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.attention(self.convs(self.upsample(features)))


class MultiScaleDecoder(nn.Module):
    """The encoder branch's decoder: four ``AttentiveUpBlock``s and a fusion of their scales.

    Each scale is projected to ``out_channels`` by a 1×1 convolution and
    upsampled to full resolution. A 3×3 convolution fuses the concatenation.
    """

    def __init__(self, in_channels: int, up_channels: Sequence[int], out_channels: int) -> None:
        super().__init__()
        block_inputs = (in_channels, *up_channels[:-1])
        self.up_blocks = nn.ModuleList(
            AttentiveUpBlock(block_in, block_out)
            for block_in, block_out in zip(block_inputs, up_channels, strict=True)
        )
        scale_factors = [2 ** (len(up_channels) - 1 - level) for level in range(len(up_channels))]
        self.projections = nn.ModuleList(
            nn.Sequential(
                conv_norm_act(channels, out_channels, kernel_size=1),
                nn.Upsample(scale_factor=factor, mode="bilinear", align_corners=False)
                if factor > 1
                else nn.Identity(),
            )
            for channels, factor in zip(up_channels, scale_factors, strict=True)
        )
        self.fuse = conv_norm_act(out_channels * len(up_channels), out_channels)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        scales = []
        for block in self.up_blocks:
            features = block(features)
            scales.append(features)

        projected = [
            project(scale) for project, scale in zip(self.projections, scales, strict=True)
        ]
        return self.fuse(torch.cat(projected, dim=1))


class ScarAttentionUNet(nn.Module):
    """The U-Net branch: SE convolution blocks, skips gated by scar attention.

    Returns the full-resolution feature map with ``channels[0]`` channels.
    """

    def __init__(self, channels: Sequence[int]) -> None:
        super().__init__()
        encoder_inputs = (1, *channels[:-1])
        self.down_blocks = nn.ModuleList(
            SEConvBlock(block_in, block_out)
            for block_in, block_out in zip(encoder_inputs, channels, strict=True)
        )
        self.pool = nn.MaxPool2d(kernel_size=2)
        skip_channels = list(reversed(channels[:-1]))
        coarse_channels = list(reversed(channels[1:]))
        self.up_convs = nn.ModuleList(
            Convolution(
                2,
                coarse,
                skip,
                strides=2,
                kernel_size=2,
                padding=0,
                output_padding=0,
                is_transposed=True,
                conv_only=True,
            )
            for coarse, skip in zip(coarse_channels, skip_channels, strict=True)
        )
        self.skip_attention = nn.ModuleList(ScarAttention(skip) for skip in skip_channels)
        self.up_blocks = nn.ModuleList(SEConvBlock(2 * skip, skip) for skip in skip_channels)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        skips = []
        features = image
        for index, block in enumerate(self.down_blocks):
            if index:
                features = self.pool(features)
            features = block(features)
            skips.append(features)

        skips = skips[-2::-1]
        for up_conv, attention, block, skip in zip(
            self.up_convs, self.skip_attention, self.up_blocks, skips, strict=True
        ):
            features = block(torch.cat([attention(skip), up_conv(features)], dim=1))

        return features


SPEC = register_backbone(
    BackboneSpec(
        name="scarnet",
        description="ScarNet: SAM ViT encoder branch + SE/scar-attention U-Net, fused",
        presets={
            "small": {
                "embed_dim": 96,
                "depth": 2,
                "num_heads": 4,
                "global_attn_indexes": (1,),
                "neck_channels": 32,
                "upsampling_channels": (32, 16, 8, 8),
                "unet_channels": (8, 16, 32, 64, 128),
                "fusion_channels": 8,
            },
            "base": {
                "embed_dim": 768,
                "depth": 12,
                "num_heads": 12,
                "global_attn_indexes": (2, 5, 8, 11),
                "neck_channels": 256,
                "upsampling_channels": (128, 64, 32, 32),
                "unet_channels": (32, 64, 128, 256, 512),
                "fusion_channels": 32,
            },
        },
        builder=build_scarnet,
        reference="Tavakoli et al. 2025, ScarNet, J Cardiovasc Magn Reson, doi:10.1016/j.jocmr.2025.101945",
        options=("encoder_weights",),
    )
)

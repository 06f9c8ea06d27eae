"""``transunet``: TransUNet (Chen et al. 2021), a ResNet-50 + ViT hybrid encoder.

Example:
    >>> from bench.models import build_backbone
    >>> model = build_backbone("transunet", "base", image_size=64)  # R50-ViT-B/16

A ResNet-50-style CNN (root, then stages of 3, 4 and 9 bottleneck units)
brings the image to 1/16 resolution. A ViT runs on that grid with patch size
1 and a learned position embedding. The cascaded upsampler then doubles the
resolution four times, concatenating the CNN features at 1/8, 1/4 and 1/2.
The ViT uses MONAI's ``TransformerBlock``, and convolutions use MONAI's ``Convolution``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.networks.blocks import TransformerBlock
from torch import nn

from bench.models.base import BackboneSpec, register_backbone
from bench.models.blocks import conv_norm_act, resize_grid_embedding

__all__ = ["TransUNet", "build_transunet", "SPEC"]

# The backbone reaches 1/16 resolution: the root halves it, max-pooling halves
# it again, and stages 2 and 3 each halve it once more.
GRID_STRIDE = 16


class TransUNet(nn.Module):
    """TransUNet for one input and one output channel.

    Args:
        image_size: input size in pixels, which sizes the position embedding to
            the ``image_size / 16`` token grid. Other sizes are interpolated at run time.
        root_channels: channels of the 7×7 root convolution (64 in ResNet-50).
        stage_units: bottleneck units per stage ((3, 4, 9) in TransUNet's R50).
        stage_channels: output channels per stage ((256, 512, 1024) in R50). The
            bottleneck width is a quarter of these.
        norm_groups: groups of the group normalisation in the CNN (32 in R50).
        hidden_size: ViT token width.
        num_layers: ViT layers.
        num_heads: attention heads per ViT layer.
        mlp_dim: ViT MLP width.
        dropout_rate: dropout in the ViT.
        head_channels: channels of the convolution that maps ViT tokens back to an image.
        decoder_channels: output channels of the four upsampling stages.
    """

    def __init__(
        self,
        *,
        image_size: int,
        root_channels: int,
        stage_units: Sequence[int],
        stage_channels: Sequence[int],
        norm_groups: int,
        hidden_size: int,
        num_layers: int,
        num_heads: int,
        mlp_dim: int,
        dropout_rate: float,
        head_channels: int,
        decoder_channels: Sequence[int],
    ) -> None:
        super().__init__()
        self.encoder = ResNetEncoder(root_channels, stage_units, stage_channels, norm_groups)
        self.vit = GridViT(
            stage_channels[-1],
            image_size,
            hidden_size,
            num_layers,
            num_heads,
            mlp_dim,
            dropout_rate,
        )
        skip_channels = (stage_channels[1], stage_channels[0], root_channels, 0)
        self.decoder = CascadedUpsampler(
            hidden_size, head_channels, decoder_channels, skip_channels
        )
        self.segmentation_head = nn.Conv2d(decoder_channels[-1], 1, kernel_size=3, padding=1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        grid_features, skips = self.encoder(image)

        tokens = self.vit(grid_features)

        return self.segmentation_head(self.decoder(tokens, skips))


def build_transunet(*, image_size: int, **config) -> nn.Module:
    """Build a ``TransUNet``; ``config`` contains its keyword arguments."""
    return TransUNet(image_size=image_size, **config)


class Bottleneck(nn.Module):
    """ResNet bottleneck unit: 1×1, 3×3 (strided), 1×1 convolutions plus a projected shortcut."""

    def __init__(self, in_channels: int, out_channels: int, strides: int, norm_groups: int) -> None:
        super().__init__()
        width = out_channels // 4
        norm = ("group", {"num_groups": norm_groups})
        self.conv1 = conv_norm_act(in_channels, width, kernel_size=1, norm=norm)
        self.conv2 = conv_norm_act(width, width, kernel_size=3, strides=strides, norm=norm)
        self.conv3 = conv_norm_act(width, out_channels, kernel_size=1, norm=norm, act=None)
        self.shortcut: nn.Module = nn.Identity()
        if strides != 1 or in_channels != out_channels:
            self.shortcut = conv_norm_act(
                in_channels, out_channels, kernel_size=1, strides=strides, norm=norm, act=None
            )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        residual = self.conv3(self.conv2(self.conv1(features)))

        return self.relu(residual + self.shortcut(features))


class ResNetEncoder(nn.Module):
    """The CNN part: root convolution, max-pooling and three bottleneck stages.

    Returns the 1/16 feature map and the skip features at 1/8, 1/4 and 1/2
    resolution, coarsest first.
    """

    def __init__(
        self,
        root_channels: int,
        stage_units: Sequence[int],
        stage_channels: Sequence[int],
        norm_groups: int,
    ) -> None:
        super().__init__()
        # NOTE: TransUNet's R50 uses weight-standardised convolutions (from BiT),
        # but these are plain convolutions. That matters for loading BiT weights.
        norm = ("group", {"num_groups": norm_groups})
        self.root = conv_norm_act(1, root_channels, kernel_size=7, strides=2, norm=norm)
        self.pool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        stage_strides = (1, 2, 2)
        in_channels = root_channels
        stages = []
        for units, out_channels, strides in zip(
            stage_units, stage_channels, stage_strides, strict=True
        ):
            stages.append(_bottleneck_stage(in_channels, out_channels, units, strides, norm_groups))
            in_channels = out_channels
        self.stages = nn.ModuleList(stages)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        root = self.root(image)

        quarter = self.stages[0](self.pool(root))
        eighth = self.stages[1](quarter)
        sixteenth = self.stages[2](eighth)

        return sixteenth, [eighth, quarter, root]


def _bottleneck_stage(
    in_channels: int, out_channels: int, units: int, strides: int, norm_groups: int
) -> nn.Sequential:
    layers = [Bottleneck(in_channels, out_channels, strides, norm_groups)]
    layers += [Bottleneck(out_channels, out_channels, 1, norm_groups) for _ in range(units - 1)]
    return nn.Sequential(*layers)


class GridViT(nn.Module):
    """ViT on a CNN feature grid: 1×1 patch embedding, learned position embedding, pre-norm layers."""

    def __init__(
        self,
        in_channels: int,
        image_size: int,
        hidden_size: int,
        num_layers: int,
        num_heads: int,
        mlp_dim: int,
        dropout_rate: float,
    ) -> None:
        super().__init__()
        grid = image_size // GRID_STRIDE
        self.patch_embedding = nn.Conv2d(in_channels, hidden_size, kernel_size=1)
        self.position_embedding = nn.Parameter(torch.zeros(1, grid, grid, hidden_size))
        nn.init.trunc_normal_(self.position_embedding, std=0.02)
        self.dropout = nn.Dropout(dropout_rate)
        self.layers = nn.ModuleList(
            _transformer_layer(hidden_size, mlp_dim, num_heads, dropout_rate)
            for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(hidden_size, eps=1e-6)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Map ``(N, C, h, w)`` features to ``(N, hidden, h, w)`` encoded tokens."""
        tokens = self.patch_embedding(features).permute(0, 2, 3, 1)
        batch, rows, cols, hidden = tokens.shape
        tokens = tokens + resize_grid_embedding(self.position_embedding, (rows, cols))
        tokens = self.dropout(tokens.reshape(batch, rows * cols, hidden))

        for layer in self.layers:
            tokens = layer(tokens)

        tokens = self.norm(tokens)
        return tokens.transpose(1, 2).reshape(batch, hidden, rows, cols)


def _transformer_layer(
    hidden_size: int, mlp_dim: int, num_heads: int, dropout_rate: float
) -> TransformerBlock:
    layer = TransformerBlock(hidden_size, mlp_dim, num_heads, dropout_rate, qkv_bias=True)
    # MONAI 1.6.1 creates this norm even without cross-attention, where it
    # would be an unused parameter that never receives a gradient.
    layer.norm_cross_attn = nn.Identity()
    return layer


class UpsampleBlock(nn.Module):
    """Double the resolution, concatenate a skip feature map, then two 3×3 convolutions."""

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int) -> None:
        super().__init__()
        self.upsample = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)
        self.conv1 = conv_norm_act(in_channels + skip_channels, out_channels)
        self.conv2 = conv_norm_act(out_channels, out_channels)

    def forward(self, features: torch.Tensor, skip: torch.Tensor | None) -> torch.Tensor:
        features = self.upsample(features)
        if skip is not None:
            features = torch.cat([features, skip], dim=1)

        return self.conv2(self.conv1(features))


class CascadedUpsampler(nn.Module):
    """TransUNet's decoder: a 3×3 convolution on the tokens, then four ``UpsampleBlock``s."""

    def __init__(
        self,
        hidden_size: int,
        head_channels: int,
        decoder_channels: Sequence[int],
        skip_channels: Sequence[int],
    ) -> None:
        super().__init__()
        self.conv_more = conv_norm_act(hidden_size, head_channels)
        in_channels = (head_channels, *decoder_channels[:-1])
        self.blocks = nn.ModuleList(
            UpsampleBlock(in_ch, skip_ch, out_ch)
            for in_ch, skip_ch, out_ch in zip(
                in_channels, skip_channels, decoder_channels, strict=True
            )
        )
        self.skip_channels = tuple(skip_channels)

    def forward(self, tokens: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        features = self.conv_more(tokens)

        for index, block in enumerate(self.blocks):
            skip = skips[index] if self.skip_channels[index] else None
            features = block(features, skip)

        return features


SPEC = register_backbone(
    BackboneSpec(
        name="transunet",
        description="TransUNet: R50-style CNN + ViT on the 1/16 grid + cascaded upsampler",
        presets={
            "small": {
                "root_channels": 16,
                "stage_units": (1, 1, 1),
                "stage_channels": (32, 64, 128),
                "norm_groups": 8,
                "hidden_size": 128,
                "num_layers": 2,
                "num_heads": 4,
                "mlp_dim": 256,
                "dropout_rate": 0.0,
                "head_channels": 64,
                "decoder_channels": (32, 16, 16, 8),
            },
            "base": {
                "root_channels": 64,
                "stage_units": (3, 4, 9),
                "stage_channels": (256, 512, 1024),
                "norm_groups": 32,
                "hidden_size": 768,
                "num_layers": 12,
                "num_heads": 12,
                "mlp_dim": 3072,
                "dropout_rate": 0.1,
                "head_channels": 512,
                "decoder_channels": (256, 128, 64, 16),
            },
        },
        builder=build_transunet,
        reference="Chen et al. 2021, TransUNet, arXiv:2102.04306",
    )
)

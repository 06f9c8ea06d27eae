"""Building blocks shared by the backbones: convolution stages, SE and scar attention.

Example:
    >>> import torch
    >>> from bench.models.blocks import ScarAttention, SEConvBlock
    >>> block = SEConvBlock(in_channels=8, out_channels=16)
    >>> ScarAttention(16)(block(torch.zeros(2, 8, 32, 32))).shape
    torch.Size([2, 16, 32, 32])
"""

from __future__ import annotations

import torch
from monai.networks.blocks import ChannelSELayer, Convolution
from torch import nn

__all__ = [
    "conv_norm_act",
    "DoubleConv",
    "SEConvBlock",
    "ChannelGate",
    "SpatialGate",
    "ScarAttention",
    "resize_grid_embedding",
]

SPATIAL_DIMS = 2

# Activation inside the squeeze-excitation and channel-gate bottlenecks. The
# small presets have bottlenecks of two to four units, and a ReLU unit whose
# input starts negative for every image never receives a gradient, so a leaky
# ReLU keeps every unit trainable.
GATE_ACTIVATION = ("leakyrelu", {"negative_slope": 0.01})


def conv_norm_act(
    in_channels: int,
    out_channels: int,
    kernel_size: int = 3,
    strides: int = 1,
    norm: str | tuple = "batch",
    act: str | tuple | None = "relu",
) -> Convolution:
    """Build a 2D convolution followed by normalisation and activation (MONAI ``Convolution``)."""
    return Convolution(
        spatial_dims=SPATIAL_DIMS,
        in_channels=in_channels,
        out_channels=out_channels,
        strides=strides,
        kernel_size=kernel_size,
        adn_ordering="NA",
        norm=norm,
        act=act,
        bias=False,
    )


class DoubleConv(nn.Sequential):
    """Two 3×3 convolution + batch norm + ReLU layers, the U-Net stage."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            conv_norm_act(in_channels, out_channels),
            conv_norm_act(out_channels, out_channels),
        )


class SEConvBlock(nn.Module):
    """A ``DoubleConv`` stage whose output channels are recalibrated by squeeze-excitation.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        se_reduction: channel reduction ratio of the squeeze-excitation bottleneck.
    """

    def __init__(self, in_channels: int, out_channels: int, se_reduction: int = 4) -> None:
        super().__init__()
        self.convs = DoubleConv(in_channels, out_channels)
        self.se = ChannelSELayer(
            SPATIAL_DIMS,
            out_channels,
            r=min(se_reduction, out_channels),
            acti_type_1=GATE_ACTIVATION,
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.se(self.convs(features))


class ChannelGate(nn.Module):
    """Channel attention from average- and max-pooled descriptors through a shared MLP."""

    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.mlp = nn.Sequential(
            nn.Conv2d(channels, hidden, kernel_size=1),
            nn.LeakyReLU(GATE_ACTIVATION[1]["negative_slope"]),
            nn.Conv2d(hidden, channels, kernel_size=1),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        average = self.mlp(features.mean(dim=(2, 3), keepdim=True))
        maximum = self.mlp(features.amax(dim=(2, 3), keepdim=True))
        return features * torch.sigmoid(average + maximum)


class SpatialGate(nn.Module):
    """Spatial attention: a 7×7 convolution over the channel mean and maximum maps."""

    def __init__(self, kernel_size: int = 7) -> None:
        super().__init__()
        self.conv = conv_norm_act(2, 1, kernel_size=kernel_size, act=None)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat(
            [features.mean(dim=1, keepdim=True), features.amax(dim=1, keepdim=True)], dim=1
        )
        return features * torch.sigmoid(self.conv(pooled))


class ScarAttention(nn.Module):
    """ScarNet's scar attention: a channel gate followed by a spatial gate.

    The channel gate weights feature maps that respond to enhanced tissue, and
    the spatial gate then weights the pixels where those maps are active.

    Args:
        channels: feature channels.
        reduction: channel reduction ratio of the channel gate's MLP.
    """

    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        self.channel_gate = ChannelGate(channels, reduction)
        self.spatial_gate = SpatialGate()

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.spatial_gate(self.channel_gate(features))


def resize_grid_embedding(embedding: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Resize a ``(1, rows, cols, dim)`` position embedding to ``grid`` by bicubic interpolation.

    Returns ``embedding`` itself when it already has that grid.
    """
    if tuple(embedding.shape[1:3]) == tuple(grid):
        return embedding
    channels_first = embedding.permute(0, 3, 1, 2)
    resized = nn.functional.interpolate(
        channels_first, size=grid, mode="bicubic", align_corners=False
    )
    return resized.permute(0, 2, 3, 1)

"""A SAM-style ViT image encoder whose parameter names match SAM's, and its weight loader.

Example:
    >>> import torch
    >>> from bench.models.sam_encoder import SamImageEncoder, load_encoder_weights
    >>> encoder = SamImageEncoder(image_size=64, embed_dim=96, depth=2, num_heads=4,
    ...                           global_attn_indexes=(1,), out_channels=32)
    >>> encoder(torch.zeros(1, 3, 64, 64)).shape
    torch.Size([1, 32, 4, 4])
    >>> load_encoder_weights(encoder, "medsam_vit_b.pth")  # doctest: +SKIP

The module tree follows the image encoder of Segment Anything (Kirillov et
al. 2023), so a SAM or MedSAM checkpoint loads with a strict key match:
``patch_embed.proj``, ``pos_embed``, ``blocks.<i>.{norm1, attn.qkv, attn.proj,
attn.rel_pos_h, attn.rel_pos_w, norm2, mlp.lin1, mlp.lin2}`` and
``neck.{0, 1, 2, 3}``. MONAI's ``SABlock`` and ``MLPBlock`` name their
parameters differently (``out_proj``, ``linear1``), so these layers are
written here.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional

from bench.errors import CheckpointError, ConfigError
from bench.models.blocks import resize_grid_embedding

__all__ = ["SamImageEncoder", "load_encoder_weights", "PATCH_SIZE"]

logger = logging.getLogger(__name__)

PATCH_SIZE = 16

# SAM checkpoints store the whole model, and the image encoder's keys carry this prefix.
ENCODER_PREFIX = "image_encoder."

# Keys whose shape depends on the token grid, so they are interpolated on load.
_GRID_DEPENDENT_SUFFIXES = ("pos_embed", "attn.rel_pos_h", "attn.rel_pos_w")


class SamImageEncoder(nn.Module):
    """SAM's ViT image encoder: 16-pixel patches, windowed and global attention, conv neck.

    Args:
        image_size: input size in pixels. The position embedding covers the
            ``image_size / 16`` token grid and is interpolated for other sizes.
        embed_dim: token width (768 in ViT-B).
        depth: transformer blocks (12 in ViT-B).
        num_heads: attention heads (12 in ViT-B).
        global_attn_indexes: blocks that attend over the whole grid. The others
            attend within ``window_size`` windows ((2, 5, 8, 11) in ViT-B).
        window_size: side of the attention windows in tokens (14 in SAM).
        out_channels: channels of the neck output (256 in SAM).
        mlp_ratio: MLP width relative to ``embed_dim``.
        in_channels: image channels of the patch embedding; SAM takes RGB (3).
    """

    def __init__(
        self,
        *,
        image_size: int,
        embed_dim: int,
        depth: int,
        num_heads: int,
        global_attn_indexes: Sequence[int],
        window_size: int = 14,
        out_channels: int = 256,
        mlp_ratio: float = 4.0,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        grid = image_size // PATCH_SIZE
        self.patch_embed = PatchEmbed(in_channels, embed_dim)
        self.pos_embed = nn.Parameter(torch.zeros(1, grid, grid, embed_dim))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.blocks = nn.ModuleList(
            EncoderBlock(
                embed_dim,
                num_heads,
                mlp_ratio,
                window_size=0 if index in global_attn_indexes else window_size,
                grid=grid,
            )
            for index in range(depth)
        )
        self.neck = nn.Sequential(
            nn.Conv2d(embed_dim, out_channels, kernel_size=1, bias=False),
            LayerNorm2d(out_channels),
            nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1, bias=False),
            LayerNorm2d(out_channels),
        )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Map ``(N, 3, H, W)`` images to ``(N, out_channels, H/16, W/16)`` features."""
        tokens = self.patch_embed(image)
        tokens = tokens + resize_grid_embedding(self.pos_embed, tuple(tokens.shape[1:3]))

        for block in self.blocks:
            tokens = block(tokens)

        return self.neck(tokens.permute(0, 3, 1, 2))


def load_encoder_weights(encoder: SamImageEncoder, path: str | os.PathLike) -> None:
    """Load a SAM or MedSAM image-encoder checkpoint into ``encoder`` with a strict key match.

    The file may contain the encoder's state dict, or a whole SAM model whose
    encoder keys start with ``image_encoder.`` (the other keys are ignored).
    A position embedding or relative-position table sized for another token
    grid, such as SAM's 64×64 grid of 1024-pixel inputs, is interpolated to
    this encoder's grid.

    Raises:
        ConfigError: ``path`` does not exist.
        CheckpointError: the file cannot be read, lacks encoder keys, has extra
            keys, or has a tensor whose shape cannot be interpolated.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"encoder weights file not found: {path}. Pass the path of a local SAM or "
            "MedSAM checkpoint (.pth)"
        )
    state = _encoder_state(_read_checkpoint(path), path)
    expected = encoder.state_dict()
    _check_keys(state, expected, path)
    state, resized = _match_shapes(state, expected, path)

    encoder.load_state_dict(state, strict=True)
    logger.info(
        "loaded %d encoder tensors from %s (interpolated to the token grid: %s)",
        len(state),
        path,
        ", ".join(resized) or "none",
    )


class PatchEmbed(nn.Module):
    """Non-overlapping 16×16 patches to tokens, returned channels-last ``(N, rows, cols, dim)``."""

    def __init__(self, in_channels: int, embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_channels, embed_dim, kernel_size=PATCH_SIZE, stride=PATCH_SIZE)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.proj(image).permute(0, 2, 3, 1)


class LayerNorm2d(nn.Module):
    """Layer normalisation over the channels of a ``(N, C, H, W)`` map."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        mean = features.mean(dim=1, keepdim=True)
        variance = (features - mean).pow(2).mean(dim=1, keepdim=True)
        normalised = (features - mean) / torch.sqrt(variance + self.eps)
        return self.weight[:, None, None] * normalised + self.bias[:, None, None]


class MLP(nn.Module):
    """Two linear layers with a GELU between them (``lin1``, ``lin2`` as in SAM)."""

    def __init__(self, embed_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.lin1 = nn.Linear(embed_dim, hidden_dim)
        self.lin2 = nn.Linear(hidden_dim, embed_dim)
        self.act = nn.GELU()

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.lin2(self.act(self.lin1(tokens)))


class EncoderBlock(nn.Module):
    """Pre-norm transformer block with windowed (``window_size > 0``) or global attention."""

    def __init__(
        self, embed_dim: int, num_heads: int, mlp_ratio: float, window_size: int, grid: int
    ) -> None:
        super().__init__()
        self.window_size = window_size
        self.norm1 = nn.LayerNorm(embed_dim, eps=1e-6)
        self.attn = RelPosAttention(
            embed_dim, num_heads, table_size=window_size or grid, windowed=window_size > 0
        )
        self.norm2 = nn.LayerNorm(embed_dim, eps=1e-6)
        self.mlp = MLP(embed_dim, int(embed_dim * mlp_ratio))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        rows, cols = tokens.shape[1:3]
        # A window as large as the grid is global attention without padding.
        # SAM would pad a 4×4 grid to one 14×14 window and attend to the padding too.
        window = self.window_size if 0 < self.window_size < max(rows, cols) else 0

        attended = self.norm1(tokens)
        if window:
            windows, padded_size = _window_partition(attended, window)
            attended = _window_unpartition(self.attn(windows), window, padded_size, (rows, cols))
        else:
            attended = self.attn(attended)
        tokens = tokens + attended

        return tokens + self.mlp(self.norm2(tokens))


class RelPosAttention(nn.Module):
    """Multi-head self-attention with SAM's decomposed relative position bias.

    Args:
        embed_dim: token width.
        num_heads: attention heads.
        table_size: side in tokens of the region attended over (a window or the
            whole grid). The tables contain ``2 * table_size - 1`` offsets per axis.
        windowed: the tables belong to fixed-size windows, so a smaller region
            uses their central offsets. Tables of global attention are instead
            interpolated to the grid, as the position embedding is.
    """

    def __init__(self, embed_dim: int, num_heads: int, table_size: int, windowed: bool) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.windowed = windowed
        head_dim = embed_dim // num_heads
        self.scale = head_dim**-0.5
        self.qkv = nn.Linear(embed_dim, embed_dim * 3, bias=True)
        self.proj = nn.Linear(embed_dim, embed_dim)
        self.rel_pos_h = nn.Parameter(torch.zeros(2 * table_size - 1, head_dim))
        self.rel_pos_w = nn.Parameter(torch.zeros(2 * table_size - 1, head_dim))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        batch, rows, cols, _ = tokens.shape
        qkv = self.qkv(tokens).reshape(batch, rows * cols, 3, self.num_heads, -1)
        query, key, value = qkv.permute(2, 0, 3, 1, 4).unbind(0)

        scores = (query * self.scale) @ key.transpose(-2, -1)
        scores = scores + self._relative_bias(query, rows, cols)
        attended = scores.softmax(dim=-1) @ value

        attended = attended.transpose(1, 2).reshape(batch, rows, cols, -1)
        return self.proj(attended)

    def _relative_bias(self, query: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
        """Return the ``(N, heads, rows*cols, rows*cols)`` bias ``q·R_h + q·R_w``."""
        batch, heads, _, head_dim = query.shape
        table_rows = _relative_table(self.rel_pos_h, rows, self.windowed)
        table_cols = _relative_table(self.rel_pos_w, cols, self.windowed)
        grid_query = query.reshape(batch, heads, rows, cols, head_dim)

        bias_rows = torch.einsum("bnrcd,rkd->bnrck", grid_query, table_rows)
        bias_cols = torch.einsum("bnrcd,ckd->bnrck", grid_query, table_cols)
        bias = bias_rows[..., :, None] + bias_cols[..., None, :]
        return bias.reshape(batch, heads, rows * cols, rows * cols)


def _relative_table(table: torch.Tensor, size: int, crop: bool) -> torch.Tensor:
    """Return the ``(size, size, head_dim)`` embeddings of offsets ``i - j`` along one axis.

    With ``crop``, a table longer than needed gives its central ``2 * size - 1``
    rows (the same token offsets). Otherwise a table of another length is interpolated.
    """
    offsets = 2 * size - 1
    if crop and table.shape[0] > offsets:
        start = (table.shape[0] - offsets) // 2
        table = table[start : start + offsets]
    elif table.shape[0] != offsets:
        table = _resize_offset_table(table, offsets)
    positions = torch.arange(size, device=table.device)
    index = positions[:, None] - positions[None, :] + (size - 1)
    return table[index]


def _resize_offset_table(table: torch.Tensor, offsets: int) -> torch.Tensor:
    resized = functional.interpolate(
        table.T.unsqueeze(0), size=offsets, mode="linear", align_corners=False
    )
    return resized.squeeze(0).T


def _window_partition(tokens: torch.Tensor, window: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Split ``(N, rows, cols, C)`` tokens, zero-padded to a multiple of ``window``, into windows."""
    batch, rows, cols, channels = tokens.shape
    pad_rows = (window - rows % window) % window
    pad_cols = (window - cols % window) % window
    tokens = functional.pad(tokens, (0, 0, 0, pad_cols, 0, pad_rows))
    padded_rows, padded_cols = rows + pad_rows, cols + pad_cols

    windows = tokens.reshape(
        batch, padded_rows // window, window, padded_cols // window, window, channels
    )
    windows = windows.permute(0, 1, 3, 2, 4, 5).reshape(-1, window, window, channels)
    return windows, (padded_rows, padded_cols)


def _window_unpartition(
    windows: torch.Tensor, window: int, padded_size: tuple[int, int], size: tuple[int, int]
) -> torch.Tensor:
    """Reassemble windows into ``(N, rows, cols, C)`` tokens and drop the padding."""
    padded_rows, padded_cols = padded_size
    channels = windows.shape[-1]
    grid_rows, grid_cols = padded_rows // window, padded_cols // window
    batch = windows.shape[0] // (grid_rows * grid_cols)

    tokens = windows.reshape(batch, grid_rows, grid_cols, window, window, channels)
    tokens = tokens.permute(0, 1, 3, 2, 4, 5).reshape(batch, padded_rows, padded_cols, channels)
    return tokens[:, : size[0], : size[1], :].contiguous()


def _read_checkpoint(path: Path) -> Mapping[str, torch.Tensor]:
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for corrupt or foreign files
        raise CheckpointError(
            f"cannot read encoder weights {path}: {error}. Pass a PyTorch state dict file"
        ) from None
    for wrapper in ("state_dict", "model"):
        if isinstance(checkpoint, Mapping) and isinstance(checkpoint.get(wrapper), Mapping):
            checkpoint = checkpoint[wrapper]
    if not isinstance(checkpoint, Mapping):
        raise CheckpointError(
            f"encoder weights {path} contain a {type(checkpoint).__name__}, not a state dict. "
            "Pass a SAM or MedSAM checkpoint"
        )
    return checkpoint


def _encoder_state(checkpoint: Mapping[str, torch.Tensor], path: Path) -> dict[str, torch.Tensor]:
    """Keep the image-encoder entries of a whole-model checkpoint, without their prefix."""
    if not any(key.startswith(ENCODER_PREFIX) for key in checkpoint):
        return dict(checkpoint)
    state = {
        key[len(ENCODER_PREFIX) :]: value
        for key, value in checkpoint.items()
        if key.startswith(ENCODER_PREFIX)
    }
    logger.debug(
        "using the %d %s* keys of %s and ignoring %d others",
        len(state),
        ENCODER_PREFIX,
        path,
        len(checkpoint) - len(state),
    )
    return state


def _check_keys(
    state: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor], path: Path
) -> None:
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"encoder weights {path} do not match the SAM image encoder: "
            f"{len(missing)} missing key(s) [{_preview(missing)}], "
            f"{len(unexpected)} unexpected key(s) [{_preview(unexpected)}]. "
            "Pass a SAM or MedSAM ViT checkpoint whose depth matches the preset"
        )


def _match_shapes(
    state: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor], path: Path
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Interpolate grid-dependent tensors to the encoder's shapes and reject other mismatches."""
    matched: dict[str, torch.Tensor] = {}
    resized: list[str] = []
    mismatched: list[str] = []
    for key, value in state.items():
        target = expected[key]
        if value.shape == target.shape:
            matched[key] = value
        elif _can_interpolate(key, value, target):
            matched[key] = _interpolate_to(key, value, target)
            resized.append(key)
        else:
            mismatched.append(f"{key}: {tuple(value.shape)} vs {tuple(target.shape)}")
    if mismatched:
        raise CheckpointError(
            f"encoder weights {path} have {len(mismatched)} tensor(s) of the wrong shape "
            f"(checkpoint vs model) [{_preview(mismatched)}]. The preset's width or heads "
            "differ from the checkpoint's, so use the preset that matches it (ViT-B: base)"
        )
    return matched, resized


def _can_interpolate(key: str, value: torch.Tensor, target: torch.Tensor) -> bool:
    return (
        key.endswith(_GRID_DEPENDENT_SUFFIXES)
        and value.ndim == target.ndim
        and value.shape[-1] == target.shape[-1]
    )


def _interpolate_to(key: str, value: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    value = value.to(target.dtype)
    if key == "pos_embed":
        return resize_grid_embedding(value, tuple(target.shape[1:3]))
    return _resize_offset_table(value, target.shape[0])


def _preview(items: Sequence[str], limit: int = 8) -> str:
    listed = ", ".join(items[:limit])
    return listed + (f", … {len(items) - limit} more" if len(items) > limit else "")

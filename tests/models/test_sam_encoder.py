"""The SAM-style encoder: windowed attention, and loading SAM/MedSAM weights from a file."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from bench.errors import CheckpointError, ConfigError
from bench.models import build_backbone
from bench.models.blocks import resize_grid_embedding
from bench.models.sam_encoder import (
    SamImageEncoder,
    _window_partition,
    _window_unpartition,
    load_encoder_weights,
)

SMALL_ENCODER = {
    "embed_dim": 96,
    "depth": 2,
    "num_heads": 4,
    "global_attn_indexes": (1,),
    "out_channels": 32,
}


def fake_sam_checkpoint(encoder_grid: int = 8) -> dict[str, torch.Tensor]:
    """A whole-model SAM-style state dict whose encoder was built for a larger grid.

    The encoder keys carry the ``image_encoder.`` prefix, and decoder keys sit
    beside them, as in the released SAM and MedSAM checkpoints.
    """
    torch.manual_seed(123)
    source = SamImageEncoder(image_size=16 * encoder_grid, **SMALL_ENCODER)
    checkpoint = {f"image_encoder.{key}": value for key, value in source.state_dict().items()}
    checkpoint["mask_decoder.output_upscaling.0.weight"] = torch.zeros(4, 4)
    checkpoint["prompt_encoder.pe_layer.positional_encoding_gaussian_matrix"] = torch.zeros(2, 4)
    return checkpoint


def test_window_partition_round_trip():
    tokens = torch.randn(2, 5, 7, 3)

    windows, padded_size = _window_partition(tokens, window=2)
    restored = _window_unpartition(windows, 2, padded_size, (5, 7))

    assert windows.shape == (2 * 3 * 4, 2, 2, 3)
    assert torch.equal(restored, tokens)


def test_windowed_attention_runs_on_large_grid():
    encoder = SamImageEncoder(image_size=128, window_size=3, **SMALL_ENCODER)

    features = encoder(torch.randn(1, 3, 128, 128))

    assert features.shape == (1, 32, 8, 8)
    assert encoder.blocks[0].window_size == 3
    assert encoder.blocks[1].window_size == 0


def test_loads_prefixed_checkpoint_and_interpolates(tmp_path: Path):
    checkpoint = fake_sam_checkpoint(encoder_grid=8)
    path = tmp_path / "medsam_small.pth"
    torch.save(checkpoint, path)

    model = build_backbone("scarnet", "small", image_size=64, encoder_weights=str(path))
    loaded = model.image_encoder.state_dict()

    assert torch.equal(
        loaded["blocks.0.attn.qkv.weight"], checkpoint["image_encoder.blocks.0.attn.qkv.weight"]
    )
    assert torch.equal(loaded["neck.2.weight"], checkpoint["image_encoder.neck.2.weight"])
    # The 8×8 position embedding is interpolated to the 4×4 grid of 64-pixel inputs.
    expected_pos_embed = resize_grid_embedding(checkpoint["image_encoder.pos_embed"], (4, 4))
    assert loaded["pos_embed"].shape == (1, 4, 4, 96)
    assert torch.allclose(loaded["pos_embed"], expected_pos_embed)
    # The global block's tables cover 2*8-1 offsets in the file and 2*4-1 in the model.
    assert checkpoint["image_encoder.blocks.1.attn.rel_pos_h"].shape == (15, 24)
    assert loaded["blocks.1.attn.rel_pos_h"].shape == (7, 24)


def test_loads_unprefixed_encoder_state(tmp_path: Path):
    torch.manual_seed(5)
    source = SamImageEncoder(image_size=64, **SMALL_ENCODER)
    path = tmp_path / "encoder.pth"
    torch.save(source.state_dict(), path)

    target = SamImageEncoder(image_size=64, **SMALL_ENCODER)
    load_encoder_weights(target, path)

    image = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(source(image), target(image))


def test_wrong_keys_listed(tmp_path: Path):
    checkpoint = fake_sam_checkpoint()
    checkpoint["image_encoder.blocks.0.attn.out_proj.weight"] = checkpoint.pop(
        "image_encoder.blocks.0.attn.proj.weight"
    )
    path = tmp_path / "renamed.pth"
    torch.save(checkpoint, path)

    with pytest.raises(CheckpointError) as caught:
        build_backbone("scarnet", "small", encoder_weights=path)

    message = str(caught.value)
    assert str(path) in message
    assert "1 missing key(s) [blocks.0.attn.proj.weight]" in message
    assert "1 unexpected key(s) [blocks.0.attn.out_proj.weight]" in message


def test_deeper_checkpoint_rejected(tmp_path: Path):
    deeper = SamImageEncoder(image_size=64, **{**SMALL_ENCODER, "depth": 3})
    path = tmp_path / "deeper.pth"
    torch.save(deeper.state_dict(), path)

    with pytest.raises(
        CheckpointError, match=r"0 missing key\(s\).*unexpected key\(s\) \[blocks\.2\."
    ):
        build_backbone("scarnet", "small", encoder_weights=path)


def test_wrong_width_rejected(tmp_path: Path):
    wider = SamImageEncoder(image_size=64, **{**SMALL_ENCODER, "embed_dim": 128})
    path = tmp_path / "wider.pth"
    torch.save(wider.state_dict(), path)

    with pytest.raises(
        CheckpointError, match=r"patch_embed\.proj\.weight: \(128, 3, 16, 16\) vs \(96, 3, 16, 16\)"
    ):
        build_backbone("scarnet", "small", encoder_weights=path)


def test_missing_file_is_config_error(tmp_path: Path):
    with pytest.raises(ConfigError, match="encoder weights file not found"):
        build_backbone("scarnet", "small", encoder_weights=tmp_path / "absent.pth")


def test_unreadable_file_is_checkpoint_error(tmp_path: Path):
    path = tmp_path / "not_a_checkpoint.pth"
    path.write_text("plain text, not a PyTorch file")

    with pytest.raises(CheckpointError, match="cannot read encoder weights"):
        build_backbone("scarnet", "small", encoder_weights=path)

"""``bench list backbones``: every registered backbone preset with its size and cost.

Example:
    $ bench list backbones
    $ bench list backbones --image-size 128 --preset small
"""

from __future__ import annotations

import logging

import click

from bench.models.base import BackboneSpec, describe_backbone
from bench.registry import BACKBONES

__all__ = ["backbone_rows", "list_backbones"]

logger = logging.getLogger(__name__)

COLUMNS = ("backbone", "preset", "parameters", "input", "MFLOPs/image")


def backbone_rows(image_size: int = 64, preset: str | None = None) -> list[dict]:
    """Describe every registered backbone preset (all presets, or only ``preset``).

    Returns:
        One ``describe_backbone`` dict per backbone and preset, in registration order.
    """
    rows = []
    for name, spec in BACKBONES.items():
        for preset_name in _presets(spec, preset):
            rows.append(describe_backbone(name, preset_name, image_size=image_size))
    return rows


def _presets(spec: BackboneSpec, preset: str | None) -> list[str]:
    if preset is None:
        return list(spec.presets)
    if preset not in spec.presets:
        logger.info("skipped backbone %s, which has no preset %r", spec.name, preset)
        return []
    return [preset]


def _format_table(rows: list[dict]) -> str:
    cells = [COLUMNS] + [
        (
            row["backbone"],
            row["preset"],
            f"{row['parameters']:,}",
            f"1x{row['image_size']}x{row['image_size']}",
            f"{row['mflops_per_image']:,.1f}",
        )
        for row in rows
    ]
    widths = [max(len(line[column]) for line in cells) for column in range(len(COLUMNS))]
    lines = []
    for line in cells:
        padded = [
            text.ljust(width) if column < 2 else text.rjust(width)
            for column, (text, width) in enumerate(zip(line, widths, strict=True))
        ]
        lines.append("  ".join(padded).rstrip())
    return "\n".join(lines)


@click.command("backbones")
@click.option(
    "--image-size",
    type=int,
    default=64,
    show_default=True,
    help="Input height and width in pixels (a multiple of 16) for the FLOP count.",
)
@click.option("--preset", default=None, help="Show only this preset, e.g. small.")
def list_backbones(image_size: int, preset: str | None) -> None:
    """Print each backbone preset's parameter count, input size and forward MFLOPs per image."""
    click.echo(_format_table(backbone_rows(image_size, preset)))

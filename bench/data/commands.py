"""``bench data …`` and ``bench list datasets``: the CLI of the data layer."""

from __future__ import annotations

import click

from bench.cli import LazyGroup

__all__ = ["data", "list_datasets"]


@click.group(
    cls=LazyGroup,
    lazy_commands={
        "validate": (
            "bench.data.validate:validate_command",
            "Check a dataset's files and labels; exit 1 on any error.",
        ),
        "synth": ("bench.data.synthetic:synth_command", "Write a synthetic LGE phantom dataset."),
        "import": (
            "bench.data.importers:import_group",
            "Make a manifest from EMIDEC or an nnU-Net raw dataset.",
        ),
        "difficulty": (
            "bench.data.difficulty:difficulty_command",
            "Estimate per-slice difficulty where no expert score exists.",
        ),
        "preview": (
            "bench.data.preview:preview_command",
            "Draw a PNG grid of slices with myocardium and scar contours.",
        ),
    },
)
def data() -> None:
    """Validate, import, synthesise and inspect datasets."""


@click.command("datasets")
def list_datasets() -> None:
    """List the registered dataset names (usable wherever a DATASET is asked for)."""
    from bench.registry import DATASETS

    for name in DATASETS.names():
        click.echo(name)

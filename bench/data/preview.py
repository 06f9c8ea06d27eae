"""Draw a PNG grid of slices with their myocardium and scar contours.

Example:
    >>> from bench.data.preview import write_preview
    >>> write_preview("synthetic", "preview.png", difficulty=2, count=8)  # doctest: +SKIP

Each panel shows one slice at native resolution, cropped to the myocardium's
bounding box with a margin. The myocardium outline is green and the
reference scar outline red. Where the dataset has a noise-free scar, its
outline is dashed yellow. The panel title is the case id and its level.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import click
import numpy as np
import pandas as pd

from bench import fileio
from bench.errors import ConfigError

__all__ = ["select_cases", "write_preview", "preview_command"]

logger = logging.getLogger(__name__)

CROP_MARGIN = 0.35


def select_cases(
    frame: pd.DataFrame, *, difficulty: int | None = None, count: int = 12, seed: int = 0
) -> pd.DataFrame:
    """Pick up to ``count`` manifest rows, optionally of one difficulty level, at random.

    Raises:
        ConfigError: no row has the requested level.
    """
    if difficulty is not None:
        frame = frame[frame["difficulty"] == difficulty]
        if frame.empty:
            raise ConfigError(
                f"no slice has difficulty {difficulty}; run `bench data difficulty` first "
                "or choose another level"
            )
    chosen = frame.sample(n=min(count, len(frame)), random_state=seed)
    return chosen.sort_values("case_id")


def write_preview(
    source,
    out: str | os.PathLike,
    *,
    difficulty: int | None = None,
    count: int = 12,
    columns: int = 6,
    seed: int = 0,
) -> Path:
    """Write a PNG grid of ``count`` slices of a dataset.

    Args:
        source: descriptor YAML, manifest CSV or registered dataset name.
        out: the PNG file to write.
        difficulty: show only slices of this level (0, 1 or 2).
        count: number of slices.
        columns: panels per row.
        seed: random seed of the slice selection.

    Returns:
        The PNG path.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bench.data.manifest import load_descriptor, read_case, read_manifest

    descriptor = load_descriptor(source)
    rows = select_cases(read_manifest(descriptor), difficulty=difficulty, count=count, seed=seed)
    grid_rows = -(-len(rows) // columns)
    figure, axes = plt.subplots(
        grid_rows, columns, figsize=(2.0 * columns, 2.1 * grid_rows), squeeze=False
    )

    for axis in axes.ravel():
        axis.axis("off")
    for axis, (_, row) in zip(axes.ravel(), rows.iterrows(), strict=False):
        _draw_panel(axis, read_case(descriptor, row), row)

    title = descriptor.name if difficulty is None else f"{descriptor.name}: difficulty {difficulty}"
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    path = fileio.atomic_write(
        out,
        lambda stream: figure.savefig(stream, format="png", dpi=80, metadata={"Software": None}),
    )
    plt.close(figure)
    logger.info("wrote a preview of %d slices to %s", len(rows), path)
    return path


def _draw_panel(axis, case, row: pd.Series) -> None:
    window = _crop_window(case.myocardium)
    image = case.image[window]
    low, high = np.percentile(image, [1, 99.5])
    axis.imshow(image, cmap="gray", vmin=low, vmax=high, interpolation="nearest")

    axis.contour(case.myocardium[window], levels=[0.5], colors="lime", linewidths=0.8)
    if case.scar.any():
        axis.contour(case.scar[window], levels=[0.5], colors="red", linewidths=0.8)
    clean = case.extra_masks.get("scar_clean")
    if clean is not None and clean.any():
        axis.contour(
            clean[window], levels=[0.5], colors="yellow", linewidths=0.6, linestyles="dashed"
        )

    level = "?" if pd.isna(row["difficulty"]) else int(row["difficulty"])
    axis.set_title(f"{row['case_id']} (d={level})", fontsize=7)


def _crop_window(myocardium: np.ndarray) -> tuple[slice, slice]:
    rows, cols = np.nonzero(myocardium)
    if rows.size == 0:
        return slice(None), slice(None)
    height, width = myocardium.shape
    margin = int(CROP_MARGIN * max(np.ptp(rows) + 1, np.ptp(cols) + 1))
    return (
        slice(max(rows.min() - margin, 0), min(rows.max() + margin + 1, height)),
        slice(max(cols.min() - margin, 0), min(cols.max() + margin + 1, width)),
    )


# --- command line -------------------------------------------------------------------------


@click.command("preview")
@click.argument("dataset")
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="PNG file to write.",
)
@click.option(
    "--difficulty", type=click.IntRange(0, 2), default=None, help="Show only slices of this level."
)
@click.option("--count", default=12, show_default=True, help="Number of slices.")
@click.option("--columns", default=6, show_default=True, help="Panels per row.")
@click.option("--seed", default=0, show_default=True, help="Random seed of the slice selection.")
def preview_command(
    dataset: str, out: Path, difficulty: int | None, count: int, columns: int, seed: int
) -> None:
    """Draw a PNG grid of DATASET's slices with myocardium (green) and scar (red) contours."""
    path = write_preview(
        dataset, out, difficulty=difficulty, count=count, columns=columns, seed=seed
    )
    click.echo(f"wrote {path}")

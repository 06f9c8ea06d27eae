"""The report's figures, drawn with matplotlib and embedded as base64 PNG data URIs.

Example:
    >>> from bench.reporting import figures
    >>> figure = figures.dice_distribution_figure(paired)  # doctest: +SKIP
    >>> figure.data_uri[:22]  # doctest: +SKIP
    'data:image/png;base64,'

PNG keeps the HTML free of any ``http`` reference (matplotlib's SVG carries an
``xmlns`` URL) and keeps the file size bounded when there are many points.
Every figure is a ``matplotlib.figure.Figure`` built without pyplot, so no
global state or display is needed. Scatter plots with more than
``MAX_POINTS`` points show a seeded random subsample, and the caption states it.
"""

from __future__ import annotations

import base64
import io
import logging
import math
import struct
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

__all__ = [
    "EmbeddedFigure",
    "GalleryCase",
    "MAX_POINTS",
    "dice_distribution_figure",
    "burden_scatter_figure",
    "bland_altman_figure",
    "training_curves_figure",
    "gallery_figure",
    "strategy_colour",
    "ordered_strategies",
]

logger = logging.getLogger(__name__)

# Points drawn per scatter panel (and paired lines per model) before subsampling.
MAX_POINTS = 3000
SUBSAMPLE_SEED = 0
DPI = 110
PANEL_COLUMNS = 4

# PNG signature (8 bytes) and IHDR chunk (25 bytes), which must stay first.
_HEADER_BYTES = 33

_STRATEGY_COLOURS = {"standard": "#3b6fb6", "curriculum": "#d9822b"}
_EXTRA_COLOURS = ("#3f9b5a", "#a34ca3", "#8c6d31", "#5f6b7a")
_TRUTH_COLOUR = "#35d04a"

_STYLE = {
    "font.size": 8.5,
    "axes.titlesize": 9,
    "axes.labelsize": 8.5,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#e4e4e4",
    "grid.linewidth": 0.6,
    "legend.frameon": False,
    "legend.fontsize": 8,
    "svg.fonttype": "none",
}


@dataclass(frozen=True)
class EmbeddedFigure:
    """A figure rendered to a PNG data URI, with the facts its caption must state."""

    data_uri: str
    subsampled: str = ""


@dataclass(frozen=True)
class GalleryCase:
    """One test slice for the case gallery: the image, its masks and both strategies' masks."""

    role: str
    case_id: str
    image: np.ndarray
    myocardium: np.ndarray
    truth: np.ndarray
    predictions: Mapping[str, np.ndarray]
    dice: Mapping[str, float]


def strategy_colour(strategy: str, position: int = 0) -> str:
    """Return the colour of a strategy in every figure: blue standard, orange curriculum."""
    return _STRATEGY_COLOURS.get(strategy, _EXTRA_COLOURS[position % len(_EXTRA_COLOURS)])


def ordered_strategies(strategies: Sequence[str]) -> list[str]:
    """Sort strategies: standard first, curriculum second, any other after them by name."""
    order = {"standard": 0, "curriculum": 1}
    return sorted(strategies, key=lambda strategy: (order.get(strategy, 2), strategy))


def dice_distribution_figure(paired: pd.DataFrame) -> EmbeddedFigure:
    """Draw Dice per model and strategy: boxes, case points, and lines pairing each case's arms.

    Args:
        paired: ``tables.paired_cases`` output (one row per model, strategy and case).
    """
    models = sorted(paired["model"].unique())
    strategies = ordered_strategies(paired["strategy"].unique())
    rng = np.random.default_rng(SUBSAMPLE_SEED)
    subsampled = ""

    with matplotlib.rc_context(_STYLE):
        figure = Figure(figsize=(max(4.5, 2.2 * len(models) + 1.0), 3.6))
        axes = figure.add_subplot()
        width = 0.8 / len(strategies)
        for model_position, model in enumerate(models):
            rows = paired[paired["model"] == model]
            wide = rows.pivot_table(index="case_id", columns="strategy", values="dice")
            wide = wide.reindex(columns=strategies)
            if len(wide) > MAX_POINTS:
                wide = wide.iloc[np.sort(rng.choice(len(wide), MAX_POINTS, replace=False))]
                subsampled = f"points and lines: a random {MAX_POINTS} cases per model (seed {SUBSAMPLE_SEED})"
            offsets = [
                model_position + (i - (len(strategies) - 1) / 2) * width
                for i in range(len(strategies))
            ]
            _draw_pair_lines(axes, wide, offsets)
            for position, (strategy, offset) in enumerate(zip(strategies, offsets, strict=True)):
                values = rows.loc[rows["strategy"] == strategy, "dice"].dropna().to_numpy()
                _draw_box(axes, values, offset, width * 0.7, strategy_colour(strategy, position))
                drawn_dice = wide[strategy].dropna().to_numpy()
                jitter = rng.uniform(-width * 0.12, width * 0.12, size=drawn_dice.size)
                axes.scatter(
                    np.full(drawn_dice.size, offset) + jitter,
                    drawn_dice,
                    s=7,
                    alpha=0.55,
                    linewidths=0,
                    color=strategy_colour(strategy, position),
                    zorder=3,
                )

        axes.set_xticks(range(len(models)), models)
        axes.set_xlim(-0.6, len(models) - 0.4)
        axes.set_ylim(-0.03, 1.03)
        axes.set_ylabel("scar Dice")
        axes.grid(axis="x", visible=False)
        _strategy_legend(axes, strategies)
        figure.tight_layout()
        return EmbeddedFigure(_to_data_uri(figure), subsampled)


def burden_scatter_figure(
    per_case: pd.DataFrame, statistics: Mapping[str, Mapping[str, Any]]
) -> EmbeddedFigure:
    """Draw predicted against true scar burden per task, with the identity and fitted lines.

    Args:
        per_case: per-case rows of the done tasks.
        statistics: ``tables.task_statistics`` output; r, its CI and p are
            read from its Pearson results, never recomputed here.
    """
    labels = list(statistics)
    rng = np.random.default_rng(SUBSAMPLE_SEED)
    subsampled = ""

    with matplotlib.rc_context(_STYLE):
        figure, panels = _panel_grid(len(labels), panel_size=(3.0, 2.9))
        for axes, label in zip(panels, labels, strict=False):
            rows, true_burden, pred_burden, drawn = _task_burden(per_case, label, rng)
            if drawn.size < true_burden.size:
                subsampled = f"a random {MAX_POINTS} cases per panel (seed {SUBSAMPLE_SEED})"

            colour = strategy_colour(str(rows["strategy"].iloc[0]))
            axes.scatter(
                true_burden[drawn], pred_burden[drawn], s=8, alpha=0.6, linewidths=0, color=colour
            )
            limit = _axis_limit(true_burden, pred_burden)
            axes.plot(
                [0, limit],
                [0, limit],
                color="#777777",
                linewidth=0.8,
                linestyle="--",
                label="identity",
            )
            _draw_fitted_line(axes, true_burden, pred_burden, limit)
            axes.set_xlim(-0.02 * limit, limit)
            axes.set_ylim(-0.02 * limit, limit)
            axes.set_aspect("equal")
            axes.set_xlabel("true burden (%)")
            axes.set_ylabel("predicted burden (%)")
            axes.set_title(label, fontsize=7.5)
            axes.text(
                0.03,
                0.97,
                _pearson_text(statistics[label]["pearson"]),
                transform=axes.transAxes,
                va="top",
                fontsize=7.5,
            )
        panels[0].legend(loc="lower right")
        figure.tight_layout()
        return EmbeddedFigure(_to_data_uri(figure), subsampled)


def bland_altman_figure(
    per_case: pd.DataFrame, statistics: Mapping[str, Mapping[str, Any]]
) -> EmbeddedFigure:
    """Draw a Bland–Altman plot of scar burden per task: bias, limits of agreement and their CIs.

    The lines and shaded bands come from the Bland–Altman results in
    ``statistics``; the points are (mean, predicted − true) per case.
    """
    labels = list(statistics)
    rng = np.random.default_rng(SUBSAMPLE_SEED)
    subsampled = ""

    with matplotlib.rc_context(_STYLE):
        figure, panels = _panel_grid(len(labels), panel_size=(3.2, 2.7))
        for axes, label in zip(panels, labels, strict=False):
            rows, true_burden, pred_burden, drawn = _task_burden(per_case, label, rng)
            if drawn.size < true_burden.size:
                subsampled = f"a random {MAX_POINTS} cases per panel (seed {SUBSAMPLE_SEED})"

            mean_burden = (true_burden + pred_burden) / 2
            difference = pred_burden - true_burden
            colour = strategy_colour(str(rows["strategy"].iloc[0]))
            axes.scatter(
                mean_burden[drawn], difference[drawn], s=8, alpha=0.6, linewidths=0, color=colour
            )
            _draw_agreement_lines(axes, _as_dict(statistics[label]["bland_altman"]))
            axes.axhline(0, color="#999999", linewidth=0.6)
            axes.set_xlabel("mean of true and predicted burden (%)")
            axes.set_ylabel("predicted − true (pp)")
            axes.set_title(label, fontsize=7.5)
        figure.tight_layout()
        return EmbeddedFigure(_to_data_uri(figure), subsampled)


def training_curves_figure(
    curves: Sequence[tuple[str, str, pd.DataFrame, pd.DataFrame | None]],
) -> EmbeddedFigure:
    """Draw training loss per epoch for each task, with stage boundaries and re-selection counts.

    Args:
        curves: ``(task label, strategy, train_log, reselected or None)`` per task.
    """
    with matplotlib.rc_context(_STYLE):
        figure, panels = _panel_grid(len(curves), panel_size=(3.2, 2.4))
        for axes, (label, strategy, log, reselected) in zip(panels, curves, strict=False):
            epochs = np.arange(1, len(log) + 1)
            loss_column = _loss_column(log)
            axes.plot(
                epochs,
                log[loss_column].to_numpy(dtype=float),
                color=strategy_colour(strategy),
                linewidth=1.2,
                marker="o" if len(log) <= 20 else None,
                markersize=3,
            )
            _draw_stage_boundaries(axes, log, reselected)
            axes.xaxis.set_major_locator(MaxNLocator(integer=True))
            axes.set_xlim(0.5, len(log) + 0.5)
            axes.set_xlabel("epoch (cumulative over stages)")
            axes.set_ylabel(loss_column.replace("_", " "))
            axes.set_title(label, fontsize=7.5)
        figure.tight_layout()
        return EmbeddedFigure(_to_data_uri(figure))


def gallery_figure(
    model: str, cases: Sequence[GalleryCase], strategies: Sequence[str]
) -> EmbeddedFigure:
    """Draw test slices with the truth (green) and each strategy's predicted contour.

    Args:
        model: backbone name, used in the figure title.
        cases: slices in display order (best, median, worst, most improved).
        strategies: the strategies whose contours are drawn, in legend order.
    """
    with matplotlib.rc_context({**_STYLE, "axes.grid": False}):
        figure = Figure(figsize=(2.35 * max(len(cases), 2), 3.1))
        for position, case in enumerate(cases, start=1):
            axes = figure.add_subplot(1, max(len(cases), 2), position)
            axes.imshow(case.image, cmap="gray", interpolation="nearest")
            _draw_contour(axes, case.myocardium, "#6b6b6b", 0.8, "dotted")
            _draw_contour(axes, case.truth, _TRUTH_COLOUR, 1.3, "solid")
            for index, strategy in enumerate(strategies):
                if strategy in case.predictions:
                    _draw_contour(
                        axes,
                        case.predictions[strategy],
                        strategy_colour(strategy, index),
                        1.1,
                        "solid",
                    )
            scores = "\n".join(
                f"{name}: Dice {case.dice.get(name, math.nan):.2f}" for name in strategies
            )
            axes.set_title(f"{case.role}\n{case.case_id}\n{scores}", fontsize=7, pad=4)
            axes.set_xticks([])
            axes.set_yticks([])
            for spine in axes.spines.values():
                spine.set_visible(False)
        figure.tight_layout()
        return EmbeddedFigure(_to_data_uri(figure))


def _to_data_uri(figure: Figure) -> str:
    buffer = io.BytesIO()
    # matplotlib's default Software entry carries its web address.
    figure.savefig(
        buffer, format="png", dpi=DPI, facecolor="white", metadata={"Software": "scarbench"}
    )
    return "data:image/png;base64," + _base64_without_http(buffer.getvalue())


def _base64_without_http(png: bytes) -> str:
    """Encode a PNG in base64 so that the text never contains "http" in any letter case.

    Base64 text spells "http" by chance, ignoring letter case about once per megabyte
    of PNG (an estimate: 4 letters at 2/64 each), and the report must contain
    no such string. When it does, the image is re-compressed at other zlib
    levels, each also shifted by a comment chunk, until the text is clean.
    The pixels do not change.
    """
    encoded = base64.b64encode(png).decode("ascii")
    if "http" not in encoded.lower():
        return encoded

    from PIL import Image

    with Image.open(io.BytesIO(png)) as image:
        image.load()
        for level in range(9, 0, -1):
            buffer = io.BytesIO()
            image.save(buffer, format="PNG", compress_level=level)
            for variant in _alignment_variants(buffer.getvalue()):
                encoded = base64.b64encode(variant).decode("ascii")
                if "http" not in encoded.lower():
                    return encoded
    raise RuntimeError("cannot encode a figure in base64 without the letters 'http'")


def _alignment_variants(png: bytes) -> list[bytes]:
    """Return the PNG as is and with comment chunks of 20 and 22 bytes, one per base64 alignment."""
    return [png, _with_comment(png, b""), _with_comment(png, b"  ")]


def _with_comment(png: bytes, text: bytes) -> bytes:
    """Insert a ``tEXt`` chunk (keyword ``Comment``) right after the signature and IHDR chunk."""
    data = b"Comment\x00" + text
    chunk = (
        struct.pack(">I", len(data))
        + b"tEXt"
        + data
        + struct.pack(">I", zlib.crc32(b"tEXt" + data))
    )
    return png[:_HEADER_BYTES] + chunk + png[_HEADER_BYTES:]


def _panel_grid(count: int, panel_size: tuple[float, float]) -> tuple[Figure, list[Any]]:
    columns = min(PANEL_COLUMNS, max(count, 1))
    rows = max(1, math.ceil(count / columns))
    figure = Figure(figsize=(panel_size[0] * columns, panel_size[1] * rows))
    panels = [figure.add_subplot(rows, columns, index + 1) for index in range(max(count, 1))]
    return figure, panels


def _draw_pair_lines(axes: Any, wide: pd.DataFrame, offsets: Sequence[float]) -> None:
    """Draw grey lines linking a case's Dice under each neighbouring pair of strategies."""
    for left in range(len(offsets) - 1):
        pairs = wide.iloc[:, [left, left + 1]].dropna().to_numpy()
        if pairs.size == 0:
            continue
        xs = np.tile([offsets[left], offsets[left + 1], np.nan], len(pairs))
        ys = np.column_stack([pairs, np.full(len(pairs), np.nan)]).ravel()
        axes.plot(xs, ys, color="#9a9a9a", linewidth=0.45, alpha=0.5, zorder=2)


def _draw_box(axes: Any, values: np.ndarray, position: float, width: float, colour: str) -> None:
    if values.size == 0:
        return
    box = axes.boxplot(
        values,
        positions=[position],
        widths=width,
        patch_artist=True,
        showfliers=False,
        medianprops={"color": "black", "linewidth": 1.2},
        whiskerprops={"color": "#555555"},
        capprops={"color": "#555555"},
        boxprops={"edgecolor": "#555555"},
    )
    for patch in box["boxes"]:
        patch.set_facecolor(colour)
        patch.set_alpha(0.35)


def _strategy_legend(axes: Any, strategies: Sequence[str]) -> None:
    from matplotlib.patches import Patch

    handles = [
        Patch(facecolor=strategy_colour(s, i), alpha=0.6, label=s) for i, s in enumerate(strategies)
    ]
    axes.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncols=len(handles))


def _task_burden(
    per_case: pd.DataFrame, label: str, rng: np.random.Generator
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray]:
    """Return a task's rows, true and predicted burden, and the indices of the points to draw."""
    rows = per_case[per_case["task_label"] == label]
    true_burden = rows["true_burden"].to_numpy(dtype=float)
    pred_burden = rows["pred_burden"].to_numpy(dtype=float)
    return rows, true_burden, pred_burden, _subsample_index(true_burden.size, rng)


def _subsample_index(count: int, rng: np.random.Generator) -> np.ndarray:
    if count <= MAX_POINTS:
        return np.arange(count)
    return np.sort(rng.choice(count, MAX_POINTS, replace=False))


def _axis_limit(*arrays: np.ndarray) -> float:
    finite = np.concatenate([array[np.isfinite(array)] for array in arrays])
    top = float(finite.max()) if finite.size else 1.0
    return max(top * 1.05, 1.0)


def _draw_fitted_line(axes: Any, x: np.ndarray, y: np.ndarray, limit: float) -> None:
    """Draw the least-squares line of predicted on true burden; its coefficients are not reported."""
    keep = np.isfinite(x) & np.isfinite(y)
    if keep.sum() < 2 or np.ptp(x[keep]) == 0:
        return
    slope, intercept = np.polyfit(x[keep], y[keep], 1)
    axes.plot(
        [0, limit],
        [intercept, intercept + slope * limit],
        color="black",
        linewidth=1.0,
        label="least-squares fit",
    )


def _pearson_text(result: Any) -> str:
    from bench.reporting.tables import format_p

    values = _as_dict(result)
    if values["r"] is None:
        return f"r n/a ({values.get('reason') or 'not computable'}), n = {values['n']}"
    interval = (
        "[CI n/a]"
        if values["ci_low"] is None
        else f"[{values['ci_low']:.3f}, {values['ci_high']:.3f}]"
    )
    return f"r = {values['r']:.3f} {interval}\np = {format_p(values['p'])}, n = {values['n']}"


def _draw_agreement_lines(axes: Any, agreement: Mapping[str, Any]) -> None:
    bands = (
        ("bias", "bias", "black"),
        ("lower_limit", "lower LoA", "#b23b3b"),
        ("upper_limit", "upper LoA", "#b23b3b"),
    )
    for key, name, colour in bands:
        value = agreement[key]
        if value is None:
            continue
        axes.axhline(value, color=colour, linewidth=1.0, linestyle="-" if key == "bias" else "--")
        if agreement[f"{key}_ci_low"] is not None:
            axes.axhspan(
                agreement[f"{key}_ci_low"],
                agreement[f"{key}_ci_high"],
                color=colour,
                alpha=0.10,
                linewidth=0,
            )
        axes.annotate(
            f"{name} {value:+.2f}",
            xy=(1.0, value),
            xycoords=("axes fraction", "data"),
            xytext=(-2, 2),
            textcoords="offset points",
            ha="right",
            fontsize=7,
            color=colour,
        )
    slope = agreement.get("slope")
    if slope is not None:
        from bench.reporting.tables import format_p

        axes.text(
            0.02,
            0.03,
            f"proportional bias: slope {slope:+.3f}, p = {format_p(agreement.get('slope_p'))}",
            transform=axes.transAxes,
            fontsize=7,
        )


def _loss_column(log: pd.DataFrame) -> str:
    for column in ("loss", "train_loss", "mean_loss"):
        if column in log:
            return column
    numeric = [c for c in log.columns if "loss" in c]
    return numeric[0] if numeric else log.columns[-1]


def _draw_stage_boundaries(axes: Any, log: pd.DataFrame, reselected: pd.DataFrame | None) -> None:
    """Draw dashed lines where the stage changes, and label each stage with its re-selected slices."""
    if "stage" not in log or log["stage"].nunique() < 2:
        return
    stages = log["stage"].to_numpy()
    counts = _reselected_counts(reselected)
    for index in range(1, len(stages)):
        if stages[index] != stages[index - 1]:
            axes.axvline(index + 0.5, color="#888888", linewidth=0.8, linestyle="--")
    for stage in pd.unique(stages):
        first = int(np.argmax(stages == stage)) + 1
        text = f"stage {stage}"
        if counts is not None:
            text += f"\n{counts.get(stage, 0)} re-sel."
        axes.annotate(
            text,
            xy=(first - 0.5, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(2, -2),
            textcoords="offset points",
            va="top",
            fontsize=6.5,
            color="#555555",
        )


def _reselected_counts(reselected: pd.DataFrame | None) -> dict[Any, int] | None:
    """Count distinct slices per stage that the next stage oversamples.

    Returns None when the task wrote no ``reselected.csv``. Rows whose
    ``oversampled`` is false (spikes in the last stage, or a strategy that
    only records spikes) are not counted.
    """
    if reselected is None or "stage" not in reselected:
        return None
    if "oversampled" in reselected:
        reselected = reselected[reselected["oversampled"].astype(str).str.lower() == "true"]
    if reselected.empty:
        return {}
    return reselected.groupby("stage")["case_id"].nunique().to_dict()


def _draw_contour(axes: Any, mask: np.ndarray, colour: str, width: float, style: str) -> None:
    if mask.any():
        axes.contour(
            mask.astype(float), levels=[0.5], colors=[colour], linewidths=width, linestyles=style
        )


def _as_dict(result: Any) -> dict[str, Any]:
    return result.to_dict() if hasattr(result, "to_dict") else dict(result)

"""Estimate per-slice difficulty from image contrast, scar shape and rater disagreement.

Example:
    >>> from bench.data.difficulty import estimate_difficulty, level_agreement
    >>> frame = estimate_difficulty("data/emidec/emidec.yaml")  # doctest: +SKIP
    >>> frame["difficulty"].value_counts()  # doctest: +SKIP

Features, computed at native resolution inside the myocardium ``M``:

- ``scar_cnr``: (mean scar − mean remote) / SD remote, where remote
  myocardium is ``M`` minus the scar dilated by 2 pixels (minus the scar only
  when that leaves fewer than ``MIN_REGION_PIXELS``).
- ``scar_blood_contrast``: (mean scar − mean blood pool) / SD remote. The
  blood pool is the cavity that the myocardium ring encloses (eroded by one
  pixel), so no blood-pool label is needed; NaN for an open ring.
- ``scar_burden_percent``: 100 · scar pixels / myocardium pixels.
- ``scar_components``: 8-connected scar components.
- ``edge_sharpness``: mean Gaussian gradient magnitude (sigma 1 px) on the
  scar–remote border, divided by the scar–remote intensity difference, in
  1/pixel. A blurred border gives a low value.
- ``rater_disagreement``: 1 − mean pairwise Dice between the reference scar
  and every ``scar_rater<k>`` mask; NaN with a single annotation.
- ``remote_noise``: SD remote / 99th percentile of the image inside the
  filled myocardium (myocardium plus cavity).

Scar features are NaN on scar-free slices, and their zero burden does not
count in the score. Each feature becomes a hardness
in [0, 1] by a fixed transform (``HARDNESS``): a logistic curve for the
continuous features, 1 − 1/n for the component count, and
min(1, 2 · disagreement) for the raters. The score is the weighted mean of the
available hardness values (weights in ``HARDNESS``), so it does not depend on
the other slices. Levels are cut from the score at the descriptor's
``difficulty.thresholds`` or, by default, at the dataset's tertiles.
Rows whose ``difficulty_source`` is ``expert`` keep their level; every row
gets ``difficulty_estimated``, ``difficulty_score`` and the features.
"""

from __future__ import annotations

import itertools
import logging
import math
from dataclasses import dataclass

import click
import numpy as np
import pandas as pd
from scipy import ndimage

from bench import fileio
from bench.errors import ConfigError

__all__ = [
    "FEATURE_COLUMNS",
    "HARDNESS",
    "Hardness",
    "slice_features",
    "difficulty_scores",
    "cut_levels",
    "estimate_difficulty",
    "level_agreement",
    "difficulty_command",
]

logger = logging.getLogger(__name__)

MIN_REGION_PIXELS = 10
REMOTE_MARGIN_PX = 2


@dataclass(frozen=True)
class Hardness:
    """Transform of one feature into a hardness in [0, 1].

    Attributes:
        kind: ``"logistic"``, ``"components"`` or ``"linear"``.
        midpoint: feature value of hardness 0.5 (logistic), or of hardness 1 (linear).
        scale: logistic width; negative when a larger feature value is easier.
        weight: the feature's weight in the score.
    """

    kind: str
    midpoint: float = 0.0
    scale: float = 1.0
    weight: float = 1.0

    def __call__(self, values: pd.Series) -> pd.Series:
        values = values.astype(float)
        if self.kind == "logistic":
            return 1.0 / (1.0 + np.exp(-(values - self.midpoint) / self.scale))
        if self.kind == "components":
            return 1.0 - 1.0 / values.where(values >= 1)
        return (values / self.midpoint).clip(0.0, 1.0)


# The midpoints sit near the middle of the range seen on EMIDEC and on the phantoms.
HARDNESS: dict[str, Hardness] = {
    "scar_cnr": Hardness("logistic", midpoint=4.0, scale=-1.5, weight=2.0),
    "scar_blood_contrast": Hardness("logistic", midpoint=1.0, scale=-1.0),
    "scar_burden_percent": Hardness("logistic", midpoint=8.0, scale=-4.0),
    "scar_components": Hardness("components"),
    "edge_sharpness": Hardness("logistic", midpoint=0.25, scale=-0.08),
    "rater_disagreement": Hardness("linear", midpoint=0.5),
    "remote_noise": Hardness("logistic", midpoint=0.15, scale=0.05),
}
FEATURE_COLUMNS = tuple(HARDNESS)


def slice_features(
    image: np.ndarray,
    myocardium: np.ndarray,
    scar: np.ndarray,
    rater_masks: list[np.ndarray] | tuple[np.ndarray, ...] = (),
) -> dict[str, float]:
    """Compute the difficulty features of one slice (see the module docstring).

    Args:
        image: 2D intensities.
        myocardium: 2D bool myocardium mask.
        scar: 2D bool reference scar mask (inside the myocardium).
        rater_masks: further scar annotations of the same slice.

    Returns:
        Feature name → value; NaN where a feature is undefined.
    """
    scar = scar & myocardium
    remote = _remote_myocardium(myocardium, scar)
    cavity = _cavity(myocardium)
    remote_sd = _sd_with_floor(image[remote]) if remote.any() else math.nan

    features = dict.fromkeys(FEATURE_COLUMNS, math.nan)
    features["scar_burden_percent"] = 100.0 * scar.sum() / max(int(myocardium.sum()), 1)
    features["remote_noise"] = _remote_noise(image, myocardium, cavity, remote_sd)
    features["rater_disagreement"] = _rater_disagreement([scar, *rater_masks])
    if not scar.any() or not remote.any():
        return features

    scar_mean, remote_mean = float(image[scar].mean()), float(image[remote].mean())
    features["scar_cnr"] = (scar_mean - remote_mean) / remote_sd
    if cavity.sum() >= MIN_REGION_PIXELS:
        features["scar_blood_contrast"] = (scar_mean - float(image[cavity].mean())) / remote_sd
    features["scar_components"] = float(ndimage.label(scar, structure=np.ones((3, 3)))[1])
    features["edge_sharpness"] = _edge_sharpness(image, myocardium, scar, scar_mean - remote_mean)
    return features


def difficulty_scores(features: pd.DataFrame) -> pd.Series:
    """Combine feature columns into one score in [0, 1]: the weighted mean of available hardness values."""
    weighted_sum = pd.Series(0.0, index=features.index)
    weight_sum = pd.Series(0.0, index=features.index)
    has_scar = features["scar_burden_percent"] > 0
    for name, hardness in HARDNESS.items():
        values = hardness(features[name])
        if name == "scar_burden_percent":
            values = values.where(has_scar)
        available = values.notna()
        weighted_sum += values.fillna(0.0) * hardness.weight
        weight_sum += available * hardness.weight
    return (weighted_sum / weight_sum.where(weight_sum > 0)).rename("difficulty_score")


def cut_levels(scores: pd.Series, thresholds: tuple[float, float] | None = None) -> pd.Series:
    """Cut scores into levels 0/1/2 at ``thresholds`` (default: the scores' tertiles).

    A score below ``t1`` is level 0, below ``t2`` level 1, otherwise level 2.

    Raises:
        ConfigError: the thresholds are not increasing.
    """
    if thresholds is None:
        thresholds = tuple(float(value) for value in np.nanquantile(scores, [1 / 3, 2 / 3]))
    low, high = thresholds
    if not low < high:
        raise ConfigError(
            f"difficulty thresholds {list(thresholds)} must be increasing, e.g. [0.4, 0.6]"
        )
    levels = np.where(scores < low, 0, np.where(scores < high, 1, 2))
    return pd.Series(levels, index=scores.index, dtype="Int64", name="difficulty_estimated")


def estimate_difficulty(
    source, *, thresholds: tuple[float, float] | None = None, write: bool = True
) -> pd.DataFrame:
    """Estimate every slice's difficulty and update the manifest atomically.

    Args:
        source: a descriptor YAML, manifest CSV or registered dataset name.
        thresholds: score cut points; default the descriptor's
            ``difficulty.thresholds``, else the dataset's tertiles.
        write: rewrite the manifest CSV with the new columns.

    Returns:
        The manifest as stored (relative paths), with ``difficulty``,
        ``difficulty_source``, ``difficulty_estimated``, ``difficulty_score``
        and the feature columns.
    """
    from bench.data.manifest import load_descriptor, read_manifest

    descriptor = load_descriptor(source)
    resolved = read_manifest(descriptor)
    stored = pd.read_csv(descriptor.manifest_path, dtype=str, keep_default_na=False)

    features = pd.DataFrame([_case_features(descriptor, row) for _, row in resolved.iterrows()])
    scores = difficulty_scores(features)
    levels = cut_levels(scores, thresholds or descriptor.difficulty_thresholds)

    updated = _merge_levels(stored, resolved, features, scores, levels)
    if write:
        fileio.write_csv(descriptor.manifest_path, updated)
        logger.info(
            "wrote estimated difficulty of %d slices to %s", len(updated), descriptor.manifest_path
        )
    return updated


def level_agreement(first: pd.Series, second: pd.Series) -> dict[str, float]:
    """Cohen's kappa between two level columns (statsmodels ``cohens_kappa``).

    Returns:
        ``kappa`` (unweighted) with its 95% interval, ``kappa_linear``
        (linear weights), the percent agreement and the number of slices.
    """
    from statsmodels.stats.inter_rater import cohens_kappa

    paired = pd.DataFrame({"first": first, "second": second}).dropna().astype(int)
    table = pd.crosstab(paired["first"], paired["second"]).reindex(
        index=[0, 1, 2], columns=[0, 1, 2], fill_value=0
    )
    plain = cohens_kappa(table.to_numpy())
    linear = cohens_kappa(table.to_numpy(), wt="linear")
    return {
        "kappa": float(plain.kappa),
        "kappa_low": float(plain.kappa_low),
        "kappa_high": float(plain.kappa_upp),
        "kappa_linear": float(linear.kappa),
        "agreement_percent": float(100.0 * (paired["first"] == paired["second"]).mean()),
        "slices": int(len(paired)),
    }


# --- helpers ------------------------------------------------------------------------------


def _case_features(descriptor, row: pd.Series) -> dict[str, float]:
    from bench.data.manifest import read_case

    case = read_case(descriptor, row)
    raters = [mask for name, mask in case.extra_masks.items() if name.startswith("scar_rater")]
    return slice_features(case.image, case.myocardium, case.scar, raters)


def _merge_levels(
    stored: pd.DataFrame,
    resolved: pd.DataFrame,
    features: pd.DataFrame,
    scores: pd.Series,
    levels: pd.Series,
) -> pd.DataFrame:
    updated = stored.copy()
    expert = (resolved["difficulty_source"] == "expert").to_numpy() & resolved[
        "difficulty"
    ].notna().to_numpy()

    current = resolved["difficulty"].astype("Int64").to_numpy()
    updated["difficulty"] = pd.array(np.where(expert, current, levels.to_numpy()), dtype="Int64")
    updated["difficulty_source"] = np.where(expert, "expert", "estimated")
    updated["difficulty_estimated"] = levels.to_numpy()
    updated["difficulty_score"] = scores.round(4).to_numpy()
    for name in FEATURE_COLUMNS:
        updated[name] = features[name].round(4).to_numpy()
    return updated


def _remote_myocardium(myocardium: np.ndarray, scar: np.ndarray) -> np.ndarray:
    near_scar = ndimage.binary_dilation(scar, iterations=REMOTE_MARGIN_PX) if scar.any() else scar
    remote = myocardium & ~near_scar
    if remote.sum() < MIN_REGION_PIXELS:
        remote = myocardium & ~scar
    return remote


def _cavity(myocardium: np.ndarray) -> np.ndarray:
    cavity = ndimage.binary_fill_holes(myocardium) & ~myocardium
    return ndimage.binary_erosion(cavity)


def _sd_with_floor(values: np.ndarray) -> float:
    # A floor keeps a noise-free (constant) remote region from dividing by zero.
    return max(float(values.std()), 1e-6 * max(float(np.abs(values).max()), 1.0))


def _remote_noise(
    image: np.ndarray, myocardium: np.ndarray, cavity: np.ndarray, remote_sd: float
) -> float:
    if math.isnan(remote_sd):
        return math.nan
    reference = float(np.percentile(image[myocardium | cavity], 99))
    return remote_sd / reference if reference > 0 else math.nan


def _edge_sharpness(
    image: np.ndarray, myocardium: np.ndarray, scar: np.ndarray, contrast: float
) -> float:
    border = ndimage.binary_dilation(scar) & ~ndimage.binary_erosion(scar) & myocardium
    if not border.any() or abs(contrast) < 1e-12:
        return math.nan
    gradient = ndimage.gaussian_gradient_magnitude(image.astype(np.float64), sigma=1.0)
    return float(gradient[border].mean() / abs(contrast))


def _rater_disagreement(masks: list[np.ndarray]) -> float:
    if len(masks) < 2:
        return math.nan
    dice = [_dice(first, second) for first, second in itertools.combinations(masks, 2)]
    return 1.0 - float(np.mean(dice))


def _dice(first: np.ndarray, second: np.ndarray) -> float:
    total = int(first.sum()) + int(second.sum())
    if total == 0:
        return 1.0
    return 2.0 * int((first & second).sum()) / total


def _parse_thresholds(value: str | None) -> tuple[float, float] | None:
    if value is None:
        return None
    try:
        low, high = (float(part) for part in value.split(","))
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not two comma-separated numbers, e.g. 0.4,0.6"
        ) from None
    return low, high


# --- command line -------------------------------------------------------------------------


@click.command("difficulty")
@click.argument("dataset")
@click.option(
    "--thresholds",
    default=None,
    help="Two score cut points t1,t2 in [0, 1] [default: the descriptor's, else the tertiles].",
)
def difficulty_command(dataset: str, thresholds: str | None) -> None:
    """Estimate per-slice difficulty of DATASET and write it into its manifest.

    Expert levels are kept; the estimate of every slice is also stored in
    `difficulty_estimated`, with its score and features.
    """
    frame = estimate_difficulty(dataset, thresholds=_parse_thresholds(thresholds))
    counts = frame["difficulty"].astype(int).value_counts().sort_index()
    click.echo(f"{len(frame)} slices; levels " + ", ".join(f"{k}: {v}" for k, v in counts.items()))

    expert = frame["difficulty_source"] == "expert"
    if expert.any():
        agreement = level_agreement(
            frame.loc[expert, "difficulty"].astype(int), frame.loc[expert, "difficulty_estimated"]
        )
        click.echo(
            f"expert levels kept on {int(expert.sum())} slices; Cohen's kappa of the estimate "
            f"{agreement['kappa']:.2f} (95% CI {agreement['kappa_low']:.2f} to "
            f"{agreement['kappa_high']:.2f}), linear-weighted {agreement['kappa_linear']:.2f}"
        )

"""Synthetic LGE short-axis phantoms with known scar and documented difficulty.

Example:
    >>> from bench.data.synthetic import write_synthetic_dataset
    >>> descriptor = write_synthetic_dataset("data/phantoms", patients=40, seed=0)  # doctest: +SKIP
    >>> descriptor.name  # doctest: +SKIP
    'dataset.yaml'

Each patient is a stack of short-axis slices from base to apex. A slice has a
blood pool, an elliptical LV myocardium ring, a right-ventricular cavity,
surrounding tissue and, unless the slice is scar-free, scar in one of these
patterns: ischemic (subendocardial to transmural inside one coronary
territory), mid-wall stripe, epicardial, or patchy. The acquisition is then
simulated: blur, a multiplicative bias field and Rician noise.

Difficulty comes from eight knobs, drawn per slice from one latent hardness
``h`` in [0, 1] plus independent jitter (see ``KNOB_RANGES``). Each knob is
mapped linearly onto [0, 1] between its easy and its hard end. The
generator's score is the mean of these values over the knobs that apply, and
scar-free slices use only noise, blur, bias and blood-pool brightness. The
level is 0 below 1/3, 1 below 2/3 and 2 otherwise. The generator is the
expert here, so the manifest stores these levels with
``difficulty_source=expert``.

Label noise models inter-observer variability: each simulated rater shifts
the scar boundary by a smooth random field and misses faint scar. Rater 1 is
the ``labels`` map; raters 2 and 3 are ``scar_rater2`` and ``scar_rater3``;
the noise-free truth is ``scar_clean``.

Files: one 3D NIfTI per patient and per map (slices along the last axis), a
manifest with one row per slice (``slice`` column) and a descriptor YAML. The
same arguments give the same bytes.
"""

from __future__ import annotations

import gzip
import logging
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import click
import nibabel as nib
import numpy as np
import pandas as pd
from scipy import ndimage

from bench import fileio
from bench.errors import ConfigError

__all__ = [
    "KNOB_RANGES",
    "SITES",
    "SliceKnobs",
    "PhantomSlice",
    "generator_score",
    "level_from_score",
    "render_slice",
    "write_synthetic_dataset",
    "synth_command",
]

logger = logging.getLogger(__name__)

# Knob → (easy end, hard end). A slice's knob value is easy + (hard - easy) * h_k
# with h_k = clip(h + N(0, KNOB_JITTER), 0, 1).
KNOB_RANGES: dict[str, tuple[float, float]] = {
    "scar_contrast": (0.90, 0.30),  # scar minus nulled-myocardium intensity
    "blood_to_scar_ratio": (0.45, 0.95),  # blood-pool / scar intensity (washout)
    "noise_sigma": (0.02, 0.13),  # Rician noise sigma, same units as intensities
    "blur_sigma_px": (0.4, 1.8),  # Gaussian point-spread sigma in pixels
    "bias_amplitude": (0.05, 0.40),  # peak relative deviation of the bias field
    "scar_extent": (1.0, 0.35),  # scale of angular width and transmurality
    "fragmentation": (0.0, 0.8),  # share of the scar broken away into islands
    "label_noise": (0.05, 0.45),  # amplitude of the raters' boundary shifts
}
KNOB_JITTER = 0.12
ACQUISITION_KNOBS = ("noise_sigma", "blur_sigma_px", "bias_amplitude", "blood_to_scar_ratio")

# Simulated acquisition settings per site, applied on top of the slice knobs.
SITES: dict[str, dict[str, float | str]] = {
    "site_a": {"scanner": "1.5T_a", "spacing_mm": 1.40, "noise_factor": 1.0, "bias_offset": 0.0},
    "site_b": {"scanner": "3T_b", "spacing_mm": 1.25, "noise_factor": 0.8, "bias_offset": 0.08},
    "site_c": {"scanner": "1.5T_c", "spacing_mm": 1.60, "noise_factor": 1.2, "bias_offset": 0.0},
}

# Pattern probabilities per patient; a diseased patient has scar on a slice
# with probability SCAR_SLICE_PROBABILITY.
PATIENT_PATTERNS = {
    "ischemic": 0.5,
    "midwall": 0.12,
    "epicardial": 0.12,
    "patchy": 0.11,
    "none": 0.15,
}
SCAR_SLICE_PROBABILITY = 0.85

# Coronary territories as angle ranges in degrees: 0 = lateral (image right),
# 90 = anterior (image top), 180 = septal (image left), 270 = inferior.
TERRITORIES = {"lad": (45.0, 180.0), "rca": (180.0, 300.0), "lcx": (-60.0, 45.0)}

# Intensities before the bias field and noise.
MYOCARDIUM_INTENSITY = 0.06
TISSUE_INTENSITY = 0.22
FAT_INTENSITY = 0.55
SLICE_THICKNESS_MM = 10.0

LABEL_BLOOD_POOL = 1
LABEL_MYOCARDIUM = 2
LABEL_SCAR = 3
RATERS = 3
MIN_SCAR_PIXELS = 4


@dataclass(frozen=True)
class SliceKnobs:
    """The difficulty knobs of one slice (see ``KNOB_RANGES`` for units)."""

    scar_contrast: float
    blood_to_scar_ratio: float
    noise_sigma: float
    blur_sigma_px: float
    bias_amplitude: float
    scar_extent: float
    fragmentation: float
    label_noise: float


@dataclass
class PhantomSlice:
    """One rendered slice: the image, the label map of rater 1 and the other masks.

    Attributes:
        image: ``(S, S)`` float32 magnitude image.
        labels: ``(S, S)`` uint8, 0 background, 1 blood pool, 2 myocardium, 3 scar.
        scar_clean: ``(S, S)`` bool, the noise-free scar.
        scar_raters: bool masks of raters 2, 3, … (rater 1 is in ``labels``).
        pattern: ``"ischemic"``, ``"midwall"``, ``"epicardial"``, ``"patchy"`` or ``"none"``.
    """

    image: np.ndarray
    labels: np.ndarray
    scar_clean: np.ndarray
    scar_raters: list[np.ndarray]
    pattern: str


def generator_score(knobs: SliceKnobs, has_scar: bool) -> float:
    """Return the generator's difficulty score in [0, 1]: the mean normalised knob.

    Each knob is mapped linearly from its easy end (0) to its hard end (1) in
    ``KNOB_RANGES`` and clipped. Scar-free slices average only the
    acquisition knobs (noise, blur, bias, blood-pool brightness).
    """
    names = KNOB_RANGES if has_scar else ACQUISITION_KNOBS
    values = knobs.__dict__
    hardness = [_normalise_knob(name, values[name]) for name in names]
    return float(np.mean(hardness))


def level_from_score(score: float) -> int:
    """Cut a generator score into a level: 0 below 1/3, 1 below 2/3, else 2."""
    if score < 1 / 3:
        return 0
    if score < 2 / 3:
        return 1
    return 2


def render_slice(
    rng: np.random.Generator,
    knobs: SliceKnobs,
    geometry: dict[str, float],
    pattern: str,
    size: int = 128,
) -> PhantomSlice:
    """Render one slice from its knobs, ring geometry and scar pattern.

    Args:
        rng: the random generator that draws textures, scar shapes and noise.
        knobs: difficulty knobs of the slice.
        geometry: ``centre_row``, ``centre_col``, ``endo_radius_px``,
            ``thickness_px``, ``axis_ratio``, ``rotation_rad``, and for
            scar patterns ``scar_angle_deg``, ``scar_half_width_deg`` and
            ``transmurality``.
        pattern: scar pattern, or ``"none"`` for a scar-free slice.
        size: image side in pixels.

    Returns:
        The rendered slice with its masks.
    """
    grid = _ring_coordinates(geometry, size)
    myocardium = (grid["depth"] >= 0) & (grid["depth"] <= 1)
    blood_pool = grid["depth"] < 0

    scar_clean, modulation = _draw_scar(rng, pattern, knobs, geometry, grid, myocardium)
    if scar_clean.sum() < MIN_SCAR_PIXELS:
        scar_clean[:] = False
        pattern = "none"

    image = _draw_anatomy(
        rng, knobs, geometry, grid, myocardium, blood_pool, scar_clean, modulation
    )
    image = _acquire(rng, image, knobs)

    raters = [_rater_mask(rng, scar_clean, modulation, myocardium, knobs) for _ in range(RATERS)]
    labels = np.zeros((size, size), dtype=np.uint8)
    labels[blood_pool] = LABEL_BLOOD_POOL
    labels[myocardium] = LABEL_MYOCARDIUM
    labels[raters[0]] = LABEL_SCAR
    return PhantomSlice(image.astype(np.float32), labels, scar_clean, raters[1:], pattern)


def write_synthetic_dataset(
    out: str | os.PathLike,
    patients: int = 40,
    seed: int = 0,
    slices_per_patient: int = 6,
    size: int = 128,
    name: str = "synthetic",
) -> Path:
    """Write a phantom dataset: NIfTI volumes, ``manifest.csv`` and ``dataset.yaml``.

    Args:
        out: output folder; created if missing, existing files are replaced.
        patients: number of simulated patients.
        seed: random seed; the same arguments give the same bytes.
        slices_per_patient: short-axis slices per patient, base to apex.
        size: image side in pixels.
        name: dataset name written into the descriptor.

    Returns:
        Path of the descriptor YAML.

    Raises:
        ConfigError: a count or size is out of range.
    """
    _check_arguments(patients, slices_per_patient, size)
    out = Path(out)
    rows: list[dict] = []
    for patient_index in range(patients):
        rows.extend(_write_patient(out, patient_index, seed, slices_per_patient, size))

    manifest = pd.DataFrame(rows)
    fileio.write_csv(out / "manifest.csv", manifest)
    descriptor = _write_descriptor_yaml(out, name, patients, seed, slices_per_patient, size)

    counts = manifest["difficulty"].value_counts().sort_index().to_dict()
    logger.info("wrote %d phantom slices to %s; levels %s", len(manifest), out, counts)
    return descriptor


# --- patients -----------------------------------------------------------------------------


def _write_patient(
    out: Path, patient_index: int, seed: int, slices_per_patient: int, size: int
) -> list[dict]:
    rng = np.random.default_rng([seed, patient_index])
    patient_id = f"P{patient_index:03d}"
    site = list(SITES)[int(rng.integers(len(SITES)))]
    pattern = str(rng.choice(list(PATIENT_PATTERNS), p=list(PATIENT_PATTERNS.values())))
    anatomy = _draw_patient_anatomy(rng, size)

    # Stratified latent hardness: one value in each 1/n band, shuffled over slices.
    hardness = (
        rng.permutation(slices_per_patient) + rng.random(slices_per_patient)
    ) / slices_per_patient

    slices, rows = [], []
    for k in range(slices_per_patient):
        has_scar = pattern != "none" and rng.random() < SCAR_SLICE_PROBABILITY
        knobs = _draw_knobs(rng, float(hardness[k]), site)
        geometry = _slice_geometry(rng, anatomy, k, slices_per_patient, knobs)
        phantom = render_slice(rng, knobs, geometry, pattern if has_scar else "none", size)
        slices.append(phantom)
        rows.append(_manifest_row(patient_id, k, site, knobs, phantom, anatomy))

    _write_volumes(out, patient_id, slices, float(SITES[site]["spacing_mm"]))
    return rows


def _draw_patient_anatomy(rng: np.random.Generator, size: int) -> dict[str, float]:
    territory = str(rng.choice(list(TERRITORIES)))
    low, high = TERRITORIES[territory]
    return {
        "centre_row": size / 2 + rng.normal(0, size / 40),
        "centre_col": size / 2 + rng.normal(0, size / 40),
        "endo_radius_px": rng.uniform(0.11, 0.16) * size,
        "thickness_px": rng.uniform(0.045, 0.065) * size,
        "axis_ratio": rng.uniform(0.78, 1.0),
        "rotation_rad": rng.uniform(0, math.pi),
        "territory": territory,
        "scar_angle_deg": rng.uniform(low, high),
        "transmurality": rng.uniform(0.3, 1.0),
    }


def _draw_knobs(rng: np.random.Generator, hardness: float, site: str) -> SliceKnobs:
    values = {}
    for name, (easy, hard) in KNOB_RANGES.items():
        knob_hardness = float(np.clip(hardness + rng.normal(0, KNOB_JITTER), 0, 1))
        values[name] = easy + (hard - easy) * knob_hardness

    settings = SITES[site]
    values["noise_sigma"] *= float(settings["noise_factor"])
    values["bias_amplitude"] += float(settings["bias_offset"])
    return SliceKnobs(**values)


def _slice_geometry(
    rng: np.random.Generator, anatomy: dict, k: int, slices_per_patient: int, knobs: SliceKnobs
) -> dict[str, float]:
    # The ring shrinks from base to apex.
    apex_fraction = k / max(slices_per_patient - 1, 1)
    scale = 1.0 - 0.35 * apex_fraction
    geometry = {key: value for key, value in anatomy.items() if key != "territory"}
    geometry["endo_radius_px"] = anatomy["endo_radius_px"] * scale
    geometry["thickness_px"] = anatomy["thickness_px"] * (1.0 - 0.15 * apex_fraction)
    geometry["scar_angle_deg"] = anatomy["scar_angle_deg"] + rng.normal(0, 8)
    geometry["scar_half_width_deg"] = knobs.scar_extent * rng.uniform(40, 80)
    geometry["transmurality"] = float(
        np.clip(anatomy["transmurality"] * (0.6 + 0.4 * knobs.scar_extent), 0.2, 1.0)
    )
    return geometry


def _manifest_row(
    patient_id: str, k: int, site: str, knobs: SliceKnobs, phantom: PhantomSlice, anatomy: dict
) -> dict:
    has_scar = bool(phantom.scar_clean.any())
    score = generator_score(knobs, has_scar)
    myocardium_pixels = int((phantom.labels >= LABEL_MYOCARDIUM).sum())
    row = {
        "case_id": f"{patient_id}_s{k:02d}",
        "patient_id": patient_id,
        "image": f"images/{patient_id}.nii.gz",
        "labels": f"labels/{patient_id}.nii.gz",
        "slice": k,
        "difficulty": level_from_score(score),
        "difficulty_source": "expert",
        "site": site,
        "scanner": SITES[site]["scanner"],
        "scar_clean": f"scar_clean/{patient_id}.nii.gz",
    }
    for rater in range(2, RATERS + 1):
        row[f"scar_rater{rater}"] = f"scar_rater{rater}/{patient_id}.nii.gz"
    row["pattern"] = phantom.pattern
    row["territory"] = anatomy["territory"] if phantom.pattern == "ischemic" else ""
    row["burden_clean_percent"] = round(100.0 * phantom.scar_clean.sum() / myocardium_pixels, 3)
    row.update({name: round(value, 4) for name, value in asdict(knobs).items()})
    row["generator_score"] = round(score, 4)
    return row


# --- geometry and scar patterns -----------------------------------------------------------


def _ring_coordinates(geometry: dict[str, float], size: int) -> dict[str, np.ndarray]:
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float64)
    dy = rows - geometry["centre_row"]
    dx = cols - geometry["centre_col"]
    cos, sin = math.cos(geometry["rotation_rad"]), math.sin(geometry["rotation_rad"])
    u = dx * cos + dy * sin
    v = (-dx * sin + dy * cos) / geometry["axis_ratio"]
    radius = np.hypot(u, v)
    # Depth: 0 at the endocardium, 1 at the epicardium, negative inside the cavity.
    depth = (radius - geometry["endo_radius_px"]) / geometry["thickness_px"]
    angle_deg = np.degrees(np.arctan2(-dy, dx))
    return {"rows": rows, "cols": cols, "depth": depth, "angle_deg": angle_deg, "radius": radius}


def _draw_scar(
    rng: np.random.Generator,
    pattern: str,
    knobs: SliceKnobs,
    geometry: dict[str, float],
    grid: dict[str, np.ndarray],
    myocardium: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    shape = myocardium.shape
    # Smooth enhancement modulation in [0.55, 1]: low values are the faint border zone.
    modulation = 0.55 + 0.45 * _unit_field(rng, shape, sigma_px=3.0)
    if pattern == "none":
        return np.zeros(shape, dtype=bool), modulation

    depth = grid["depth"]
    offset = _angle_difference(grid["angle_deg"], geometry.get("scar_angle_deg", 0.0))
    half_width = geometry.get("scar_half_width_deg", 45.0)
    within = np.abs(offset) <= half_width
    taper = np.clip(1 - (offset / max(half_width, 1e-6)) ** 2, 0, 1)

    if pattern == "ischemic":
        reach = geometry["transmurality"] * (0.4 + 0.6 * taper)
        scar = within & (depth <= reach)
    elif pattern == "midwall":
        scar = _stripe(grid, rng, knobs, centre_deg=180.0, depth_range=(0.3, 0.7))
    elif pattern == "epicardial":
        scar = _stripe(grid, rng, knobs, centre_deg=-30.0, depth_range=(0.55, 1.0))
    elif pattern == "patchy":
        scar = _patches(rng, grid, myocardium, knobs)
    else:
        raise ConfigError(f"unknown scar pattern {pattern!r}; use one of {list(PATIENT_PATTERNS)}")

    scar &= myocardium
    scar = _fragment(rng, scar, knobs.fragmentation)
    return scar, modulation


def _stripe(
    grid: dict[str, np.ndarray],
    rng: np.random.Generator,
    knobs: SliceKnobs,
    centre_deg: float,
    depth_range: tuple[float, float],
) -> np.ndarray:
    centre = centre_deg + rng.normal(0, 20)
    half_width = knobs.scar_extent * rng.uniform(30, 70)
    offset = _angle_difference(grid["angle_deg"], centre)
    wobble = 0.08 * np.sin(np.radians(offset) * 3 + rng.uniform(0, 2 * math.pi))
    low, high = depth_range
    depth = grid["depth"] + wobble
    return (np.abs(offset) <= half_width) & (depth >= low) & (depth <= high)


def _patches(
    rng: np.random.Generator, grid: dict[str, np.ndarray], myocardium: np.ndarray, knobs: SliceKnobs
) -> np.ndarray:
    candidates = np.argwhere(myocardium)
    scar = np.zeros(myocardium.shape, dtype=bool)
    count = int(rng.integers(2, 6))
    for index in rng.choice(len(candidates), size=min(count, len(candidates)), replace=False):
        row, col = candidates[index]
        radius_px = (1.5 + 2.0 * rng.random()) * (0.5 + 0.5 * knobs.scar_extent)
        scar |= np.hypot(grid["rows"] - row, grid["cols"] - col) <= radius_px
    return scar


def _fragment(rng: np.random.Generator, scar: np.ndarray, fragmentation: float) -> np.ndarray:
    # Break the scar into islands by removing the low part of a smooth random field.
    if fragmentation < 0.05 or not scar.any():
        return scar
    field = _unit_field(rng, scar.shape, sigma_px=2.0)
    kept = scar & (field > np.quantile(field[scar], 0.6 * fragmentation))
    return kept if kept.sum() >= MIN_SCAR_PIXELS else scar


def _angle_difference(angle_deg: np.ndarray, centre_deg: float) -> np.ndarray:
    return (angle_deg - centre_deg + 180.0) % 360.0 - 180.0


# --- image formation ----------------------------------------------------------------------


def _draw_anatomy(
    rng: np.random.Generator,
    knobs: SliceKnobs,
    geometry: dict[str, float],
    grid: dict[str, np.ndarray],
    myocardium: np.ndarray,
    blood_pool: np.ndarray,
    scar: np.ndarray,
    modulation: np.ndarray,
) -> np.ndarray:
    size = myocardium.shape[0]
    scar_intensity = MYOCARDIUM_INTENSITY + knobs.scar_contrast
    blood_intensity = knobs.blood_to_scar_ratio * scar_intensity

    body = (
        np.hypot(
            (grid["rows"] - size / 2) / (0.46 * size), (grid["cols"] - size / 2) / (0.40 * size)
        )
        <= 1
    )
    image = np.where(body, TISSUE_INTENSITY * (0.8 + 0.4 * _unit_field(rng, body.shape, 4.0)), 0.0)

    # Right-ventricular cavity on the septal (image left) side, and epicardial fat.
    outer = geometry["endo_radius_px"] + geometry["thickness_px"]
    rv_centre_col = geometry["centre_col"] - 1.6 * outer
    rv = (
        np.hypot(
            (grid["rows"] - geometry["centre_row"]) / (1.0 * outer),
            (grid["cols"] - rv_centre_col) / (0.6 * outer),
        )
        <= 1
    )
    image[rv & ~myocardium] = blood_intensity
    fat = (grid["depth"] > 1.0) & (grid["depth"] < 1.35)
    fat &= np.abs(_angle_difference(grid["angle_deg"], 120.0 + rng.normal(0, 20))) < 30
    image[fat] = FAT_INTENSITY

    image[blood_pool] = blood_intensity
    image[myocardium] = MYOCARDIUM_INTENSITY
    image[scar] = MYOCARDIUM_INTENSITY + knobs.scar_contrast * modulation[scar]
    return image


def _acquire(rng: np.random.Generator, image: np.ndarray, knobs: SliceKnobs) -> np.ndarray:
    blurred = ndimage.gaussian_filter(image, knobs.blur_sigma_px)
    biased = blurred * _bias_field(rng, image.shape, knobs.bias_amplitude)
    # Rician noise: the magnitude of a complex signal with Gaussian noise in both channels.
    real = biased + rng.normal(0, knobs.noise_sigma, image.shape)
    imaginary = rng.normal(0, knobs.noise_sigma, image.shape)
    return np.hypot(real, imaginary)


def _bias_field(rng: np.random.Generator, shape: tuple[int, int], amplitude: float) -> np.ndarray:
    rows, cols = np.meshgrid(
        np.linspace(-1, 1, shape[0]), np.linspace(-1, 1, shape[1]), indexing="ij"
    )
    a, b, c = rng.normal(0, 1, 3)
    field = a * rows + b * cols + c * rows * cols
    field /= max(np.abs(field).max(), 1e-9)
    return 1.0 + amplitude * field


def _rater_mask(
    rng: np.random.Generator,
    scar_clean: np.ndarray,
    modulation: np.ndarray,
    myocardium: np.ndarray,
    knobs: SliceKnobs,
) -> np.ndarray:
    if not scar_clean.any():
        return scar_clean.copy()

    # Boundary shift: threshold a smoothed mask plus a smooth random field and a
    # per-rater bias towards drawing larger or smaller outlines.
    soft = ndimage.gaussian_filter(scar_clean.astype(np.float64), 1.0)
    shift = rng.normal(0, 0.3 * knobs.label_noise)
    field = 2 * _unit_field(rng, scar_clean.shape, sigma_px=2.0) - 1
    drawn = soft + knobs.label_noise * field + shift > 0.5

    # Faint scar (low enhancement) is missed more often when label noise is high.
    faint_threshold = 0.55 + knobs.label_noise * rng.uniform(0.3, 0.7)
    drawn &= ~(scar_clean & (modulation < faint_threshold))
    return drawn & myocardium


def _unit_field(rng: np.random.Generator, shape: tuple[int, int], sigma_px: float) -> np.ndarray:
    """Smooth random field rescaled to [0, 1]."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma_px)
    low, high = field.min(), field.max()
    return (field - low) / max(high - low, 1e-12)


def _normalise_knob(name: str, value: float) -> float:
    easy, hard = KNOB_RANGES[name]
    return float(np.clip((value - easy) / (hard - easy), 0.0, 1.0))


# --- files --------------------------------------------------------------------------------


def _write_volumes(
    out: Path, patient_id: str, slices: list[PhantomSlice], spacing_mm: float
) -> None:
    affine = np.diag([spacing_mm, spacing_mm, SLICE_THICKNESS_MM, 1.0])
    volumes = {
        "images": np.stack([s.image for s in slices], axis=-1),
        "labels": np.stack([s.labels for s in slices], axis=-1),
        "scar_clean": np.stack([s.scar_clean for s in slices], axis=-1).astype(np.uint8),
    }
    for rater in range(2, RATERS + 1):
        volumes[f"scar_rater{rater}"] = np.stack(
            [s.scar_raters[rater - 2] for s in slices], axis=-1
        ).astype(np.uint8)
    for folder, volume in volumes.items():
        _write_nifti(out / folder / f"{patient_id}.nii.gz", volume, affine)


def _write_nifti(path: Path, volume: np.ndarray, affine: np.ndarray) -> None:
    image = nib.Nifti1Image(volume, affine)
    image.header.set_xyzt_units("mm")
    # gzip with mtime=0 so that the same volume gives the same bytes.
    payload = gzip.compress(image.to_bytes(), compresslevel=1, mtime=0)
    fileio.atomic_write(path, lambda stream: stream.write(payload))


def _write_descriptor_yaml(
    out: Path, name: str, patients: int, seed: int, slices_per_patient: int, size: int
) -> Path:
    from bench.data.manifest import write_descriptor

    citation = (
        "scarbench synthetic LGE phantoms "
        f"(patients={patients}, slices_per_patient={slices_per_patient}, size={size}, seed={seed})"
    )
    return write_descriptor(
        out / "dataset.yaml",
        name=name,
        manifest=out / "manifest.csv",
        myocardium_labels=(LABEL_MYOCARDIUM, LABEL_SCAR),
        scar_labels=(LABEL_SCAR,),
        other_labels=(LABEL_BLOOD_POOL,),
        citation=citation,
        licence="Apache-2.0 (generated data)",
    )


def _check_arguments(patients: int, slices_per_patient: int, size: int) -> None:
    if patients < 1:
        raise ConfigError(f"--patients must be at least 1, got {patients}")
    if slices_per_patient < 1:
        raise ConfigError(f"--slices-per-patient must be at least 1, got {slices_per_patient}")
    if size < 48:
        raise ConfigError(f"--size must be at least 48 pixels so that the ring fits, got {size}")


# --- command line -------------------------------------------------------------------------


@click.command("synth")
@click.option(
    "--out", "out", required=True, type=click.Path(file_okay=False), help="Output folder."
)
@click.option("--patients", default=40, show_default=True, help="Number of simulated patients.")
@click.option("--seed", default=0, show_default=True, help="Random seed; same seed, same bytes.")
@click.option(
    "--slices-per-patient", default=6, show_default=True, help="Short-axis slices per patient."
)
@click.option("--size", default=128, show_default=True, help="Image side in pixels.")
def synth_command(out: str, patients: int, seed: int, slices_per_patient: int, size: int) -> None:
    """Write a synthetic LGE phantom dataset (NIfTI volumes, manifest.csv, dataset.yaml)."""
    descriptor = write_synthetic_dataset(out, patients, seed, slices_per_patient, size)
    click.echo(f"wrote {patients * slices_per_patient} slices; descriptor {descriptor}")

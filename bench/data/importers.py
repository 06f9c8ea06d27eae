"""Make a manifest and descriptor from EMIDEC or from an nnU-Net raw dataset.

Example:
    >>> from bench.data.importers import import_emidec
    >>> result = import_emidec("/data/emidec", "data/emidec", scar_only=True)  # doctest: +SKIP
    >>> result.slices, result.skipped_empty_myocardium  # doctest: +SKIP
    (394, 0)

Both importers write one manifest row per 2D slice, with paths relative to the
manifest's folder, and skip slices whose myocardium is empty (counted in the
result). Images stay where they are; nothing is copied. Unless
``estimate_difficulty`` is False, the importers then estimate each slice's difficulty
(``bench.data.difficulty``), so every imported slice has one.

EMIDEC is accepted in two layouts:

- the original release: ``Case_<id>/Images/Case_<id>.nii.gz`` and
  ``Case_<id>/Contours/Case_<id>.nii.gz``, 3D volumes with the short-axis
  slices along the last axis;
- PNG slices: ``images/Case_<id>_slice<k>.png`` and ``labels/`` with the same
  names.

EMIDEC labels: 0 background, 1 blood pool, 2 healthy myocardium, 3 infarct,
4 microvascular obstruction. Myocardium is {2, 3, 4} and scar is {3, 4}.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import click
import numpy as np
import pandas as pd

from bench import fileio
from bench.data.readers import read_label_map
from bench.errors import ConfigError, DataError, ManifestError

__all__ = [
    "ImportResult",
    "EMIDEC_CITATION",
    "EMIDEC_LICENCE",
    "import_emidec",
    "import_nnunet",
    "detect_emidec_layout",
    "import_group",
]

logger = logging.getLogger(__name__)

EMIDEC_CITATION = (
    "Lalande A, Chen Z, Decourselle T, et al. Emidec: A Database Usable for the "
    "Automatic Evaluation of Myocardial Infarction from Delayed-Enhancement Cardiac MRI. "
    "Data 2020, 5(4):89. doi:10.3390/data5040089"
)
EMIDEC_LICENCE = "CC BY-NC-SA 4.0"
EMIDEC_MYOCARDIUM_LABELS = (2, 3, 4)
EMIDEC_SCAR_LABELS = (3, 4)
EMIDEC_OTHER_LABELS = (1,)
EMIDEC_ALLOWED_LABELS = {0, 1, 2, 3, 4}

PNG_NAME = re.compile(r"^(Case_[A-Za-z0-9]+)_slice(\d+)\.png$")
CASE_FOLDER = re.compile(r"^Case_[A-Za-z0-9]+$")
EMIDEC_EXPECTED = (
    "either the original release layout (Case_<id>/Images/Case_<id>.nii.gz and "
    "Case_<id>/Contours/Case_<id>.nii.gz) or the PNG slice layout (images/ and labels/ "
    "holding Case_<id>_slice<k>.png)"
)


@dataclass(frozen=True)
class ImportResult:
    """Summary of one import.

    Attributes:
        descriptor_path: the descriptor YAML.
        manifest_path: the manifest CSV.
        slices: manifest rows written.
        skipped_empty_myocardium: slices left out because their myocardium is empty.
        skipped_without_scar: slices left out by ``scar_only``.
    """

    descriptor_path: Path
    manifest_path: Path
    slices: int
    skipped_empty_myocardium: int
    skipped_without_scar: int


def import_emidec(
    source: str | os.PathLike,
    out: str | os.PathLike,
    *,
    scar_only: bool = False,
    name: str = "emidec",
    estimate_difficulty: bool = True,
) -> ImportResult:
    """Write ``<out>/<name>.csv`` and ``<out>/<name>.yaml`` for an EMIDEC folder.

    Args:
        source: the EMIDEC folder, in either layout (see the module docstring).
        out: output folder for the manifest and descriptor.
        scar_only: keep only slices that contain scar (labels 3 or 4).
        name: dataset name; also the stem of the written files.
        estimate_difficulty: run ``bench.data.difficulty.estimate_difficulty``
            on the new dataset, so that every slice has a level.

    Raises:
        ManifestError: ``source`` matches neither layout, or a case has
            images but no contours.
        DataError: a label file contains values other than 0–4.
    """
    source = Path(source)
    layout = detect_emidec_layout(source)
    slices = _emidec_png_slices(source) if layout == "png" else _emidec_nifti_slices(source)

    rows, skipped_empty, skipped_no_scar = [], 0, 0
    for entry in slices:
        myocardium_pixels, scar_pixels = _count_pixels(
            entry["labels"],
            entry["slice"],
            EMIDEC_ALLOWED_LABELS,
            EMIDEC_MYOCARDIUM_LABELS,
            EMIDEC_SCAR_LABELS,
        )
        if myocardium_pixels == 0:
            skipped_empty += 1
            continue
        if scar_only and scar_pixels == 0:
            skipped_no_scar += 1
            continue
        rows.append(
            {**entry, "group": "infarct" if entry["patient_id"].startswith("Case_P") else "normal"}
        )

    return _write_dataset(
        rows,
        Path(out),
        name=name,
        myocardium_labels=EMIDEC_MYOCARDIUM_LABELS,
        scar_labels=EMIDEC_SCAR_LABELS,
        other_labels=EMIDEC_OTHER_LABELS,
        citation=EMIDEC_CITATION,
        licence=EMIDEC_LICENCE,
        skipped=(skipped_empty, skipped_no_scar),
        estimate_difficulty=estimate_difficulty,
    )


def import_nnunet(
    source: str | os.PathLike,
    out: str | os.PathLike,
    *,
    myocardium_labels: Iterable[int],
    scar_labels: Iterable[int],
    scar_only: bool = False,
    name: str | None = None,
    estimate_difficulty: bool = True,
) -> ImportResult:
    """Write a manifest and descriptor for an nnU-Net raw dataset, one row per slice.

    The dataset folder contains ``dataset.json``, ``imagesTr/<case>_0000<ending>``
    and ``labelsTr/<case><ending>``. Only the first channel (``_0000``) is
    used. 3D volumes give one row per slice along the last axis; nnU-Net
    has no patient concept, so each case is its own patient.

    Args:
        source: the nnU-Net raw dataset folder.
        out: output folder for the manifest and descriptor.
        myocardium_labels: label values whose union is the myocardium.
        scar_labels: label values whose union is the scar.
        scar_only: keep only slices that contain scar.
        name: dataset name; defaults to ``dataset.json``'s ``name`` or the folder name.
        estimate_difficulty: estimate every slice's difficulty after writing.

    Raises:
        ManifestError: ``dataset.json`` is missing or malformed, does not
            declare the named labels, or a label file has no image.
        ConfigError: the scar labels are not a subset of the myocardium labels.
    """
    source = Path(source)
    myocardium_labels = tuple(int(value) for value in myocardium_labels)
    scar_labels = tuple(int(value) for value in scar_labels)
    metadata = _read_dataset_json(source)
    declared = _declared_labels(metadata, source / "dataset.json")
    _check_label_sets(source / "dataset.json", declared, myocardium_labels, scar_labels)

    rows, skipped_empty, skipped_no_scar = [], 0, 0
    for entry in _nnunet_slices(source, metadata.get("file_ending", ".nii.gz")):
        myocardium_pixels, scar_pixels = _count_pixels(
            entry["labels"], entry["slice"], declared, myocardium_labels, scar_labels
        )
        if myocardium_pixels == 0:
            skipped_empty += 1
            continue
        if scar_only and scar_pixels == 0:
            skipped_no_scar += 1
            continue
        rows.append(entry)

    other_labels = tuple(sorted(declared - {0} - set(myocardium_labels) - set(scar_labels)))
    return _write_dataset(
        rows,
        Path(out),
        name=name or str(metadata.get("name") or source.name),
        myocardium_labels=myocardium_labels,
        scar_labels=scar_labels,
        other_labels=other_labels,
        citation=str(metadata.get("reference", "")),
        licence=str(metadata.get("licence", metadata.get("license", ""))),
        skipped=(skipped_empty, skipped_no_scar),
        estimate_difficulty=estimate_difficulty,
    )


def detect_emidec_layout(source: Path) -> str:
    """Return ``"png"`` or ``"nifti"`` for an EMIDEC folder.

    Raises:
        ManifestError: the folder is missing or matches neither layout.
    """
    if not source.is_dir():
        raise ManifestError(f"{source}: EMIDEC folder not found; expected {EMIDEC_EXPECTED}")
    if (source / "images").is_dir() and (source / "labels").is_dir():
        if any(PNG_NAME.match(path.name) for path in (source / "images").iterdir()):
            return "png"
    if any(
        CASE_FOLDER.match(path.name) and (path / "Images").is_dir() for path in source.iterdir()
    ):
        return "nifti"
    raise ManifestError(f"{source}: not an EMIDEC folder; expected {EMIDEC_EXPECTED}")


# --- EMIDEC layouts -----------------------------------------------------------------------


def _emidec_png_slices(source: Path) -> list[dict]:
    entries = []
    for image_path in sorted((source / "images").iterdir()):
        match = PNG_NAME.match(image_path.name)
        if match is None:
            logger.debug("ignoring %s: not named Case_<id>_slice<k>.png", image_path)
            continue
        label_path = source / "labels" / image_path.name
        if not label_path.is_file():
            raise ManifestError(
                f"{image_path}: image has no label map {label_path}; "
                "add the label PNG or remove the image"
            )
        entries.append(
            {
                "case_id": image_path.stem,
                "patient_id": match.group(1),
                "image": image_path,
                "labels": label_path,
                "slice": None,
            }
        )
    return entries


def _emidec_nifti_slices(source: Path) -> list[dict]:
    entries = []
    for case_folder in sorted(path for path in source.iterdir() if CASE_FOLDER.match(path.name)):
        case = case_folder.name
        image_path = case_folder / "Images" / f"{case}.nii.gz"
        contour_path = case_folder / "Contours" / f"{case}.nii.gz"
        if not image_path.is_file():
            raise ManifestError(
                f"{case_folder}: missing image volume {image_path}; expected {EMIDEC_EXPECTED}"
            )
        if not contour_path.is_file():
            raise ManifestError(
                f"{case_folder}: has {image_path.name} in Images/ but no contour volume "
                f"{contour_path}; add the contours or remove the case folder"
            )
        for k in range(_slice_count(image_path, contour_path)):
            entries.append(
                {
                    "case_id": f"{case}_slice{k:03d}",
                    "patient_id": case,
                    "image": image_path,
                    "labels": contour_path,
                    "slice": k,
                }
            )
    return entries


# --- nnU-Net ------------------------------------------------------------------------------


def _read_dataset_json(source: Path) -> dict:
    path = source / "dataset.json"
    if not path.is_file():
        raise ManifestError(
            f"{source}: no dataset.json; expected an nnU-Net raw dataset folder with "
            "dataset.json, imagesTr/ and labelsTr/"
        )
    try:
        metadata = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ManifestError(f"{path}: invalid JSON ({error}); fix or regenerate the file") from None
    if not isinstance(metadata, dict) or "labels" not in metadata:
        raise ManifestError(
            f"{path}: no `labels` mapping; nnU-Net's dataset.json declares its labels there"
        )
    return metadata


def _declared_labels(metadata: dict, path: Path) -> set[int]:
    """Return the label values of dataset.json (nnU-Net v2 name→value or v1 value→name)."""
    values: set[int] = set()
    for key, value in metadata["labels"].items():
        candidates = value if isinstance(value, list) else [value]
        if str(key).lstrip("-").isdigit():  # v1: "1": "myocardium"
            candidates = [key]
        for candidate in candidates:
            try:
                values.add(int(candidate))
            except (TypeError, ValueError):
                raise ManifestError(
                    f"{path}: label {key!r} has the non-integer value {value!r}; "
                    "nnU-Net labels are integers"
                ) from None
    return values


def _check_label_sets(
    path: Path, declared: set[int], myocardium_labels: tuple[int, ...], scar_labels: tuple[int, ...]
) -> None:
    missing = sorted((set(myocardium_labels) | set(scar_labels)) - declared)
    if missing:
        raise ManifestError(
            f"{path}: label value(s) {missing} not declared; its labels are {sorted(declared)}; "
            "pass --myocardium-labels and --scar-labels from those"
        )
    if not set(scar_labels) <= set(myocardium_labels):
        raise ConfigError(
            f"scar labels {list(scar_labels)} are not all in the myocardium labels "
            f"{list(myocardium_labels)}; scar lies inside the myocardium, so list them in both"
        )


def _nnunet_slices(source: Path, file_ending: str) -> list[dict]:
    labels_folder, images_folder = source / "labelsTr", source / "imagesTr"
    if not labels_folder.is_dir() or not images_folder.is_dir():
        raise ManifestError(f"{source}: expected imagesTr/ and labelsTr/ beside dataset.json")

    entries = []
    for label_path in sorted(labels_folder.glob(f"*{file_ending}")):
        case = label_path.name[: -len(file_ending)]
        image_path = images_folder / f"{case}_0000{file_ending}"
        if not image_path.is_file():
            raise ManifestError(
                f"{label_path}: no image {image_path}; nnU-Net names the first channel "
                f"<case>_0000{file_ending}"
            )
        depth = _slice_count(image_path, label_path) if file_ending.startswith(".nii") else 0
        for k in range(depth) if depth else [None]:
            case_id = case if k is None else f"{case}_slice{k:03d}"
            entries.append(
                {
                    "case_id": case_id,
                    "patient_id": case,
                    "image": image_path,
                    "labels": label_path,
                    "slice": k,
                }
            )
    if not entries:
        raise ManifestError(f"{labels_folder}: no label files ending in {file_ending!r}")
    return entries


# --- shared helpers -----------------------------------------------------------------------


def _slice_count(image_path: Path, label_path: Path) -> int:
    """Return the number of slices along the last axis (1 for a 2D volume)."""
    import nibabel as nib

    shapes = []
    for path in (image_path, label_path):
        try:
            shapes.append(nib.load(str(path)).shape)
        except Exception as error:  # nibabel raises several unrelated types for bad files
            raise DataError(
                f"{path}: cannot read the NIfTI header ({error}); check the file"
            ) from None
    if shapes[0][:3] != shapes[1][:3]:
        raise DataError(
            f"{label_path}: shape {shapes[1]} differs from the image {image_path} shape "
            f"{shapes[0]}; the label volume must match its image"
        )
    return 1 if len(shapes[0]) < 3 else int(shapes[0][2])


def _count_pixels(
    label_path: Path,
    slice_index: int | None,
    allowed: set[int],
    myocardium_labels: tuple[int, ...],
    scar_labels: tuple[int, ...],
) -> tuple[int, int]:
    # NOTE: each call decompresses the whole label volume; fine for EMIDEC-sized
    # volumes, slow for volumes with hundreds of slices.
    labels = read_label_map(label_path, slice_index=slice_index, allowed=allowed).array
    return int(np.isin(labels, myocardium_labels).sum()), int(np.isin(labels, scar_labels).sum())


def _write_dataset(
    rows: list[dict],
    out: Path,
    *,
    name: str,
    myocardium_labels: tuple[int, ...],
    scar_labels: tuple[int, ...],
    other_labels: tuple[int, ...],
    citation: str,
    licence: str,
    skipped: tuple[int, int],
    estimate_difficulty: bool,
) -> ImportResult:
    from bench.data.manifest import write_descriptor

    if not rows:
        raise DataError(
            f"no slices left to import into {out} ({skipped[0]} with an empty myocardium, "
            f"{skipped[1]} without scar); check the label values"
        )
    out.mkdir(parents=True, exist_ok=True)
    frame = _manifest_frame(rows, out)
    manifest_path = fileio.write_csv(out / f"{name}.csv", frame)
    descriptor_path = write_descriptor(
        out / f"{name}.yaml",
        name=name,
        manifest=manifest_path,
        myocardium_labels=myocardium_labels,
        scar_labels=scar_labels,
        other_labels=other_labels,
        citation=citation,
        licence=licence,
    )
    logger.info(
        "imported %d slices into %s; skipped %d with an empty myocardium and %d without scar",
        len(frame),
        manifest_path,
        *skipped,
    )
    if estimate_difficulty:
        from bench.data.difficulty import estimate_difficulty as estimate

        estimate(descriptor_path)
    return ImportResult(descriptor_path, manifest_path, len(frame), *skipped)


def _manifest_frame(rows: list[dict], out: Path) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    for column in ("image", "labels"):
        frame[column] = [_relative_path(path, out) for path in frame[column]]
    frame["slice"] = pd.array(frame["slice"], dtype="Int64")
    frame["difficulty"] = pd.array([pd.NA] * len(frame), dtype="Int64")
    frame["difficulty_source"] = ""
    frame["site"] = ""
    frame["scanner"] = ""
    return frame


def _relative_path(path: Path, out: Path) -> str:
    return Path(os.path.relpath(Path(path).resolve(), out.resolve())).as_posix()


def _parse_label_list(value: str, option: str) -> tuple[int, ...]:
    try:
        labels = tuple(int(part) for part in value.split(",") if part.strip())
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not a comma-separated list of integers, e.g. 2,3", param_hint=option
        ) from None
    if not labels:
        raise click.BadParameter("give at least one label value, e.g. 2,3", param_hint=option)
    return labels


# --- command line -------------------------------------------------------------------------


@click.group("import")
def import_group() -> None:
    """Make a manifest and descriptor from EMIDEC or an nnU-Net raw dataset."""


@import_group.command("emidec")
@click.argument("source", type=click.Path(path_type=Path))
@click.option(
    "--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Output folder."
)
@click.option(
    "--scar-only", is_flag=True, help="Keep only slices that contain scar (labels 3 or 4)."
)
@click.option("--name", default="emidec", show_default=True, help="Dataset name and file stem.")
@click.option(
    "--no-difficulty", is_flag=True, help="Do not estimate per-slice difficulty after importing."
)
def emidec_command(
    source: Path, out: Path, scar_only: bool, name: str, no_difficulty: bool
) -> None:
    """Import EMIDEC (original NIfTI release or PNG slices) from SOURCE."""
    result = import_emidec(
        source, out, scar_only=scar_only, name=name, estimate_difficulty=not no_difficulty
    )
    _echo_result(result)


@import_group.command("nnunet")
@click.argument("source", type=click.Path(path_type=Path))
@click.option(
    "--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Output folder."
)
@click.option(
    "--myocardium-labels",
    required=True,
    help="Comma-separated label values of the myocardium, e.g. 2,3.",
)
@click.option(
    "--scar-labels", required=True, help="Comma-separated label values of the scar, e.g. 3."
)
@click.option("--scar-only", is_flag=True, help="Keep only slices that contain scar.")
@click.option(
    "--name", default=None, help="Dataset name and file stem [default: dataset.json's name]."
)
@click.option(
    "--no-difficulty", is_flag=True, help="Do not estimate per-slice difficulty after importing."
)
def nnunet_command(
    source: Path,
    out: Path,
    myocardium_labels: str,
    scar_labels: str,
    scar_only: bool,
    name: str | None,
    no_difficulty: bool,
) -> None:
    """Import an nnU-Net raw dataset (dataset.json, imagesTr/, labelsTr/) from SOURCE."""
    result = import_nnunet(
        source,
        out,
        myocardium_labels=_parse_label_list(myocardium_labels, "--myocardium-labels"),
        scar_labels=_parse_label_list(scar_labels, "--scar-labels"),
        scar_only=scar_only,
        name=name,
        estimate_difficulty=not no_difficulty,
    )
    _echo_result(result)


def _echo_result(result: ImportResult) -> None:
    click.echo(
        f"{result.slices} slices → {result.manifest_path}; skipped {result.skipped_empty_myocardium} "
        f"with an empty myocardium and {result.skipped_without_scar} without scar; "
        f"descriptor {result.descriptor_path}"
    )

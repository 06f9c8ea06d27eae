"""Check every file and label of a dataset and report all problems at once.

``bench data validate DATASET`` prints the problems as a table and exits 1
when any of them is an error, 0 otherwise.

Example:
    >>> from bench.data.validate import validate_dataset
    >>> problems = validate_dataset("data_manifests/emidec.yaml")  # doctest: +SKIP
    >>> [problem for problem in problems if problem.severity == "error"]  # doctest: +SKIP
    []

    $ bench data validate data_manifests/emidec.yaml
    708 of 708 slices valid; 0 errors, 0 warnings
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import click
import numpy as np
import pandas as pd

from bench.data.manifest import (
    DatasetDescriptor,
    Problem,
    extra_mask_columns,
    file_columns,
    load_descriptor,
    load_manifest_table,
    manifest_problems,
)
from bench.data.readers import (
    SliceArray,
    check_aligned,
    npz_keys,
    read_array,
    read_binary_mask,
    read_label_map,
)
from bench.errors import DataError, ScarbenchError

__all__ = ["Problem", "ValidationReport", "validate_dataset", "check_dataset", "validate_command"]

logger = logging.getLogger(__name__)


@dataclass
class ValidationReport:
    """The outcome of validating one dataset.

    Attributes:
        dataset: the dataset's name, or the source as given when it did not load.
        problems: every problem found, manifest-level first, then per case.
        case_count: rows in the manifest.
        valid_count: rows with no error and a non-empty myocardium.
    """

    dataset: str
    problems: list[Problem] = field(default_factory=list)
    case_count: int = 0
    valid_count: int = 0

    @property
    def error_count(self) -> int:
        return sum(problem.severity == "error" for problem in self.problems)

    @property
    def warning_count(self) -> int:
        return sum(problem.severity == "warning" for problem in self.problems)

    def to_frame(self) -> pd.DataFrame:
        """Return the problems as a table with columns severity, kind, case_id, path, message."""
        columns = ["severity", "kind", "case_id", "path", "message"]
        return pd.DataFrame([vars(problem) for problem in self.problems], columns=columns)


def validate_dataset(source: str | os.PathLike | DatasetDescriptor) -> list[Problem]:
    """Return every problem of a dataset; an empty list means it is ready to use.

    Problems are missing or unreadable files, shape/spacing/orientation
    mismatches, label values outside the declared set, empty myocardium,
    NaN or infinite pixels, duplicate ``case_id`` and patients with
    conflicting site or scanner. Invalid input is returned as problems, not raised.
    """
    return check_dataset(source).problems


def check_dataset(source: str | os.PathLike | DatasetDescriptor) -> ValidationReport:
    """Validate a dataset and return the problems together with slice counts."""
    try:
        descriptor = load_descriptor(source)
        frame = load_manifest_table(descriptor)
    except ScarbenchError as error:
        problem = Problem("error", "invalid dataset", "", str(source), str(error))
        return ValidationReport(str(source), [problem])

    problems = manifest_problems(frame)
    invalid_cases = {problem.case_id for problem in problems if problem.severity == "error"}

    for _, row in frame.iterrows():
        case_problems = _check_case(descriptor, row)
        problems.extend(case_problems)
        if any(
            problem.severity == "error" or problem.kind == "empty myocardium"
            for problem in case_problems
        ):
            invalid_cases.add(str(row["case_id"]))

    valid = sum(str(case) not in invalid_cases for case in frame["case_id"])
    report = ValidationReport(descriptor.name, problems, len(frame), valid)
    logger.info("%s: %d of %d slices valid", descriptor.name, valid, len(frame))
    return report


# --- per-case checks -----------------------------------------------------------------


def _check_case(descriptor: DatasetDescriptor, row: pd.Series) -> list[Problem]:
    case_id = str(row["case_id"])
    slice_index = None if pd.isna(row["slice"]) else int(row["slice"])
    problems: list[Problem] = []

    missing = _missing_files(row, case_id)
    if missing:
        return missing

    image = _read_image_raw(row["image"], slice_index, case_id, problems)
    masks = _read_masks(descriptor, row, slice_index, case_id, problems)
    if image is None:
        return problems

    for column, mask in masks.items():
        try:
            check_aligned(image, mask)
        except DataError as error:
            problems.append(Problem("error", "shape mismatch", case_id, str(mask.path), str(error)))
            masks[column] = None

    problems.extend(_mask_content_problems(masks, case_id))
    return problems


def _missing_files(row: pd.Series, case_id: str) -> list[Problem]:
    problems = []
    required = [
        column for column in file_columns(row.index) if column not in extra_mask_columns(row.index)
    ]
    for column in file_columns(row.index):
        path = row[column]
        if not path and column in required:
            problems.append(
                Problem(
                    "error",
                    "missing file",
                    case_id,
                    "",
                    f"case {case_id!r} has no `{column}` path; fill it in",
                )
            )
        elif path and not Path(path).is_file():
            problems.append(
                Problem(
                    "error",
                    "missing file",
                    case_id,
                    path,
                    f"{path}: file not found (column `{column}`); paths are relative to the manifest's folder",
                )
            )
    return problems


def _read_image_raw(
    path: str, slice_index, case_id: str, problems: list[Problem]
) -> SliceArray | None:
    try:
        image = read_array(
            path, slice_index=slice_index, key=_key(path, "image"), invert_monochrome1=True
        )
    except DataError as error:
        problems.append(Problem("error", "unreadable file", case_id, path, str(error)))
        return None

    values = np.asarray(image.array, dtype=np.float64)
    bad = int(values.size - np.isfinite(values).sum())
    if bad:
        problems.append(
            Problem(
                "error",
                "NaN/Inf pixels",
                case_id,
                path,
                f"{path}: {bad} NaN or infinite pixel(s) in the image; replace them in the source file",
            )
        )
    return image


def _read_masks(descriptor, row, slice_index, case_id: str, problems: list[Problem]) -> dict:
    """Read each mask column of a row; record unreadable files and invalid values as problems."""
    masks: dict[str, SliceArray | None] = {}
    columns = ["labels"] if "labels" in row.index else ["myocardium", "scar"]
    columns += [column for column in extra_mask_columns(row.index) if row[column]]

    for column in columns:
        path = row[column]
        try:
            read_array(path, slice_index=slice_index, key=_key(path, column))
        except DataError as error:
            problems.append(Problem("error", "unreadable file", case_id, path, str(error)))
            continue
        try:
            if column == "labels":
                masks[column] = read_label_map(
                    path,
                    slice_index=slice_index,
                    key=_key(path, column),
                    allowed=descriptor.allowed_labels,
                )
            else:
                masks[column] = read_binary_mask(
                    path, slice_index=slice_index, key=_key(path, column)
                )
        except DataError as error:
            problems.append(Problem("error", "invalid label values", case_id, path, str(error)))

    if "labels" in masks:
        labels = masks.pop("labels")
        masks["myocardium"] = _label_mask(labels, descriptor.myocardium_labels)
        masks["scar"] = _label_mask(labels, descriptor.scar_labels)
    return masks


def _label_mask(labels: SliceArray, values: tuple[int, ...]) -> SliceArray:
    return SliceArray(
        np.isin(labels.array, values), labels.spacing_mm, labels.orientation, labels.path
    )


def _mask_content_problems(masks: dict[str, SliceArray | None], case_id: str) -> list[Problem]:
    myocardium = masks.get("myocardium")
    if myocardium is None:
        return []
    if not myocardium.array.any():
        return [
            Problem(
                "warning",
                "empty myocardium",
                case_id,
                str(myocardium.path),
                f"case {case_id!r}: the myocardium mask is empty, so preparation skips this slice; "
                "fix the mask or remove the row",
            )
        ]

    problems = []
    for column, mask in masks.items():
        if column == "myocardium" or mask is None:
            continue
        outside = int(np.count_nonzero(mask.array & ~myocardium.array))
        if outside:
            problems.append(
                Problem(
                    "warning",
                    "scar outside myocardium",
                    case_id,
                    str(mask.path),
                    f"case {case_id!r}: {outside} `{column}` pixel(s) lie outside the myocardium "
                    "and are dropped during preparation; check the masks",
                )
            )
    return problems


def _key(path: str, column: str) -> str | None:
    if not str(path).lower().endswith(".npz"):
        return None
    try:
        return None if len(npz_keys(path)) == 1 else column
    except DataError:
        return None


def _format_table(report: ValidationReport) -> str:
    frame = report.to_frame().drop(columns=["path"])
    widths = {
        column: min(max(len(column), *(len(str(value)) for value in frame[column])), 40)
        for column in frame.columns[:-1]
    }
    header = "  ".join(column.ljust(widths[column]) for column in frame.columns[:-1]) + "  message"
    lines = [header, "-" * len(header)]
    for _, problem in frame.iterrows():
        cells = [
            str(problem[column])[: widths[column]].ljust(widths[column])
            for column in frame.columns[:-1]
        ]
        lines.append("  ".join(cells) + "  " + str(problem["message"]))
    return "\n".join(lines)


@click.command("validate")
@click.argument("dataset")
def validate_command(dataset: str) -> None:
    """Check DATASET (a descriptor YAML, a manifest CSV or a registered name).

    Every problem is printed as one row of a table. The exit status is 1 when
    any problem is an error, 0 otherwise.
    """
    report = check_dataset(dataset)
    if report.problems:
        click.echo(_format_table(report))
    click.echo(
        f"{report.dataset}: {report.valid_count} of {report.case_count} slices valid; "
        f"{report.error_count} error(s), {report.warning_count} warning(s)"
    )
    sys.exit(1 if report.error_count else 0)

"""Dataset descriptors (YAML) and manifests (CSV): what a dataset is and where its files are.

A manifest lists one 2D slice per row: ``case_id``, ``patient_id``, ``image``,
and either ``labels`` or ``myocardium`` + ``scar``. A descriptor names the
manifest, the label values of myocardium and scar, the citation, the licence
and the preprocessing settings. ``docs/manifest.md`` documents both formats.

Example:
    >>> from bench.data.manifest import load_descriptor, read_manifest
    >>> descriptor = load_descriptor("data_manifests/emidec.yaml")  # doctest: +SKIP
    >>> frame = read_manifest(descriptor)  # doctest: +SKIP
    >>> case = read_case(descriptor, frame.iloc[0])  # doctest: +SKIP
    >>> case.myocardium.shape == case.image.shape  # doctest: +SKIP
    True

``load_descriptor`` also accepts a bare manifest CSV or a name registered in
``bench.registry.DATASETS``.
"""

from __future__ import annotations

import logging
import math
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from bench.data.preprocess import PreprocessConfig
from bench.data.readers import (
    SliceArray,
    check_aligned,
    npz_keys,
    read_binary_mask,
    read_image,
    read_label_map,
)
from bench.errors import ConfigError, DataError, ManifestError, RegistryError
from bench.fileio import write_text

__all__ = [
    "DatasetDescriptor",
    "CaseArrays",
    "Problem",
    "load_descriptor",
    "read_manifest",
    "load_manifest_table",
    "manifest_problems",
    "read_case",
    "write_descriptor",
    "mask_columns",
    "file_columns",
    "REQUIRED_COLUMNS",
    "OPTIONAL_COLUMNS",
    "DEFAULT_MYOCARDIUM_LABELS",
    "DEFAULT_SCAR_LABELS",
]

logger = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("case_id", "patient_id", "image")
OPTIONAL_COLUMNS = (
    "labels",
    "myocardium",
    "scar",
    "slice",
    "difficulty",
    "difficulty_source",
    "site",
    "scanner",
    "scar_clean",
)
RATER_COLUMN = re.compile(r"^scar_rater\d+$")
DIFFICULTY_SOURCES = ("expert", "estimated")

# Label convention assumed for a bare manifest with a `labels` column and no
# descriptor: the EMIDEC labels (2 healthy myocardium, 3 infarct, 4 MVO).
DEFAULT_MYOCARDIUM_LABELS = (2, 3, 4)
DEFAULT_SCAR_LABELS = (3, 4)


@dataclass(frozen=True)
class DatasetDescriptor:
    """A dataset's manifest, label sets, provenance and preprocessing settings.

    Attributes:
        name: dataset name used in cache files and reports.
        manifest_path: absolute path of the manifest CSV.
        root: folder that the manifest's relative paths are resolved against
            (the manifest's folder).
        myocardium_labels: label values whose union is the myocardium ``M``.
        scar_labels: label values whose union is the scar ``Y`` (a subset of
            ``myocardium_labels``).
        citation: how to cite the data.
        licence: the data's licence.
        preprocessing: preprocessing settings.
        difficulty_thresholds: two cut points ``(t1, t2)`` that map an
            estimated difficulty score to levels 0/1/2, or None.
        descriptor_path: the YAML file, or None for a bare manifest.
        other_labels: further label values a label map may hold (blood pool,
            right ventricle), or None; see ``allowed_labels``.
    """

    name: str
    manifest_path: Path
    root: Path
    myocardium_labels: tuple[int, ...] = DEFAULT_MYOCARDIUM_LABELS
    scar_labels: tuple[int, ...] = DEFAULT_SCAR_LABELS
    citation: str = ""
    licence: str = ""
    preprocessing: PreprocessConfig = field(default_factory=PreprocessConfig)
    difficulty_thresholds: tuple[float, float] | None = None
    descriptor_path: Path | None = None

    other_labels: tuple[int, ...] | None = None

    @property
    def allowed_labels(self) -> set[int]:
        """Label values a label map may hold.

        With ``other_labels`` declared: 0, the myocardium and scar labels and
        ``other_labels``. Without: every integer from 0 to the largest
        myocardium or scar label, so EMIDEC's blood pool (1) needs no entry.
        """
        declared = {*self.myocardium_labels, *self.scar_labels}
        if self.other_labels is None:
            return set(range(0, max(declared, default=1) + 1))
        return {0, *declared, *self.other_labels}

    def with_preprocessing(self, **overrides: Any) -> DatasetDescriptor:
        """Return a copy whose preprocessing has ``overrides`` applied."""
        if not overrides:
            return self
        return replace(self, preprocessing=self.preprocessing.replace(**overrides))

    def to_dict(self) -> dict[str, Any]:
        """Return the descriptor as plain values, for reports and ``PreparedDataset.descriptor``."""
        return {
            "name": self.name,
            "manifest": str(self.manifest_path),
            "descriptor": str(self.descriptor_path) if self.descriptor_path else None,
            "myocardium_labels": list(self.myocardium_labels),
            "scar_labels": list(self.scar_labels),
            "other_labels": None if self.other_labels is None else list(self.other_labels),
            "citation": self.citation,
            "licence": self.licence,
            "difficulty_thresholds": (
                list(self.difficulty_thresholds) if self.difficulty_thresholds else None
            ),
        }


@dataclass
class CaseArrays:
    """The native-resolution arrays of one manifest row.

    Attributes:
        case_id: the row's ``case_id``.
        image: 2D float64 intensities.
        myocardium: 2D bool.
        scar: 2D bool.
        extra_masks: 2D bool masks from ``scar_clean`` and ``scar_rater<k>`` columns.
        spacing_mm: the image's pixel spacing (rows, columns), or None.
    """

    case_id: str
    image: np.ndarray
    myocardium: np.ndarray
    scar: np.ndarray
    extra_masks: dict[str, np.ndarray] = field(default_factory=dict)
    spacing_mm: tuple[float, float] | None = None


@dataclass(frozen=True)
class Problem:
    """One finding of dataset validation.

    Attributes:
        severity: ``"error"`` (the dataset cannot be used as is) or ``"warning"``.
        kind: short category, such as ``"missing file"`` or ``"duplicate case_id"``.
        case_id: the case concerned, or ``""`` for the whole manifest.
        path: the file concerned, or ``""``.
        message: what is wrong and what to do.
    """

    severity: str
    kind: str
    case_id: str
    path: str
    message: str


def load_descriptor(source: str | os.PathLike | DatasetDescriptor) -> DatasetDescriptor:
    """Load a dataset descriptor from a YAML file, a bare manifest CSV or a registered name.

    Args:
        source: a descriptor ``.yaml``/``.yml``, a manifest ``.csv``, a name in
            ``bench.registry.DATASETS``, or a ``DatasetDescriptor`` (returned as is).

    Raises:
        ManifestError: the file is missing or malformed.
        RegistryError: ``source`` is neither a file nor a registered name.
    """
    if isinstance(source, DatasetDescriptor):
        return source

    path = Path(source)
    if path.is_file():
        return _load_file(path)

    if _looks_like_path(str(source)):
        raise ManifestError(
            f"{path}: dataset file not found; give a descriptor .yaml, a manifest .csv "
            "or a registered dataset name (see `bench list datasets`)"
        )
    return _load_registered(str(source))


def read_manifest(descriptor: DatasetDescriptor | str | os.PathLike) -> pd.DataFrame:
    """Read and check a dataset's manifest.

    Returns:
        The manifest with file columns resolved to absolute paths, ``slice``
        as nullable Int64, ``difficulty`` as nullable Int64 and
        ``difficulty_source``, ``site``, ``scanner`` always present (``""``
        where absent). Other columns are kept as read.

    Raises:
        ManifestError: a required column is missing, a value is invalid,
            ``case_id`` repeats or a patient has conflicting site or scanner.
    """
    descriptor = load_descriptor(descriptor)
    frame = load_manifest_table(descriptor)

    errors = [problem for problem in manifest_problems(frame) if problem.severity == "error"]
    if errors:
        listing = "; ".join(problem.message for problem in errors[:5])
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        raise ManifestError(
            f"{descriptor.manifest_path}: {len(errors)} problem(s): {listing}{more}; "
            "run `bench data validate` for the full list"
        )
    return frame


def load_manifest_table(descriptor: DatasetDescriptor) -> pd.DataFrame:
    """Read the manifest CSV, check its columns and value types, resolve its paths.

    Unlike ``read_manifest`` this does not reject duplicate ids or conflicting
    patient metadata, so ``bench data validate`` can report them all.

    Raises:
        ManifestError: the file is unreadable, a required column is missing or
            a ``slice``, ``difficulty`` or ``difficulty_source`` value is invalid.
    """
    path = descriptor.manifest_path
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except FileNotFoundError:
        raise ManifestError(
            f"{path}: manifest not found; check the descriptor's `manifest` entry"
        ) from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise ManifestError(
            f"{path}: cannot parse the manifest CSV ({error}); fix the file"
        ) from None

    frame.columns = [str(column).strip() for column in frame.columns]
    _check_columns(frame, path)
    for column in frame.columns:
        frame[column] = frame[column].astype(str).str.strip()

    for column in file_columns(frame):
        frame[column] = [_resolve(value, descriptor.root) for value in frame[column]]
    frame["slice"] = _parse_slice(frame, path)
    frame["difficulty"] = _parse_difficulty(frame, path)
    frame["difficulty_source"] = _parse_difficulty_source(frame, path)
    for column in ("site", "scanner"):
        if column not in frame.columns:
            frame[column] = ""
    return frame.reset_index(drop=True)


def manifest_problems(frame: pd.DataFrame) -> list[Problem]:
    """Return the table-level problems: empty ids, duplicate ``case_id``, conflicting patients."""
    problems: list[Problem] = []

    for index in np.flatnonzero((frame["case_id"] == "").to_numpy()):
        problems.append(
            Problem(
                "error",
                "missing case_id",
                "",
                "",
                f"row {index + 2} has an empty case_id; give every row one",
            )
        )
    for index in np.flatnonzero((frame["patient_id"] == "").to_numpy()):
        case = frame["case_id"].iloc[index]
        problems.append(
            Problem(
                "error",
                "missing patient_id",
                case,
                "",
                f"case {case!r} has an empty patient_id; give every row one",
            )
        )

    counts = frame.loc[frame["case_id"] != "", "case_id"].value_counts()
    for case, count in counts[counts > 1].items():
        problems.append(
            Problem(
                "error",
                "duplicate case_id",
                str(case),
                "",
                f"case_id {case!r} appears {count} times; case ids must be unique",
            )
        )

    for column in ("site", "scanner"):
        values = frame.groupby("patient_id")[column].nunique()
        for patient in values[values > 1].index:
            found = sorted(set(frame.loc[frame["patient_id"] == patient, column]))
            problems.append(
                Problem(
                    "error",
                    "conflicting patient metadata",
                    "",
                    "",
                    f"patient {patient!r} has several {column} values {found}; "
                    "one patient is scanned at one site on one scanner",
                )
            )
    return problems


def read_case(descriptor: DatasetDescriptor, row: pd.Series) -> CaseArrays:
    """Read the image and masks of one manifest row at native resolution.

    Raises:
        DataError: a file is missing or invalid, or a mask does not match the
            image grid; the message names the case and the file.
    """
    case_id = str(row["case_id"])
    slice_index = None if pd.isna(row["slice"]) else int(row["slice"])
    try:
        image = read_image(row["image"], slice_index=slice_index, key=_key(row["image"], "image"))
        myocardium, scar = read_reference_masks(descriptor, row, slice_index)
        check_aligned(image, myocardium)
        check_aligned(image, scar)

        extra: dict[str, np.ndarray] = {}
        for column in extra_mask_columns(row.index):
            if row[column]:
                mask = read_binary_mask(
                    row[column], slice_index=slice_index, key=_key(row[column], column)
                )
                check_aligned(image, mask)
                extra[column] = mask.array
    except DataError as error:
        raise DataError(f"case {case_id!r}: {error}") from None

    return CaseArrays(case_id, image.array, myocardium.array, scar.array, extra, image.spacing_mm)


def read_reference_masks(
    descriptor: DatasetDescriptor, row: pd.Series, slice_index: int | None
) -> tuple[SliceArray, SliceArray]:
    """Return the myocardium and scar masks of one row, from a label map or two binary masks.

    Raises:
        DataError: a file is missing or contains values outside the declared labels.
    """
    if "labels" in row.index:
        labels = read_label_map(
            row["labels"],
            slice_index=slice_index,
            key=_key(row["labels"], "labels"),
            allowed=descriptor.allowed_labels,
        )
        myocardium = np.isin(labels.array, descriptor.myocardium_labels)
        scar = np.isin(labels.array, descriptor.scar_labels)
        return (
            SliceArray(myocardium, labels.spacing_mm, labels.orientation, labels.path),
            SliceArray(scar, labels.spacing_mm, labels.orientation, labels.path),
        )

    myocardium = read_binary_mask(
        row["myocardium"], slice_index=slice_index, key=_key(row["myocardium"], "myocardium")
    )
    scar = read_binary_mask(row["scar"], slice_index=slice_index, key=_key(row["scar"], "scar"))
    return myocardium, scar


def write_descriptor(
    path: str | os.PathLike,
    *,
    name: str,
    manifest: str | os.PathLike,
    myocardium_labels: tuple[int, ...] | list[int],
    scar_labels: tuple[int, ...] | list[int],
    other_labels: tuple[int, ...] | list[int] | None = None,
    citation: str = "",
    licence: str = "",
    preprocessing: PreprocessConfig | dict[str, Any] | None = None,
    difficulty_thresholds: tuple[float, float] | None = None,
) -> Path:
    """Write a descriptor YAML (atomically) and return its path.

    ``manifest`` is stored relative to the YAML's folder when it lies below it.

    Raises:
        ManifestError: the values would not load back (checked by loading the file).
    """
    path = Path(path)
    manifest = Path(manifest)
    try:
        manifest_entry = str(manifest.resolve().relative_to(path.parent.resolve()))
    except ValueError:
        manifest_entry = str(manifest.resolve())

    if isinstance(preprocessing, PreprocessConfig):
        preprocessing = preprocessing.to_dict()
    content: dict[str, Any] = {
        "name": name,
        "manifest": manifest_entry,
        "labels": {
            "myocardium": [int(value) for value in myocardium_labels],
            "scar": [int(value) for value in scar_labels],
        },
        "citation": citation,
        "licence": licence,
        "preprocessing": dict(preprocessing or {}),
    }
    if other_labels is not None:
        content["labels"]["other"] = [int(value) for value in other_labels]
    if difficulty_thresholds is not None:
        content["difficulty"] = {"thresholds": [float(value) for value in difficulty_thresholds]}

    _descriptor_from_mapping(content, path)
    return write_text(path, yaml.safe_dump(content, sort_keys=False, allow_unicode=True))


def file_columns(frame_or_columns) -> list[str]:
    """Return the columns that hold file paths: image, label or mask columns."""
    columns = list(getattr(frame_or_columns, "columns", frame_or_columns))
    names = ("image", "labels", "myocardium", "scar", "scar_clean")
    return [column for column in columns if column in names or RATER_COLUMN.match(column)]


def mask_columns(frame_or_columns) -> list[str]:
    """Return the file columns other than ``image``."""
    return [column for column in file_columns(frame_or_columns) if column != "image"]


def extra_mask_columns(columns) -> list[str]:
    """Return ``scar_clean`` and the ``scar_rater<k>`` columns present, in manifest order."""
    return [column for column in columns if column == "scar_clean" or RATER_COLUMN.match(column)]


# --- descriptor files ----------------------------------------------------------------


def _looks_like_path(text: str) -> bool:
    return os.sep in text or "/" in text or Path(text).suffix.lower() in (".csv", ".yaml", ".yml")


def _load_registered(name: str) -> DatasetDescriptor:
    from bench.registry import DATASETS

    try:
        factory = DATASETS.get(name)
    except RegistryError as error:
        raise RegistryError(
            f"{error}; or give the path of a descriptor .yaml or manifest .csv"
        ) from None
    return _load_file(Path(factory()))


def _load_file(path: Path) -> DatasetDescriptor:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return _bare_manifest_descriptor(path)
    if suffix not in (".yaml", ".yml"):
        raise ManifestError(
            f"{path}: expected a descriptor .yaml/.yml or a manifest .csv, got {suffix or 'no suffix'!r}"
        )

    try:
        content = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise ManifestError(f"{path}: invalid YAML ({error}); fix the descriptor") from None
    if not isinstance(content, dict):
        raise ManifestError(
            f"{path}: a descriptor must be a YAML mapping, got {type(content).__name__}"
        )
    return _descriptor_from_mapping(content, path)


def _bare_manifest_descriptor(path: Path) -> DatasetDescriptor:
    path = path.resolve()
    try:
        header = pd.read_csv(path, nrows=0).columns
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise ManifestError(
            f"{path}: cannot parse the manifest CSV ({error}); fix the file"
        ) from None
    if "labels" in header:
        logger.warning(
            "%s: bare manifest with a `labels` column; assuming myocardium labels %s and scar "
            "labels %s (EMIDEC convention). Write a descriptor to declare others.",
            path,
            list(DEFAULT_MYOCARDIUM_LABELS),
            list(DEFAULT_SCAR_LABELS),
        )
    return DatasetDescriptor(
        name=path.stem,
        manifest_path=path,
        root=path.parent,
    )


def _descriptor_from_mapping(content: dict[str, Any], path: Path) -> DatasetDescriptor:
    known = {"name", "manifest", "labels", "citation", "licence", "preprocessing", "difficulty"}
    unknown = sorted(set(content) - known)
    if unknown:
        raise ManifestError(
            f"{path}: unknown descriptor key(s) {unknown}; known keys: {sorted(known)}"
        )
    if not content.get("manifest"):
        raise ManifestError(
            f"{path}: the descriptor has no `manifest` entry; name the manifest CSV"
        )

    manifest_path = (path.parent / str(content["manifest"])).resolve()
    labels = content.get("labels") or {}
    if not isinstance(labels, dict):
        raise ManifestError(
            f"{path}: `labels` must be a mapping with `myocardium` and `scar` lists"
        )
    myocardium = _label_list(labels.get("myocardium", [1]), "labels.myocardium", path)
    scar = _label_list(labels.get("scar", [1]), "labels.scar", path)
    other = _label_list(labels["other"], "labels.other", path) if "other" in labels else None
    if not set(scar) <= set(myocardium):
        raise ManifestError(
            f"{path}: scar labels {list(scar)} are not all myocardium labels {list(myocardium)}; "
            "scar lies inside the myocardium, so list every scar label under myocardium too"
        )

    try:
        preprocessing = PreprocessConfig.from_dict(content.get("preprocessing"))
    except (ConfigError, TypeError) as error:
        raise ManifestError(f"{path}: invalid `preprocessing` block: {error}") from None

    return DatasetDescriptor(
        name=str(content.get("name") or path.stem),
        manifest_path=manifest_path,
        root=manifest_path.parent,
        myocardium_labels=myocardium,
        scar_labels=scar,
        other_labels=other,
        citation=str(content.get("citation") or ""),
        licence=str(content.get("licence") or ""),
        preprocessing=preprocessing,
        difficulty_thresholds=_thresholds(content.get("difficulty"), path),
        descriptor_path=path.resolve(),
    )


def _label_list(values: Any, key: str, path: Path) -> tuple[int, ...]:
    if isinstance(values, int):
        values = [values]
    if not isinstance(values, list) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in values
    ):
        raise ManifestError(f"{path}: `{key}` must be a list of integers, got {values!r}")
    return tuple(sorted(set(values)))


def _thresholds(block: Any, path: Path) -> tuple[float, float] | None:
    if block is None:
        return None
    thresholds = block.get("thresholds") if isinstance(block, dict) else None
    try:
        low, high = (float(value) for value in thresholds)
    except (TypeError, ValueError):
        raise ManifestError(
            f"{path}: `difficulty.thresholds` must be two numbers [t1, t2], got {thresholds!r}"
        ) from None
    if not low < high:
        raise ManifestError(
            f"{path}: difficulty thresholds must satisfy t1 < t2, got [{low}, {high}]"
        )
    return (low, high)


# --- manifest columns ----------------------------------------------------------------


def _check_columns(frame: pd.DataFrame, path: Path) -> None:
    missing = [column for column in REQUIRED_COLUMNS if column not in frame.columns]
    if missing:
        raise ManifestError(
            f"{path}: missing column(s) {missing}; a manifest needs {list(REQUIRED_COLUMNS)} "
            "and either `labels` or `myocardium` + `scar`"
        )

    has_labels = "labels" in frame.columns
    has_masks = "myocardium" in frame.columns or "scar" in frame.columns
    if has_labels and has_masks:
        raise ManifestError(
            f"{path}: has both `labels` and `myocardium`/`scar` columns; keep one form"
        )
    if not has_labels and not ("myocardium" in frame.columns and "scar" in frame.columns):
        raise ManifestError(
            f"{path}: no mask columns; add a `labels` column (one label map) or both "
            "`myocardium` and `scar` columns (two binary masks)"
        )

    duplicated = sorted(
        {column for column in frame.columns if list(frame.columns).count(column) > 1}
    )
    if duplicated:
        raise ManifestError(f"{path}: duplicate column(s) {duplicated}; keep one of each")


def _resolve(value: str, root: Path) -> str:
    if not value:
        return ""
    path = Path(os.path.expanduser(value))
    return str(path if path.is_absolute() else root / path)


def _parse_slice(frame: pd.DataFrame, path: Path) -> pd.Series:
    if "slice" not in frame.columns:
        return pd.Series(pd.NA, index=frame.index, dtype="Int64")
    return _parse_integer_column(
        frame, "slice", path, lambda value: value >= 0, "a non-negative integer"
    )


def _parse_difficulty(frame: pd.DataFrame, path: Path) -> pd.Series:
    if "difficulty" not in frame.columns:
        return pd.Series(pd.NA, index=frame.index, dtype="Int64")
    return _parse_integer_column(
        frame, "difficulty", path, lambda value: value in (0, 1, 2), "0, 1 or 2"
    )


def _parse_integer_column(frame, column, path, valid, expected: str) -> pd.Series:
    values: list[Any] = []
    for case, text in zip(frame["case_id"], frame[column], strict=True):
        if text == "":
            values.append(pd.NA)
            continue
        try:
            number = float(text)
        except ValueError:
            number = math.nan
        if not (math.isfinite(number) and number.is_integer() and valid(int(number))):
            raise ManifestError(
                f"{path}: case {case!r} has {column} {text!r}; expected {expected} or empty"
            )
        values.append(int(number))
    return pd.Series(values, index=frame.index, dtype="Int64")


def _parse_difficulty_source(frame: pd.DataFrame, path: Path) -> pd.Series:
    if "difficulty_source" not in frame.columns:
        sources = np.where(frame["difficulty"].notna(), "expert", "")
        return pd.Series(sources, index=frame.index, dtype=object)

    for case, source in zip(frame["case_id"], frame["difficulty_source"], strict=True):
        if source not in ("", *DIFFICULTY_SOURCES):
            raise ManifestError(
                f"{path}: case {case!r} has difficulty_source {source!r}; "
                f"expected {' or '.join(DIFFICULTY_SOURCES)} or empty"
            )
    return frame["difficulty_source"].astype(object)


def _key(path: str, column: str) -> str | None:
    """For an ``.npz`` holding several arrays, read the one named like the column."""
    if not str(path).lower().endswith(".npz"):
        return None
    return None if len(npz_keys(path)) == 1 else column

"""Prepare a dataset once and load it from a cache file afterwards.

The cache file (one per dataset version) lives in ``$SCARBENCH_CACHE``
(default ``~/.cache/scarbench``). Its name contains a SHA-256 key over the
manifest's bytes, the size and modification time of every referenced file,
the preprocessing settings, the label sets and the cache format, so editing
any of them prepares the dataset again.

Example:
    >>> from bench.data.cache import load_prepared
    >>> dataset = load_prepared("data_manifests/emidec.yaml", size=96)  # doctest: +SKIP
    >>> dataset.images.shape  # doctest: +SKIP
    torch.Size([708, 1, 96, 96])
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from bench.data.manifest import (
    DatasetDescriptor,
    extra_mask_columns,
    file_columns,
    load_descriptor,
    read_case,
    read_manifest,
)
from bench.data.prepared import CASE_COLUMNS, PreparedDataset
from bench.data.preprocess import EmptyMyocardiumError, PreprocessedSlice, preprocess_slice
from bench.errors import DataError
from bench.fileio import save_torch

__all__ = ["load_prepared", "prepare_dataset", "cache_dir", "cache_key", "cache_path"]

logger = logging.getLogger(__name__)

# Raise when the layout of the cache file or the preprocessing code changes, so
# that files written by older code are not loaded.
CACHE_FORMAT_VERSION = 1


def load_prepared(
    source: str | os.PathLike | DatasetDescriptor, **preprocessing_overrides: Any
) -> PreparedDataset:
    """Return the validated, preprocessed dataset, from the cache when it is up to date.

    Args:
        source: a descriptor YAML, a manifest CSV, a registered dataset name
            or a ``DatasetDescriptor``.
        **preprocessing_overrides: ``PreprocessConfig`` fields that replace
            the descriptor's settings, such as ``size=96``.

    Raises:
        ManifestError: the descriptor or manifest is invalid.
        DataError: a file is missing or invalid (every failing case is counted
            and the first ones are named).
        ConfigError: an unknown or invalid preprocessing override.
    """
    descriptor = load_descriptor(source).with_preprocessing(**preprocessing_overrides)
    frame = read_manifest(descriptor)
    path = cache_path(descriptor, frame)

    if path.is_file():
        dataset = _load_cache_file(path)
        if dataset is not None:
            logger.info("loaded %s (%d slices) from %s", descriptor.name, len(dataset), path)
            return dataset

    dataset = prepare_dataset(descriptor, frame)
    save_torch(path, _to_payload(dataset))
    logger.info("prepared %s (%d slices) into %s", descriptor.name, len(dataset), path)
    return dataset


def prepare_dataset(
    descriptor: DatasetDescriptor, frame: pd.DataFrame | None = None
) -> PreparedDataset:
    """Read and preprocess every slice of a dataset, without the cache.

    Slices with an empty myocardium are skipped with a warning and listed in
    ``PreparedDataset.skipped``.

    Raises:
        DataError: any case cannot be read; the message counts them and names
            the first three.
    """
    frame = read_manifest(descriptor) if frame is None else frame
    config = descriptor.preprocessing
    slices: list[PreprocessedSlice] = []
    kept_rows: list[int] = []
    skipped: list[dict[str, str]] = []
    failures: list[str] = []

    for position, (_, row) in enumerate(frame.iterrows()):
        try:
            case = read_case(descriptor, row)
            result = preprocess_slice(
                case.image,
                case.myocardium,
                case.scar,
                config=config,
                extra_masks=case.extra_masks,
                spacing_mm=case.spacing_mm,
                case_id=case.case_id,
            )
        except EmptyMyocardiumError as error:
            logger.warning("skipping %s", error)
            skipped.append({"case_id": str(row["case_id"]), "reason": str(error)})
            continue
        except DataError as error:
            failures.append(str(error))
            continue
        slices.append(result)
        kept_rows.append(position)

    _raise_on_failures(failures, descriptor)
    if skipped:
        logger.warning(
            "%s: skipped %d slice(s) with an empty myocardium", descriptor.name, len(skipped)
        )
    if not slices:
        raise DataError(
            f"{descriptor.manifest_path}: no usable slice (all {len(frame)} skipped); "
            "check the myocardium labels declared in the descriptor"
        )
    return _assemble(descriptor, frame.iloc[kept_rows].reset_index(drop=True), slices, skipped)


def cache_dir() -> Path:
    """Return the cache folder: ``$SCARBENCH_CACHE``, else ``~/.cache/scarbench``."""
    configured = os.environ.get("SCARBENCH_CACHE")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "scarbench"


def cache_key(descriptor: DatasetDescriptor, frame: pd.DataFrame) -> str:
    """Return the SHA-256 hex digest that identifies one prepared version of a dataset.

    Referenced files enter the key by path, size and modification time, not
    content, so the key is cheap to compute on every load.
    """
    digest = hashlib.sha256()
    digest.update(f"format {CACHE_FORMAT_VERSION}\n".encode())
    digest.update(descriptor.manifest_path.read_bytes())

    settings = {
        "descriptor": descriptor.to_dict(),
        "preprocessing": descriptor.preprocessing.to_dict(),
        "allowed_labels": sorted(descriptor.allowed_labels),
    }
    digest.update(json.dumps(settings, sort_keys=True).encode())

    for column in file_columns(frame):
        for value in frame[column]:
            digest.update(_file_signature(value).encode())
    return digest.hexdigest()


def cache_path(descriptor: DatasetDescriptor, frame: pd.DataFrame) -> Path:
    """Return the cache file of this descriptor, manifest and preprocessing."""
    safe_name = re.sub(r"[^A-Za-z0-9_.-]+", "_", descriptor.name) or "dataset"
    return cache_dir() / f"{safe_name}-{cache_key(descriptor, frame)[:24]}.pt"


# --- assembling ---------------------------------------------------------------------


def _raise_on_failures(failures: list[str], descriptor: DatasetDescriptor) -> None:
    if not failures:
        return
    listing = "; ".join(failures[:3])
    raise DataError(
        f"{descriptor.manifest_path}: {len(failures)} case(s) could not be read, e.g. {listing}; "
        "run `bench data validate` for the full list"
    )


def _assemble(
    descriptor: DatasetDescriptor,
    frame: pd.DataFrame,
    slices: list[PreprocessedSlice],
    skipped: list[dict[str, str]],
) -> PreparedDataset:
    images = _stack([item.image for item in slices], torch.float32)
    myocardium = _stack([item.myocardium for item in slices], torch.bool)
    scar = _stack([item.scar for item in slices], torch.bool)

    extra_masks = {}
    present: dict[str, list[bool]] = {}
    for column in extra_mask_columns(frame.columns):
        masks = [item.extra_masks.get(column, np.zeros_like(item.scar)) for item in slices]
        extra_masks[column] = _stack(masks, torch.bool)
        present[column] = [column in item.extra_masks for item in slices]

    return PreparedDataset(
        name=descriptor.name,
        images=images,
        myocardium=myocardium,
        scar=scar,
        cases=_cases_table(frame, slices, present),
        extra_masks=extra_masks,
        descriptor=descriptor.to_dict(),
        preprocessing=descriptor.preprocessing.to_dict(),
        skipped=pd.DataFrame(skipped, columns=["case_id", "reason"]).astype(object),
    )


def _stack(arrays: list[np.ndarray], dtype: torch.dtype) -> torch.Tensor:
    return torch.from_numpy(np.stack(arrays)[:, None]).to(dtype)


def _cases_table(
    frame: pd.DataFrame, slices: list[PreprocessedSlice], present: dict[str, list[bool]]
) -> pd.DataFrame:
    """Build the per-case table: ``CASE_COLUMNS``, then ``has_<mask>`` flags, then other manifest columns."""
    cases = pd.DataFrame(
        {
            "case_id": frame["case_id"].astype(object),
            "patient_id": frame["patient_id"].astype(object),
            "difficulty": frame["difficulty"].astype("Int64"),
            "difficulty_source": frame["difficulty_source"].astype(object),
            "site": frame["site"].astype(object),
            "scanner": frame["scanner"].astype(object),
            "burden_native_percent": [item.burden_native_percent for item in slices],
            "burden_resized_percent": [item.burden_resized_percent for item in slices],
            "spacing_mm": [item.spacing_mm for item in slices],
        }
    )
    # A rater who did not annotate a case leaves an all-False mask, and this flag marks such cases.
    for column, flags in present.items():
        cases[f"has_{column}"] = flags

    skip = set(CASE_COLUMNS) | set(file_columns(frame)) | set(cases.columns)
    for column in frame.columns:
        if column not in skip:
            cases[column] = _numeric_if_possible(frame[column])
    return cases


def _numeric_if_possible(column: pd.Series) -> pd.Series:
    if column.dtype != object and not pd.api.types.is_string_dtype(column):
        return column.reset_index(drop=True)
    try:
        return pd.to_numeric(column.replace("", np.nan)).reset_index(drop=True)
    except (ValueError, TypeError):
        return column.astype(object).reset_index(drop=True)


# --- cache files --------------------------------------------------------------------


def _file_signature(value: str) -> str:
    if not value:
        return "-\n"
    try:
        status = os.stat(value)
    except OSError:
        return f"{value} missing\n"
    return f"{value} {status.st_size} {status.st_mtime_ns}\n"


def _to_payload(dataset: PreparedDataset) -> dict[str, Any]:
    return {
        "format": CACHE_FORMAT_VERSION,
        "name": dataset.name,
        "images": dataset.images,
        "myocardium": dataset.myocardium,
        "scar": dataset.scar,
        "extra_masks": dataset.extra_masks,
        "cases": dataset.cases,
        "descriptor": dataset.descriptor,
        "preprocessing": dataset.preprocessing,
        "skipped": dataset.skipped,
    }


def _load_cache_file(path: Path) -> PreparedDataset | None:
    """Load a cache file, or return None (and log why) when it is unreadable or outdated."""
    try:
        # The payload contains pandas tables, which need full unpickling. The cache
        # folder belongs to the user and only this module writes into it.
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:  # a truncated or foreign file: prepare the dataset again
        logger.warning("ignoring unreadable cache file %s (%s); preparing again", path, error)
        return None

    if not isinstance(payload, dict) or payload.get("format") != CACHE_FORMAT_VERSION:
        logger.warning("ignoring cache file %s of another format; preparing again", path)
        return None
    payload.pop("format")
    return PreparedDataset(**payload)

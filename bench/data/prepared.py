"""The prepared dataset: what the data layer hands to training and evaluation.

All slices are preprocessed to one square size and stacked into tensors. A
per-case table, whose row ``i`` describes tensor index ``i``, carries the ids,
difficulty, acquisition metadata and scar burden.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
import torch

from bench.errors import DataError

__all__ = ["PreparedDataset", "CASE_COLUMNS"]

# Columns that every ``PreparedDataset.cases`` table has, in this order.
CASE_COLUMNS = (
    "case_id",  # str, unique
    "patient_id",  # str; the split unit
    "difficulty",  # pandas Int64: 0 easy, 1 medium, 2 hard, <NA> when unknown
    "difficulty_source",  # "expert", "estimated" or "" when unknown
    "site",  # str, "" when absent
    "scanner",  # str, "" when absent
    "burden_native_percent",  # scar burden at native resolution, percent of myocardium
    "burden_resized_percent",  # scar burden after crop + resize, percent of myocardium
    "spacing_mm",  # in-plane pixel spacing after resize (mm), NaN when unknown
)


@dataclass
class PreparedDataset:
    """Preprocessed slices of one dataset, as tensors plus a per-case table.

    Attributes:
        name: dataset name (descriptor name or manifest stem).
        images: ``(N, 1, S, S)`` float32, normalised intensities.
        myocardium: ``(N, 1, S, S)`` bool, the LV myocardium mask ``M``.
        scar: ``(N, 1, S, S)`` bool, the reference scar mask ``Y`` (inside ``M``).
        cases: one row per slice, columns ``CASE_COLUMNS`` first.
        extra_masks: further ``(N, 1, S, S)`` bool masks by name, such as
            ``"scar_clean"`` (noise-free truth of synthetic data) and
            ``"scar_rater2"``.
        descriptor: dataset metadata (name, citation, licence, label sets,
            manifest path) for reports.
        preprocessing: the preprocessing settings that produced the tensors.
        skipped: slices left out while preparing, columns ``case_id`` and ``reason``.
    """

    name: str
    images: torch.Tensor
    myocardium: torch.Tensor
    scar: torch.Tensor
    cases: pd.DataFrame
    extra_masks: dict[str, torch.Tensor] = field(default_factory=dict)
    descriptor: dict[str, Any] = field(default_factory=dict)
    preprocessing: dict[str, Any] = field(default_factory=dict)
    skipped: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame({"case_id": [], "reason": []})
    )

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def image_size(self) -> int:
        return int(self.images.shape[-1])

    @property
    def has_difficulty(self) -> bool:
        """True when every slice has a difficulty level."""
        return bool(len(self.cases)) and not self.cases["difficulty"].isna().any()

    def index_of(self, case_ids: Sequence[str]) -> np.ndarray:
        """Return the tensor indices of ``case_ids``, in the order given.

        Raises:
            DataError: a case id is not in this dataset.
        """
        positions = pd.Index(self.cases["case_id"]).get_indexer(list(case_ids))
        missing = [case for case, position in zip(case_ids, positions, strict=True) if position < 0]
        if missing:
            raise DataError(
                f"{len(missing)} case id(s) not in dataset {self.name!r}, e.g. {missing[:3]}; "
                "was the split made from another dataset or preprocessing setting?"
            )
        return positions.astype(np.int64)

    def subset(self, index: Sequence[int] | np.ndarray) -> PreparedDataset:
        """Return the slices at ``index`` as a new dataset (tensors are indexed, not copied twice)."""
        index_tensor = torch.as_tensor(np.asarray(index, dtype=np.int64))
        return replace(
            self,
            images=self.images[index_tensor],
            myocardium=self.myocardium[index_tensor],
            scar=self.scar[index_tensor],
            cases=self.cases.iloc[np.asarray(index, dtype=np.int64)].reset_index(drop=True),
            extra_masks={name: mask[index_tensor] for name, mask in self.extra_masks.items()},
        )

"""The case gallery: best, median, worst and most-improved test slices of each backbone.

Example:
    >>> from bench.reporting.gallery import gallery_figures
    >>> panels = gallery_figures(data, paired)  # doctest: +SKIP
    >>> [panel["model"] for panel in panels]  # doctest: +SKIP
    ['attention_unet-small', 'unet-small']

For each model the gallery shows one seed's tasks (the lowest seed of the
first run where the reference strategy and another strategy both finished),
so every contour and Dice value in a panel comes from the same trained
networks. Images and masks come from the prepared dataset named in
``run.json``, read through ``bench.data.cache.load_prepared``. Predictions are
thresholded with ``bench.evaluation.metrics.binarize`` and restricted to the
myocardium, as the per-case metrics are.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from bench.errors import ScarbenchError
from bench.reporting.figures import GalleryCase, gallery_figure
from bench.reporting.load import ReportData, TaskRecord, read_predictions
from bench.reporting.tables import REFERENCE_STRATEGY

__all__ = ["gallery_figures", "select_gallery_cases", "GALLERY_ROLES"]

logger = logging.getLogger(__name__)

GALLERY_ROLES = ("best", "median", "worst", "most improved")


def gallery_figures(
    data: ReportData, paired: pd.DataFrame, prepared_by_run: Mapping[str, tuple[Any, str]]
) -> list[dict[str, Any]]:
    """Draw one gallery figure per model.

    Args:
        data: the runs.
        paired: ``tables.paired_cases`` output, for the list of models.
        prepared_by_run: run name → ``(prepared dataset or None, reason)``
            from ``load.load_prepared_for_run``.

    Returns:
        Per model, ``{"model", "task_ids", "figure" (or None), "note"}``. The
        note gives the reason when a figure is missing (no prepared data, no predictions).
    """
    panels = []
    for model in sorted(paired["model"].unique()):
        tasks = _gallery_tasks(data, model)
        if tasks is None:
            panels.append(
                _missing(
                    model, f"no seed where {REFERENCE_STRATEGY} and another strategy both finished"
                )
            )
            continue
        prepared, reason = prepared_by_run[tasks[0].run_name]
        if prepared is None:
            panels.append(_missing(model, f"images not available: {reason}"))
            continue
        try:
            panels.append(_model_gallery(model, tasks, prepared))
        except (ScarbenchError, OSError, KeyError) as error:
            logger.warning("gallery of %s skipped: %s", model, error)
            panels.append(_missing(model, f"predictions not readable: {error}"))
    return panels


def select_gallery_cases(dice: pd.DataFrame, reference: str, other: str) -> dict[str, str]:
    """Pick the best, median, worst and most-improved case from a case × strategy Dice table.

    Best, median and worst rank cases by the mean Dice of the two strategies;
    most improved is the largest ``other − reference`` Dice. Cases with a NaN
    Dice in either strategy (both masks empty) are not candidates.

    Returns:
        Case id → its roles joined by " and ", in display order, because one
        case can be both best and most improved. The mapping is empty when no
        case has a Dice under both strategies.
    """
    both = dice[[reference, other]].dropna()
    if both.empty:
        return {}
    mean_dice = both.mean(axis=1).sort_values(kind="stable")
    improvement = (both[other] - both[reference]).sort_values(kind="stable")
    chosen = {
        "best": mean_dice.index[-1],
        "median": mean_dice.index[len(mean_dice) // 2],
        "worst": mean_dice.index[0],
        "most improved": improvement.index[-1],
    }
    roles: dict[str, list[str]] = {}
    for role in GALLERY_ROLES:
        roles.setdefault(str(chosen[role]), []).append(role)
    return {case_id: " and ".join(names) for case_id, names in roles.items()}


def _missing(model: str, note: str) -> dict[str, Any]:
    return {"model": model, "task_ids": [], "figure": None, "note": note}


def _gallery_tasks(data: ReportData, model: str) -> list[TaskRecord] | None:
    """Reference task and the first other strategy's task of one run and seed, or None."""
    for run in data.runs:
        done = [task for task in run.tasks if task.status == "done" and task.model == model]
        for seed in sorted({task.seed for task in done}, key=lambda seed: (seed is None, seed)):
            same_seed = {task.strategy: task for task in done if task.seed == seed}
            others = sorted(set(same_seed) - {REFERENCE_STRATEGY})
            if REFERENCE_STRATEGY in same_seed and others:
                return [same_seed[REFERENCE_STRATEGY], same_seed[others[0]]]
    return None


def _model_gallery(model: str, tasks: list[TaskRecord], prepared: Any) -> dict[str, Any]:
    reference, other = tasks
    dice = pd.DataFrame(
        {task.strategy: task.per_case.set_index("case_id")["dice"] for task in tasks}
    )
    roles = select_gallery_cases(dice, reference.strategy, other.strategy)
    if not roles:
        return _missing(model, "no test case has a Dice value under both strategies")

    masks = {task.strategy: _predicted_masks(task, prepared, list(roles)) for task in tasks}
    cases = [_gallery_case(role, case_id, prepared, masks, dice) for case_id, role in roles.items()]
    figure = gallery_figure(model, cases, [reference.strategy, other.strategy])
    return {
        "model": model,
        "task_ids": [task.label for task in tasks],
        "figure": figure,
        "note": "",
    }


def _gallery_case(
    role: str,
    case_id: str,
    prepared: Any,
    masks: Mapping[str, Mapping[str, np.ndarray]],
    dice: pd.DataFrame,
) -> GalleryCase:
    index = int(prepared.index_of([case_id])[0])
    return GalleryCase(
        role=role,
        case_id=case_id,
        image=prepared.images[index, 0].numpy(),
        myocardium=prepared.myocardium[index, 0].numpy(),
        truth=prepared.scar[index, 0].numpy(),
        predictions={strategy: by_case[case_id] for strategy, by_case in masks.items()},
        dice={strategy: float(dice.loc[case_id, strategy]) for strategy in dice.columns},
    )


def _predicted_masks(task: TaskRecord, prepared: Any, case_ids: list[str]) -> dict[str, np.ndarray]:
    """Binary scar masks of ``case_ids``: probability > 0.5, restricted to the myocardium."""
    from bench.evaluation.metrics import binarize

    stored_ids, probabilities = read_predictions(task)
    position = {case_id: index for index, case_id in enumerate(stored_ids)}
    masks = {}
    for case_id in case_ids:
        if case_id not in position:
            raise KeyError(f"case {case_id} is not in {task.predictions_path}")
        myocardium = prepared.myocardium[int(prepared.index_of([case_id])[0]), 0].numpy()
        mask = np.asarray(binarize(probabilities[position[case_id]], "probabilities"), dtype=bool)
        masks[case_id] = mask & myocardium
    return masks

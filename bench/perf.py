"""Measure the harness: engine overhead, prediction, data preparation and the report.

Example:
    $ bench perf --out perf.json
    $ python -m bench.perf --device cuda --presets small,base --out perf-cuda.json
    >>> from bench.perf import PerfSettings, run_perf
    >>> results = run_perf(PerfSettings.quick())  # doctest: +SKIP
    >>> results["training"][0]["ratio"]  # doctest: +SKIP
    0.98

Four measurements run in one process:

- training: the engine (``bench.training.engine.train`` with the ``standard``
  strategy, so its per-sample loss bookkeeping, logs and checkpoints at the
  default interval are included) against a bare PyTorch loop with the same
  backbone preset, batch, in-memory data, Adam settings and ``ScarLoss``.
  The two alternate (engine first in even repeats, bare first in odd ones), so
  a slow drift of the machine affects both. ``ratio`` is the median over
  repeats of engine images/s divided by bare images/s from the same repeat.
- prediction: ``engine.predict`` against a bare ``no_grad`` loop, alternated
  the same way.
- preparation: ``bench.data.cache.load_prepared`` of EMIDEC-sized phantoms
  (708 slices of 256x256 by default, or the EMIDEC slices with ``--emidec``),
  cold (empty cache) and cached.
- report: cohort statistics alone, then ``bench.reporting`` on a run folder
  of 8 tasks x 10,000 synthetic per-case rows.

Every timing is a wall-clock median. On the CPU, torch runs with
``--threads`` threads (default 1) so that the numbers do not depend on how
many cores other processes leave free.
"""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import click

from bench.errors import ConfigError, ScarbenchError

__all__ = [
    "PerfSettings",
    "PARTS",
    "TARGETS",
    "run_perf",
    "measure_training",
    "measure_prediction",
    "measure_preparation",
    "measure_report",
    "estimate_full_matrix",
    "format_table",
    "perf",
]

logger = logging.getLogger(__name__)

PARTS = ("preparation", "training", "prediction", "report")

# Targets that the table checks: minimum engine/bare ratio on the CPU, and the
# maximum seconds of a cached load and of statistics + report.
TARGETS = {"cpu_training_ratio": 0.95, "cached_load_s": 1.0, "report_s": 15.0}

# EMIDEC's training set has 708 slices of 256x256 pixels from 100 patients.
# The default phantoms match it: 118 patients of 6 slices.
EMIDEC_SIZE_PX = 256

STRATEGIES_COMPARED = ("standard", "curriculum")


@dataclass(frozen=True)
class PerfSettings:
    """Settings of ``run_perf``: the measurements, their sizes and their repeats.

    Attributes:
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or ``"auto"``.
        backbones: registered backbone names to train and predict with.
        presets: backbone presets, each measured for every backbone.
        repeats: alternated engine/bare pairs per backbone and preset; also
            the number of cached loads and of report runs.
        batch_size: slices per optimiser step, in both loops.
        train_slices: in-memory slices that one training epoch visits.
        epochs: epochs per training measurement. The default equals the
            engine's ``checkpoint_every``, so each measurement writes one
            checkpoint, as a long run does per ``checkpoint_every`` epochs.
        predict_batch_size: slices per forward pass when predicting.
        patients: phantom patients to prepare.
        slices_per_patient: phantom slices per patient.
        size_px: phantom image side in pixels.
        prepare_repeats: cold preparations (each into an empty cache).
        report_tasks: task folders of the synthetic run (backbones x 2 strategies).
        report_cases: per-case rows of each task.
        threads: ``torch.set_num_threads`` value.
        compile: wrap the model in ``torch.compile`` in both training loops.
        emidec_dir: prepare the EMIDEC PNG slices from this folder in place
            of phantoms.
        parts: which of ``PARTS`` to run.
        full_estimate: on CUDA with the ``base`` preset, estimate the wall
            time of ``bench run --matrix full``.
    """

    device: str = "cpu"
    backbones: tuple[str, ...] = ("unet", "attention_unet", "transunet", "scarnet")
    presets: tuple[str, ...] = ("small",)
    repeats: int = 3
    batch_size: int = 32
    train_slices: int = 64
    epochs: int = 10
    predict_batch_size: int = 256
    patients: int = 118
    slices_per_patient: int = 6
    size_px: int = EMIDEC_SIZE_PX
    prepare_repeats: int = 2
    report_tasks: int = 8
    report_cases: int = 10_000
    threads: int = 1
    compile: bool = False
    emidec_dir: Path | None = None
    parts: tuple[str, ...] = PARTS
    full_estimate: bool = True

    def __post_init__(self) -> None:
        _validate_settings(self)

    @classmethod
    def quick(cls, **overrides: Any) -> PerfSettings:
        """Return tiny settings that exercise every measurement in seconds, for tests."""
        tiny = {
            "backbones": ("unet",),
            "repeats": 2,
            "batch_size": 8,
            "train_slices": 16,
            "epochs": 2,
            "predict_batch_size": 16,
            "patients": 6,
            "slices_per_patient": 3,
            "size_px": 64,
            "prepare_repeats": 1,
            "report_tasks": 4,
            "report_cases": 200,
            "full_estimate": False,
        }
        return cls(**{**tiny, **overrides})


def run_perf(settings: PerfSettings) -> dict[str, Any]:
    """Run the selected measurements and return them as one JSON-ready dict.

    Raises:
        ConfigError: an invalid setting or an unavailable device.
        DataError: the phantoms or the EMIDEC slices cannot be prepared.
    """
    import torch

    from bench.training.engine import select_device

    device = select_device(settings.device)
    torch.set_num_threads(settings.threads)
    results: dict[str, Any] = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": describe_machine(device),
        "settings": _settings_dict(settings),
        "targets": dict(TARGETS),
    }

    with tempfile.TemporaryDirectory(prefix="scarbench-perf-") as scratch:
        scratch_dir = Path(scratch)
        dataset = None
        if {"preparation", "training", "prediction"} & set(settings.parts):
            results["preparation"], dataset = measure_preparation(settings, scratch_dir)
            if "preparation" not in settings.parts:
                del results["preparation"]
        if "training" in settings.parts:
            results["training"] = measure_training(settings, dataset, device)
        if "prediction" in settings.parts:
            results["prediction"] = measure_prediction(settings, dataset, device)
        if "report" in settings.parts:
            results["report"] = measure_report(settings, scratch_dir / "report")

    if settings.full_estimate and device.type == "cuda" and "training" in results:
        results["full_matrix_estimate"] = estimate_full_matrix(results["training"])
    return results


def describe_machine(device: Any) -> dict[str, Any]:
    """Return the CPU model, core count, library versions and the GPU, if any."""
    import torch

    machine = {
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "device": str(device),
    }
    if device.type == "cuda":
        properties = torch.cuda.get_device_properties(device)
        machine["gpu"] = properties.name
        machine["gpu_memory_mib"] = round(properties.total_memory / 2**20)
        machine["cuda"] = torch.version.cuda
    return machine


# ---------------------------------------------------------------------------
# training


def measure_training(settings: PerfSettings, dataset: Any, device: Any) -> list[dict[str, Any]]:
    """Time the engine against a bare loop for every backbone and preset.

    Args:
        settings: what to measure.
        dataset: the prepared slices; the first ``train_slices`` are trained on.
        device: the torch device.

    Returns:
        One row per backbone and preset: images/s of each repeat, their
        medians, and the median of the per-repeat ratios engine / bare.
    """
    train_data = _first_slices(dataset, settings.train_slices)
    rows = []
    for preset in settings.presets:
        for backbone in settings.backbones:
            rows.append(_measure_training_pair(settings, backbone, preset, train_data, device))
    return rows


def _measure_training_pair(
    settings: PerfSettings, backbone: str, preset: str, train_data: Any, device: Any
) -> dict[str, Any]:
    config = _train_config(settings, backbone, preset, device)
    engine = lambda: _time_engine(config, train_data, device)  # noqa: E731
    bare = lambda: _time_bare_training(config, train_data, device)  # noqa: E731

    # One short call of each first: it pays for the first-call costs (kernel
    # selection, allocator growth, lazy imports) and sets the process-wide
    # deterministic flag that the engine's seeding turns on, for both loops.
    _time_engine(replace(config, epochs=1), train_data, device)
    _time_bare_training(replace(config, epochs=1), train_data, device)

    engine_rates, bare_rates, peaks = _alternate(engine, bare, settings.repeats, device)
    ratios = [e / b for e, b in zip(engine_rates, bare_rates, strict=True)]
    row = {
        "backbone": backbone,
        "preset": preset,
        "parameters": _parameter_count(backbone, preset, config.image_size),
        "batch_size": config.batch_size,
        "slices": len(train_data),
        "epochs": config.epochs,
        "engine_images_per_s": engine_rates,
        "bare_images_per_s": bare_rates,
        "engine_median_images_per_s": statistics.median(engine_rates),
        "bare_median_images_per_s": statistics.median(bare_rates),
        "ratios": ratios,
        "ratio": statistics.median(ratios),
    }
    if peaks:
        row["peak_memory_mib"] = max(peaks)
    logger.info(
        "training %s-%s: engine %.1f, bare %.1f images/s, ratio %.3f",
        backbone, preset, row["engine_median_images_per_s"],
        row["bare_median_images_per_s"], row["ratio"],
    )  # fmt: skip
    return row


def _train_config(settings: PerfSettings, backbone: str, preset: str, device: Any):
    from bench.training.config import TrainConfig

    return TrainConfig(
        backbone=backbone,
        preset=preset,
        strategy="standard",
        epochs=settings.epochs,
        batch_size=settings.batch_size,
        learning_rate=1e-4,
        compile=settings.compile,
        device=str(device),
    )


def _time_engine(config: Any, train_data: Any, device: Any) -> tuple[float, int]:
    from bench.training.engine import train

    with tempfile.TemporaryDirectory(prefix="scarbench-perf-task-") as task_dir:
        started = time.perf_counter()
        result = train(config, train_data, task_dir, progress=False)
        _synchronize(device)
        seconds = time.perf_counter() - started
    return seconds, int(result.budget["total"]["images_seen"])


def _time_bare_training(config: Any, train_data: Any, device: Any) -> tuple[float, int]:
    """Train with a plain loop: the same model, data, batch, optimiser and loss as the engine.

    The loop builds the model, moves the data to the device and runs
    ``config.epochs`` shuffled epochs, with the engine's device settings
    (channels_last and bf16 autocast on CUDA, optional ``torch.compile``) but
    none of its bookkeeping.
    """
    import torch

    from bench.training.engine import build_model
    from bench.training.losses import ScarLoss

    started = time.perf_counter()
    torch.manual_seed(config.seed)
    model = build_model(config, device)
    forward = torch.compile(model) if config.compile else model
    optimizer = torch.optim.Adam(
        model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    loss_function = ScarLoss(
        config.w_fg[-1], config.w_bg[-1], config.alpha, config.beta, config.gamma
    )
    images, scar, myocardium = _device_tensors(train_data, device)
    generator = torch.Generator().manual_seed(config.seed)

    model.train()
    images_seen = 0
    for _ in range(config.epochs):
        order = torch.randperm(images.shape[0], generator=generator).to(device)
        for start in range(0, images.shape[0], config.batch_size):
            index = order[start : start + config.batch_size]
            with _autocast(device):
                logits = forward(images[index])
            loss = loss_function(logits, scar[index], myocardium[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            images_seen += int(index.shape[0])

    _synchronize(device)
    return time.perf_counter() - started, images_seen


# ---------------------------------------------------------------------------
# prediction


def measure_prediction(settings: PerfSettings, dataset: Any, device: Any) -> list[dict[str, Any]]:
    """Time ``engine.predict`` against a bare ``no_grad`` loop on every prepared slice.

    Returns:
        One row per backbone and preset with images/s of each repeat, the
        medians and the median ratio predict / bare.
    """
    rows = []
    for preset in settings.presets:
        for backbone in settings.backbones:
            rows.append(_measure_prediction_pair(settings, backbone, preset, dataset, device))
    return rows


def _measure_prediction_pair(
    settings: PerfSettings, backbone: str, preset: str, dataset: Any, device: Any
) -> dict[str, Any]:
    import torch

    from bench.training.engine import build_model, predict

    config = _train_config(settings, backbone, preset, device)
    torch.manual_seed(config.seed)
    model = build_model(config, device)
    batch_size = settings.predict_batch_size

    def engine() -> tuple[float, int]:
        started = time.perf_counter()
        predict(model, dataset, device=device, batch_size=batch_size)
        return time.perf_counter() - started, len(dataset)

    def bare() -> tuple[float, int]:
        return _time_bare_prediction(model, dataset.images, device, batch_size)

    engine()
    bare()
    engine_rates, bare_rates, peaks = _alternate(engine, bare, settings.repeats, device)
    ratios = [e / b for e, b in zip(engine_rates, bare_rates, strict=True)]
    row = {
        "backbone": backbone,
        "preset": preset,
        "batch_size": batch_size,
        "slices": len(dataset),
        "predict_images_per_s": engine_rates,
        "bare_images_per_s": bare_rates,
        "predict_median_images_per_s": statistics.median(engine_rates),
        "bare_median_images_per_s": statistics.median(bare_rates),
        "ratios": ratios,
        "ratio": statistics.median(ratios),
    }
    if peaks:
        row["peak_memory_mib"] = max(peaks)
    return row


def _time_bare_prediction(
    model: Any, images: Any, device: Any, batch_size: int
) -> tuple[float, int]:
    import torch

    started = time.perf_counter()
    model.eval()
    outputs = []
    with torch.no_grad():
        for start in range(0, images.shape[0], batch_size):
            batch = _channels_last(images[start : start + batch_size].to(device), device)
            with _autocast(device):
                logits = model(batch)
            outputs.append(torch.sigmoid(logits.float())[:, 0].cpu())
    torch.cat(outputs).numpy()
    return time.perf_counter() - started, int(images.shape[0])


# ---------------------------------------------------------------------------
# data preparation


def measure_preparation(settings: PerfSettings, scratch_dir: Path) -> tuple[dict[str, Any], Any]:
    """Time ``load_prepared`` cold (empty cache) and cached.

    The phantoms (or the imported EMIDEC manifest) are written first, outside
    the timings. ``$SCARBENCH_CACHE`` points at a fresh folder under
    ``scratch_dir`` for each cold load and is restored afterwards.

    Returns:
        The timings, and the prepared dataset that training and prediction use.
    """
    started = time.perf_counter()
    descriptor, source = _write_source_dataset(settings, scratch_dir / "source")
    written_s = time.perf_counter() - started

    cold_s, cached_s = [], []
    dataset = None
    for attempt in range(settings.prepare_repeats):
        with _cache_folder(scratch_dir / f"cache-{attempt}"):
            seconds, dataset = _time_call(lambda: _load_prepared(descriptor))
            cold_s.append(seconds)
            if attempt == 0:
                cached_s = [
                    _time_call(lambda: _load_prepared(descriptor))[0]
                    for _ in range(settings.repeats)
                ]

    result = {
        "source": source,
        "slices": len(dataset),
        "image_size_px": settings.size_px if settings.emidec_dir is None else EMIDEC_SIZE_PX,
        "prepared_size_px": dataset.image_size,
        "source_written_s": written_s,
        "cold_s": cold_s,
        "cached_s": cached_s,
        "cold_median_s": statistics.median(cold_s),
        "cached_median_s": statistics.median(cached_s),
    }
    logger.info(
        "preparation of %d slices: cold %.1f s, cached %.3f s",
        len(dataset), result["cold_median_s"], result["cached_median_s"],
    )  # fmt: skip
    return result, dataset


def _write_source_dataset(settings: PerfSettings, folder: Path) -> tuple[Path, str]:
    if settings.emidec_dir is not None:
        from bench.data.importers import import_emidec

        import_emidec(settings.emidec_dir, folder, estimate_difficulty=False)
        return folder / "emidec.yaml", "emidec"

    from bench.data.synthetic import write_synthetic_dataset

    descriptor = write_synthetic_dataset(
        folder,
        patients=settings.patients,
        slices_per_patient=settings.slices_per_patient,
        size=settings.size_px,
        seed=0,
        name="perf-phantoms",
    )
    return Path(descriptor), "phantoms"


def _load_prepared(descriptor: Path) -> Any:
    from bench.data.cache import load_prepared

    return load_prepared(descriptor)


@contextlib.contextmanager
def _cache_folder(folder: Path) -> Iterator[None]:
    previous = os.environ.get("SCARBENCH_CACHE")
    os.environ["SCARBENCH_CACHE"] = str(folder)
    try:
        yield
    finally:
        if previous is None:
            del os.environ["SCARBENCH_CACHE"]
        else:
            os.environ["SCARBENCH_CACHE"] = previous


# ---------------------------------------------------------------------------
# statistics and report


def measure_report(settings: PerfSettings, run_dir: Path) -> dict[str, Any]:
    """Time the cohort statistics, then the whole report, on a synthetic run folder.

    The run folder contains ``report_tasks`` done tasks (backbones x standard and
    curriculum, seed 0), each with ``report_cases`` per-case rows drawn from
    fixed distributions, a 100-epoch ``train_log.csv`` and ``budget.json``.
    Both strategies of a backbone share the case ids, so the paired tests
    pair every case.

    Returns:
        Seconds of each repeat and their medians; ``report_error`` in place
        of the report timings when ``bench.reporting`` fails or is missing.
    """
    import pandas as pd

    _write_synthetic_run(run_dir, settings.report_tasks, settings.report_cases)
    per_case = pd.concat(
        [
            pd.read_csv(path, dtype={"case_id": str})
            for path in sorted(run_dir.glob("*/per_case.csv"))
        ],
        ignore_index=True,
    )
    result: dict[str, Any] = {
        "tasks": settings.report_tasks,
        "cases_per_task": settings.report_cases,
        "rows": len(per_case),
    }

    statistics_s = [
        _time_call(lambda: _cohort_statistics(per_case))[0] for _ in range(settings.repeats)
    ]
    result["statistics_s"] = statistics_s
    result["statistics_median_s"] = statistics.median(statistics_s)

    try:
        from bench.reporting.render import write_report

        report_s = [
            _time_call(lambda: write_report([run_dir], run_dir.parent / "report.html"))[0]
            for _ in range(settings.repeats)
        ]
    except (ImportError, ScarbenchError) as error:
        logger.warning("the report could not be timed: %s", error)
        result["report_error"] = f"{type(error).__name__}: {error}"
        return result
    result["report_s"] = report_s
    result["report_median_s"] = statistics.median(report_s)
    return result


def _cohort_statistics(per_case: Any) -> None:
    """Compute what the report shows per task and per backbone, through ``bench.evaluation.stats``."""
    from bench.evaluation import stats

    for _, rows in per_case.groupby("task_id", sort=False):
        stats.summarize(rows["dice"].to_numpy(dtype=float))
        stats.pearson(rows["true_burden"].to_numpy(float), rows["pred_burden"].to_numpy(float))
        stats.bland_altman(rows["true_burden"].to_numpy(float), rows["pred_burden"].to_numpy(float))
    for metric in ("dice", "abs_burden_error"):
        stats.compare_arms(per_case, metric, by="backbone", arms=STRATEGIES_COMPARED)


def _write_synthetic_run(run_dir: Path, tasks: int, cases: int) -> None:
    """Write a run folder of done tasks whose per-case rows are random draws."""
    import numpy as np
    import pandas as pd

    from bench.fileio import write_csv, write_json, write_text

    backbones = [f"backbone{index}" for index in range(max(1, tasks // len(STRATEGIES_COMPARED)))]
    case_ids = [f"case{index:05d}" for index in range(cases)]
    patient_ids = [f"patient{index // 7:04d}" for index in range(cases)]
    task_ids = []
    rng = np.random.default_rng(0)
    for backbone in backbones:
        for strategy in STRATEGIES_COMPARED:
            task_id = f"{backbone}-small--{strategy}--seed0"
            task_ids.append(task_id)
            folder = run_dir / task_id
            write_json(
                folder / "config.json",
                {"backbone": backbone, "preset": "small", "strategy": strategy, "seed": 0},
            )
            write_csv(
                folder / "per_case.csv",
                _synthetic_per_case(rng, task_id, backbone, strategy, case_ids, patient_ids),
            )
            write_csv(folder / "train_log.csv", _synthetic_train_log(rng))
            write_json(
                folder / "budget.json",
                {
                    "total": {
                        "epochs": 100,
                        "optimizer_steps": 600,
                        "images_seen": 19200,
                        "wall_time_s": 60.0,
                    }
                },
            )
            write_text(folder / "DONE", "")

    split = pd.DataFrame({"case_id": case_ids, "patient_id": patient_ids, "split": "test"})
    write_csv(run_dir / "split.csv", split)
    write_json(
        run_dir / "run.json",
        {
            "run_id": run_dir.name,
            # No dataset source: the report then skips the gallery and the
            # training-set difficulty counts, because these rows have no images.
            "dataset": {"citation": "random per-case rows of bench perf", "licence": "none"},
            "tasks": task_ids,
        },
    )


def _synthetic_per_case(
    rng: Any,
    task_id: str,
    backbone: str,
    strategy: str,
    case_ids: list[str],
    patient_ids: list[str],
) -> Any:
    import numpy as np
    import pandas as pd

    count = len(case_ids)
    true_burden = rng.gamma(2.0, 8.0, count)
    pred_burden = np.clip(true_burden + rng.normal(0.5, 4.0, count), 0.0, 100.0)
    dice = np.clip(
        rng.beta(5.0, 2.0, count) + (0.01 if strategy == "curriculum" else 0.0), 0.0, 1.0
    )
    hd95_px = rng.gamma(2.0, 2.0, count)
    return pd.DataFrame(
        {
            "task_id": task_id,
            "backbone": backbone,
            "preset": "small",
            "strategy": strategy,
            "seed": 0,
            "case_id": case_ids,
            "patient_id": patient_ids,
            "difficulty": rng.integers(0, 3, count),
            "site": rng.choice(["site-a", "site-b"], count),
            "scanner": rng.choice(["1.5T", "3T"], count),
            "dice": dice,
            "iou": dice / (2.0 - dice),
            "precision": np.clip(dice + rng.normal(0, 0.05, count), 0, 1),
            "sensitivity": np.clip(dice + rng.normal(0, 0.05, count), 0, 1),
            "hd95_px": hd95_px,
            "hd95_mm": hd95_px * 1.46,
            "true_burden": true_burden,
            "pred_burden": pred_burden,
            "burden_error": pred_burden - true_burden,
            "abs_burden_error": np.abs(pred_burden - true_burden),
        }
    )


def _synthetic_train_log(rng: Any) -> Any:
    import numpy as np
    import pandas as pd

    epochs = np.arange(1, 101)
    return pd.DataFrame(
        {
            "stage": 1,
            "stage_name": "all",
            "epoch": epochs,
            "loss": 0.9 * np.exp(-epochs / 40.0) + rng.normal(0, 0.01, len(epochs)),
            "lr": 1e-4,
            "batch_size": 32,
            "optimizer_steps": epochs * 6,
            "images_seen": epochs * 192,
            "wall_time_s": epochs * 0.6,
            "spikes": 0,
        }
    )


# ---------------------------------------------------------------------------
# the full matrix


def estimate_full_matrix(training_rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Estimate the training wall time of ``bench run --matrix full`` from base-preset throughput.

    Each task of the matrix trains on ``epochs x training slices`` images at the
    engine's measured images/s of its backbone's ``base`` preset at batch 32.
    Prediction, evaluation and the report are left out.

    Returns:
        Images per task, seconds per task per backbone and the total in hours,
        or ``{"skipped": reason}`` when no ``base`` preset was measured.
    """
    from bench.data.cache import load_prepared
    from bench.data.split import make_split
    from bench.runs.matrices import resolve_matrix

    matrix = resolve_matrix("full")
    rates = {
        row["backbone"]: row["engine_median_images_per_s"]
        for row in training_rows
        if row["preset"] == matrix.preset
    }
    missing = [backbone for backbone in matrix.backbones if backbone not in rates]
    if missing:
        return {
            "skipped": f"no {matrix.preset}-preset measurement of {missing}; run with --presets {matrix.preset}"
        }

    split = make_split(load_prepared(matrix.dataset))
    train_slices = int((split["split"] == "train").sum())
    images_per_task = matrix.epochs * train_slices
    tasks_per_backbone = len(matrix.strategies) * len(matrix.seeds)
    seconds_per_task = {
        backbone: images_per_task / rates[backbone] for backbone in matrix.backbones
    }
    total_s = sum(seconds * tasks_per_backbone for seconds in seconds_per_task.values())
    return {
        # NOTE: curriculum stages after the first train at batch 4, which runs
        # fewer images/s than batch 32 on a GPU, so this underestimates them.
        "method": "epochs x training slices / engine images/s at batch 32, per task, one GPU",
        "matrix": matrix.name,
        "epochs": matrix.epochs,
        "train_slices": train_slices,
        "tasks": tasks_per_backbone * len(matrix.backbones),
        "seconds_per_task": seconds_per_task,
        "total_hours_one_gpu": total_s / 3600.0,
    }


# ---------------------------------------------------------------------------
# the table


def format_table(results: dict[str, Any]) -> str:
    """Lay out the medians and their targets as a plain-text table."""
    is_cpu = results.get("machine", {}).get("device", "cpu") == "cpu"
    rows = [
        *_training_table_rows(results.get("training", []), is_cpu),
        *_prediction_table_rows(results.get("prediction", [])),
        *_preparation_table_rows(results.get("preparation")),
        *_report_table_rows(results.get("report")),
        *_estimate_table_rows(results.get("full_matrix_estimate")),
    ]

    lines = [f"{'measurement':<44} {'median':>14} {'target':>10}  status"]
    for name, value, target, status in rows:
        lines.append(f"{name:<44} {value:>14} {target:>10}  {status}")
    return "\n".join(lines)


TableRow = tuple[str, str, str, str]


def _training_table_rows(training: list[dict[str, Any]], is_cpu: bool) -> list[TableRow]:
    target = TARGETS["cpu_training_ratio"] if is_cpu else None
    rows = []
    for row in training:
        name = f"{row['backbone']}-{row['preset']}"
        engine = f"{row['engine_median_images_per_s']:.1f}"
        bare = f"{row['bare_median_images_per_s']:.1f}"
        ratio = f"{row['ratio']:.3f}"
        rows.append((f"train {name} engine (images/s)", engine, "", ""))
        rows.append((f"train {name} bare (images/s)", bare, "", ""))
        rows.append((f"train {name} engine/bare", ratio, *_check(row["ratio"], target, True)))
    return rows


def _prediction_table_rows(prediction: list[dict[str, Any]]) -> list[TableRow]:
    rows = []
    for row in prediction:
        name = f"{row['backbone']}-{row['preset']}"
        rate = f"{row['predict_median_images_per_s']:.1f}"
        rows.append((f"predict {name} (images/s)", rate, "", ""))
        rows.append((f"predict {name} predict/bare", f"{row['ratio']:.3f}", "", ""))
    return rows


def _preparation_table_rows(preparation: dict[str, Any] | None) -> list[TableRow]:
    if not preparation:
        return []
    count = preparation["slices"]
    cold = f"{preparation['cold_median_s']:.2f}"
    cached_s = preparation["cached_median_s"]
    return [
        (f"prepare {count} slices cold (s)", cold, "", ""),
        (
            f"prepare {count} slices cached (s)",
            f"{cached_s:.3f}",
            *_check(cached_s, TARGETS["cached_load_s"], False),
        ),
    ]


def _report_table_rows(report: dict[str, Any] | None) -> list[TableRow]:
    if not report:
        return []
    size = f"{report['tasks']} tasks x {report['cases_per_task']} cases"
    rows = [(f"statistics, {size} (s)", f"{report['statistics_median_s']:.2f}", "", "")]
    if "report_median_s" not in report:
        rows.append(
            (f"statistics + report, {size}", "not measured", "", report["report_error"][:60])
        )
        return rows

    report_s = report["report_median_s"]
    check = _check(report_s, TARGETS["report_s"], False)
    rows.append((f"statistics + report, {size} (s)", f"{report_s:.2f}", *check))
    return rows


def _estimate_table_rows(estimate: dict[str, Any] | None) -> list[TableRow]:
    if not estimate or "total_hours_one_gpu" not in estimate:
        return []
    hours = f"{estimate['total_hours_one_gpu']:.1f}"
    return [("--matrix full, estimated (hours, one GPU)", hours, "", "estimate")]


def _check(value: float, target: float | None, at_least: bool) -> tuple[str, str]:
    """Return the target's text and ``ok`` or ``MISSED``; ``at_least`` makes it a minimum."""
    if target is None:
        return "", ""
    passed = value >= target if at_least else value <= target
    return (f">= {target:g}" if at_least else f"< {target:g}"), ("ok" if passed else "MISSED")


# ---------------------------------------------------------------------------
# helpers


def _alternate(
    engine: Callable[[], tuple[float, int]],
    bare: Callable[[], tuple[float, int]],
    repeats: int,
    device: Any,
) -> tuple[list[float], list[float], list[float]]:
    """Run ``engine`` and ``bare`` ``repeats`` times each, swapping which goes first.

    Returns:
        Images/s of each engine call, of each bare call, and the peak CUDA
        memory (MiB) of every call (empty on other devices).
    """
    engine_rates, bare_rates, peaks = [], [], []
    for repeat in range(repeats):
        order = (engine, bare) if repeat % 2 == 0 else (bare, engine)
        for measure in order:
            _reset_peak_memory(device)
            seconds, images = measure()
            rate = images / seconds
            (engine_rates if measure is engine else bare_rates).append(rate)
            peak = _peak_memory_mib(device)
            if peak is not None:
                peaks.append(peak)
    return engine_rates, bare_rates, peaks


def _time_call(function: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    value = function()
    return time.perf_counter() - started, value


def _first_slices(dataset: Any, count: int) -> Any:
    if len(dataset) < count:
        raise ConfigError(
            f"--train-slices {count} is more than the {len(dataset)} prepared slices; "
            f"lower --train-slices or prepare more slices (--patients)"
        )
    return dataset.subset(list(range(count)))


def _parameter_count(backbone: str, preset: str, image_size: int) -> int:
    from bench.models import build_backbone

    model = build_backbone(backbone, preset, image_size=image_size)
    return sum(parameter.numel() for parameter in model.parameters())


def _device_tensors(data: Any, device: Any) -> tuple[Any, Any, Any]:
    import torch

    images = _channels_last(data.images.to(device=device, dtype=torch.float32), device)
    scar = data.scar.to(device=device, dtype=torch.float32)
    myocardium = data.myocardium.to(device=device, dtype=torch.float32)
    return images, scar, myocardium


def _channels_last(images: Any, device: Any) -> Any:
    import torch

    if device.type == "cuda":
        return images.contiguous(memory_format=torch.channels_last)
    return images


def _autocast(device: Any) -> Any:
    import torch

    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _synchronize(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _reset_peak_memory(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def _peak_memory_mib(device: Any) -> float | None:
    import torch

    if device.type != "cuda":
        return None
    return torch.cuda.max_memory_allocated(device) / 2**20


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _settings_dict(settings: PerfSettings) -> dict[str, Any]:
    data = asdict(settings)
    data["emidec_dir"] = None if settings.emidec_dir is None else "given"
    return data


def _validate_settings(settings: PerfSettings) -> None:
    for name in ("repeats", "batch_size", "train_slices", "epochs", "predict_batch_size", "patients",
                 "slices_per_patient", "prepare_repeats", "report_tasks", "report_cases", "threads"):  # fmt: skip
        value = getattr(settings, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"perf setting {name}={value!r} must be an integer >= 1")
    strategies = len(STRATEGIES_COMPARED)
    if settings.report_tasks % strategies:
        raise ConfigError(
            f"perf setting report_tasks={settings.report_tasks} must be a multiple of "
            f"{strategies} (one standard and one curriculum task per backbone)"
        )
    unknown = sorted(set(settings.parts) - set(PARTS))
    if unknown or not settings.parts:
        raise ConfigError(
            f"unknown or empty --parts {list(settings.parts)}; choose from {list(PARTS)}"
        )
    if not settings.backbones or not settings.presets:
        raise ConfigError("--backbones and --presets must each name at least one entry")


# ---------------------------------------------------------------------------
# command line


def _split_names(value: str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    return tuple(name.strip() for name in value.split(",") if name.strip())


@click.command("perf")
@click.option(
    "--device", default="cpu", show_default=True, help="Device: cpu, cuda, cuda:1, mps or auto."
)
@click.option(
    "--backbones",
    default=None,
    help="Comma-separated backbones, or 'all' [default: all registered].",
)
@click.option(
    "--presets",
    default="small",
    show_default=True,
    help="Comma-separated backbone presets, e.g. small,base.",
)
@click.option(
    "--repeats",
    type=int,
    default=None,
    help="Alternated engine/bare pairs per backbone [default: 3; --quick: 2].",
)
@click.option(
    "--train-slices", type=int, default=None, help="Slices per training epoch [default: 64]."
)
@click.option(
    "--epochs",
    type=int,
    default=None,
    help="Epochs per training measurement [default: 10, the checkpoint interval].",
)
@click.option(
    "--prepare-repeats",
    type=int,
    default=None,
    help="Cold preparations, each into an empty cache [default: 2].",
)
@click.option(
    "--patients",
    type=int,
    default=None,
    help="Phantom patients to prepare, 6 slices each [default: 118, so 708 slices].",
)
@click.option("--threads", type=int, default=1, show_default=True, help="torch CPU threads.")
@click.option(
    "--compile",
    "compile_model",
    is_flag=True,
    help="Wrap the model in torch.compile in both training loops.",
)
@click.option(
    "--parts",
    default=",".join(PARTS),
    show_default=True,
    help="Comma-separated measurements to run.",
)
@click.option(
    "--emidec",
    "emidec_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Prepare the EMIDEC PNG slices in this folder in place of phantoms.",
)
@click.option(
    "--quick",
    is_flag=True,
    help="Tiny settings that run in seconds (tests); the numbers are not comparable.",
)
@click.option(
    "--out",
    "output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the results as JSON to this file.",
)
def perf(
    device: str,
    backbones: str | None,
    presets: str,
    repeats: int | None,
    train_slices: int | None,
    epochs: int | None,
    prepare_repeats: int | None,
    patients: int | None,
    threads: int,
    compile_model: bool,
    parts: str,
    emidec_dir: Path | None,
    quick: bool,
    output: Path | None,
) -> None:
    """Measure engine overhead, prediction throughput, data preparation and the report."""
    from bench.fileio import write_json

    overrides: dict[str, Any] = {
        "device": device,
        "presets": _split_names(presets),
        "threads": threads,
        "compile": compile_model,
        "parts": _split_names(parts),
        "emidec_dir": emidec_dir,
    }
    names = _split_names(backbones)
    if names and names != ("all",):
        overrides["backbones"] = names
    elif names == ("all",) or not quick:
        overrides["backbones"] = _registered_backbones()
    for name, value in (
        ("repeats", repeats),
        ("train_slices", train_slices),
        ("epochs", epochs),
        ("prepare_repeats", prepare_repeats),
        ("patients", patients),
    ):
        if value is not None:
            overrides[name] = value

    settings = PerfSettings.quick(**overrides) if quick else PerfSettings(**overrides)
    results = run_perf(settings)
    results["command"] = shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]])
    click.echo(format_table(results))
    if output is not None:
        write_json(output, results)
        click.echo(f"wrote {output}")


def _registered_backbones() -> tuple[str, ...]:
    from bench.registry import BACKBONES

    return tuple(BACKBONES.names())


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    perf()

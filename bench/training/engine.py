"""The training engine shared by every strategy, and prediction.

Example:
    >>> from bench.training.config import TrainConfig
    >>> from bench.training.engine import predict, train
    >>> config = TrainConfig(backbone="unet", strategy="curriculum", epochs=12)
    >>> result = train(config, train_data, task_dir)  # doctest: +SKIP
    >>> probabilities = predict(result.model, test_data, device=result.device)  # doctest: +SKIP
    >>> probabilities.shape  # doctest: +SKIP
    (142, 64, 64)

``train`` resumes from ``task_dir/checkpoint.pt`` when it exists. The whole
training set lives on the device as one tensor and each batch is an index
lookup. Each epoch's order comes from a generator seeded with
``(seed, stage, epoch)``, so a resumed run shuffles as an uninterrupted one.
The per-slice losses recorded each epoch are the training losses of each
batch, taken before that batch's optimiser step. This costs no extra forward
pass.

Files written into ``task_dir`` (all through ``bench.fileio``): ``train_log.csv``,
``sample_losses.csv``, ``reselected.csv``, ``budget.json`` and ``checkpoint.pt``.
They are rewritten at every checkpoint, before the checkpoint itself.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from bench.data.prepared import PreparedDataset
from bench.errors import ConfigError
from bench.fileio import save_npz, write_csv, write_json
from bench.registry import STRATEGIES
from bench.training.checkpoint import (
    capture_rng_state,
    data_fingerprint,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
)
from bench.training.config import TrainConfig
from bench.training.losses import ScarLoss
from bench.training.strategies import Stage, Strategy, detect_spikes, stage_epochs_for_budget

__all__ = [
    "TrainResult",
    "train",
    "predict",
    "save_predictions",
    "select_device",
    "seed_everything",
    "build_model",
    "CHECKPOINT_NAME",
]

logger = logging.getLogger(__name__)

CHECKPOINT_NAME = "checkpoint.pt"
TRAIN_LOG_COLUMNS = [
    "stage", "stage_name", "epoch", "loss", "lr", "batch_size",
    "optimizer_steps", "images_seen", "wall_time_s", "spikes",
]  # fmt: skip
RESELECTED_COLUMNS = ["stage", "epoch", "case_id", "spike_size", "robust_z", "level", "oversampled"]


@dataclass
class TrainResult:
    """Result of ``train``: the model and the records of the task.

    Attributes:
        model: the trained model, on ``device``, in eval mode.
        device: the device it trained on.
        budget: optimiser steps, images seen and wall time per stage and in
            total, as written to ``budget.json``.
        flagged: one row per loss spike (``RESELECTED_COLUMNS``).
        train_log: one row per epoch (``TRAIN_LOG_COLUMNS``).
        resumed: True when training continued from a checkpoint.
    """

    model: nn.Module
    device: torch.device
    budget: dict[str, Any]
    flagged: pd.DataFrame
    train_log: pd.DataFrame
    resumed: bool


def train(
    config: TrainConfig,
    train_data: PreparedDataset,
    task_dir: str | os.PathLike,
    *,
    progress: bool = True,
) -> TrainResult:
    """Train one task, resuming from ``task_dir/checkpoint.pt`` if present.

    Args:
        config: the task's configuration.
        train_data: the training slices.
        task_dir: folder for the logs, the budget and the checkpoint.
        progress: show a tqdm bar with stage, epoch and loss.

    Raises:
        ConfigError: invalid strategy, backbone, device, or data that does
            not fit the strategy (e.g. a curriculum without difficulty).
        CheckpointError: the checkpoint belongs to another configuration,
            dataset or code version; no file in ``task_dir`` is changed.
    """
    task_dir = Path(task_dir)
    strategy = _make_strategy(config)
    stages = strategy.stages(train_data)
    _check_image_size(config, train_data)
    fingerprint = data_fingerprint(train_data)
    checkpoint = load_checkpoint(task_dir / CHECKPOINT_NAME, config, fingerprint)

    device = select_device(config.device)
    seed_everything(config.seed, deterministic=config.deterministic, device=device)
    model = build_model(config, device)
    optimizer = torch.optim.Adam(
        model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    trainer = _Trainer(config, strategy, stages, train_data, task_dir, device, model, optimizer)
    trainer.fingerprint = fingerprint
    trainer.progress = progress
    if checkpoint is not None:
        trainer.restore(checkpoint)
    trainer.run()
    model.eval()
    return trainer.result(resumed=checkpoint is not None)


@torch.no_grad()
def predict(
    model: nn.Module,
    data: PreparedDataset | torch.Tensor,
    *,
    device: str | torch.device,
    batch_size: int = 256,
) -> np.ndarray:
    """Return the scar probabilities of every slice, ``(N, S, S)`` float32.

    Args:
        model: maps ``(B, 1, S, S)`` images to ``(B, 1, S, S)`` logits.
        data: the slices, or their ``(N, 1, S, S)`` image tensor.
        device: where to run the model.
        batch_size: slices per forward pass.
    """
    images = data.images if isinstance(data, PreparedDataset) else data
    device = torch.device(device)
    was_training = model.training
    model.eval()

    probabilities = np.empty((images.shape[0], images.shape[-2], images.shape[-1]), np.float32)
    for start in range(0, images.shape[0], batch_size):
        batch = _to_device_batch(images[start : start + batch_size], device)
        with _autocast(device):
            logits = model(batch)
        stop = start + batch.shape[0]
        probabilities[start:stop] = torch.sigmoid(logits.float())[:, 0].cpu().numpy()

    model.train(was_training)
    return probabilities


def save_predictions(
    path: str | os.PathLike, data: PreparedDataset, probabilities: np.ndarray
) -> Path:
    """Write ``predictions.npz`` with ``case_ids`` and ``probabilities`` (N, S, S) float32.

    Raises:
        ConfigError: ``probabilities`` has another number of slices than ``data``.
    """
    if probabilities.shape[0] != len(data):
        raise ConfigError(
            f"{probabilities.shape[0]} probability maps for {len(data)} slices of "
            f"dataset {data.name!r}; predict on the same slices that you save"
        )
    case_ids = data.cases["case_id"].astype(str).to_numpy(dtype=str)
    return save_npz(path, case_ids=case_ids, probabilities=probabilities.astype(np.float32))


def select_device(name: str = "auto") -> torch.device:
    """Return the device for ``name``: ``"auto"`` picks cuda, then mps, then cpu.

    Raises:
        ConfigError: the requested device is not available on this machine.
    """
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")

    device = torch.device(name)
    available = {
        "cpu": True,
        "cuda": torch.cuda.is_available()
        and (device.index is None or device.index < torch.cuda.device_count()),
        "mps": torch.backends.mps.is_available(),
    }
    if not available.get(device.type, False):
        raise ConfigError(
            f"device {name!r} is not available on this machine; use --device auto or cpu"
        )
    return device


def seed_everything(seed: int, *, deterministic: bool, device: torch.device | None = None) -> None:
    """Seed Python, NumPy and torch; with ``deterministic``, use deterministic kernels.

    On CUDA and MPS, deterministic mode calls
    ``torch.use_deterministic_algorithms(True, warn_only=True)``, which holds
    for the whole process, and sets ``CUBLAS_WORKSPACE_CONFIG`` unless it is
    already set (it only takes effect when set before CUDA starts). On the CPU
    that call is skipped: it imports ``torch._inductor`` (about 4 s, measured
    with torch 2.13 on a 2-core machine), and the resume test shows that CPU
    training with a fixed thread count is repeatable without it.
    """
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if not deterministic:
        return
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    if device is None or device.type != "cpu":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)


def build_model(config: TrainConfig, device: torch.device) -> nn.Module:
    """Build the configured backbone on ``device`` (channels_last on CUDA)."""
    from bench.models import build_backbone

    model = build_backbone(
        config.backbone,
        config.preset,
        image_size=config.image_size,
        in_channels=1,
        **config.backbone_options,
    )
    model = model.to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    return model


class _Trainer:
    """The training loop of one task and the state that a checkpoint stores."""

    def __init__(
        self,
        config: TrainConfig,
        strategy: Strategy,
        stages: list[Stage],
        data: PreparedDataset,
        task_dir: Path,
        device: torch.device,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
    ) -> None:
        self.config = config
        self.strategy = strategy
        self.stages = stages
        self.case_ids = data.cases["case_id"].astype(str).to_numpy()
        self.task_dir = task_dir
        self.device = device
        self.model = model
        self.forward = torch.compile(model) if config.compile else model
        self.optimizer = optimizer
        self.progress = True
        self.fingerprint = ""
        self.detects_spikes = len(stages) > 1
        self.reference_images = config.epochs * len(data)
        self.images, self.scar, self.myocardium = _device_tensors(data, device)

        # Position in the schedule: the stage running now and its completed epochs.
        self.stage_position = 0
        self.epoch = 0
        self.finished = False
        self.stage_budgets: list[dict[str, Any]] = []
        self.oversampled: np.ndarray = np.empty(0, np.int64)
        self.flagged_in_stage: set[int] = set()
        self.loss_window = np.empty((0, 0))
        self.log_rows: list[dict[str, Any]] = []
        self.spike_rows: list[dict[str, Any]] = []
        self.sample_losses: list[np.ndarray] = []

    # ----- the schedule -----

    def run(self) -> None:
        """Train the remaining stages, checkpointing every ``checkpoint_every`` epochs."""
        while not self.finished:
            stage = self.stages[self.stage_position]
            if self.stage_position == len(self.stage_budgets):
                self._start_stage(stage)
            self._run_stage(stage)
            self._end_stage(stage)
        logger.info("training finished: %s", self.budget()["total"])

    def _start_stage(self, stage: Stage) -> None:
        pool_size = len(stage.indices) + len(self.oversampled) * (self.config.spike_r - 1)
        images_seen = sum(entry["images_seen"] for entry in self.stage_budgets)
        epochs = stage_epochs_for_budget(
            self.config,
            self.stages,
            self.stage_position,
            pool_size,
            images_seen,
            self.reference_images,
        )
        self.stage_budgets.append(
            {
                "stage": stage.number,
                "name": stage.name,
                "slices": int(len(stage.indices)),
                "oversampled_slices": int(len(self.oversampled)),
                "batch_size": stage.batch_size,
                "w_fg": stage.w_fg,
                "w_bg": stage.w_bg,
                "epochs": int(epochs),
                "optimizer_steps": 0,
                "images_seen": 0,
                "wall_time_s": 0.0,
            }
        )
        self.loss_window = np.empty((0, len(stage.indices)))
        self.flagged_in_stage = set()
        logger.info(
            "stage %d/%d (%s): %d slices, %d oversampled x%d, batch %d, %d epochs",
            stage.number, len(self.stages), stage.name, len(stage.indices),
            len(self.oversampled), self.config.spike_r, stage.batch_size, epochs,
        )  # fmt: skip

    def _run_stage(self, stage: Stage) -> None:
        budget = self.stage_budgets[self.stage_position]
        pool = self._epoch_pool(stage)
        loss_function = ScarLoss(
            stage.w_fg, stage.w_bg, self.config.alpha, self.config.beta, self.config.gamma
        )
        bar = tqdm(
            total=budget["epochs"],
            initial=self.epoch,
            desc=f"stage {stage.number}/{len(self.stages)} {stage.name}",
            disable=not self.progress,
            leave=False,
        )
        with bar:
            while self.epoch < budget["epochs"]:
                started = time.perf_counter()
                pool_losses = self._run_epoch(stage, pool, loss_function)
                self.epoch += 1
                self._record_epoch(stage, pool, pool_losses, time.perf_counter() - started)
                bar.update(1)
                bar.set_postfix(epoch=self.epoch, loss=f"{self.log_rows[-1]['loss']:.4f}")
                if self.epoch % self.config.checkpoint_every == 0 and self.epoch < budget["epochs"]:
                    self.save()

    def _end_stage(self, stage: Stage) -> None:
        has_next = self.stage_position + 1 < len(self.stages)
        if self.strategy.reselects and has_next:
            self.oversampled = np.array(sorted(self.flagged_in_stage), dtype=np.int64)
        else:
            self.oversampled = np.empty(0, np.int64)
        logger.info(
            "stage %d (%s) done: %d slices spiked",
            stage.number,
            stage.name,
            len(self.flagged_in_stage),
        )
        self.stage_position += 1
        self.epoch = 0
        self.finished = not has_next
        self.save()

    def _epoch_pool(self, stage: Stage) -> np.ndarray:
        extra = np.repeat(self.oversampled, self.config.spike_r - 1)
        return np.concatenate([stage.indices, extra]).astype(np.int64)

    # ----- one epoch -----

    def _run_epoch(self, stage: Stage, pool: np.ndarray, loss_function: ScarLoss) -> torch.Tensor:
        order = np.random.default_rng([self.config.seed, stage.number, self.epoch]).permutation(
            len(pool)
        )
        pool_device = torch.as_tensor(pool, device=self.device)
        order_device = torch.as_tensor(order, device=self.device)
        pool_losses = torch.empty(len(pool), device=self.device)
        budget = self.stage_budgets[self.stage_position]

        self.model.train()
        for start in range(0, len(pool), stage.batch_size):
            positions = order_device[start : start + stage.batch_size]
            pool_losses[positions] = self._train_step(pool_device[positions], loss_function)
            budget["optimizer_steps"] += 1
            budget["images_seen"] += int(positions.shape[0])
        return pool_losses

    def _train_step(self, index: torch.Tensor, loss_function: ScarLoss) -> torch.Tensor:
        images = _channels_last(self.images[index], self.device)
        with _autocast(self.device):
            logits = self.forward(images)
        losses = loss_function.per_sample(logits, self.scar[index], self.myocardium[index])

        self.optimizer.zero_grad(set_to_none=True)
        losses.mean().backward()
        self.optimizer.step()
        return losses.detach()

    def _record_epoch(
        self, stage: Stage, pool: np.ndarray, pool_losses: torch.Tensor, seconds: float
    ) -> None:
        budget = self.stage_budgets[self.stage_position]
        budget["wall_time_s"] += seconds
        pool_losses = pool_losses.float().cpu().numpy()
        slice_losses = _mean_per_slice(stage.indices, pool, pool_losses)
        self.sample_losses.append(
            np.stack(
                [
                    np.full(len(stage.indices), stage.number),
                    np.full(len(stage.indices), self.epoch),
                    stage.indices,
                    slice_losses,
                ]
            ).T
        )
        spikes = self._detect_spikes(stage, slice_losses) if self.detects_spikes else 0
        self.log_rows.append(
            {
                "stage": stage.number,
                "stage_name": stage.name,
                "epoch": self.epoch,
                "loss": float(pool_losses.mean()),
                "lr": float(self.optimizer.param_groups[0]["lr"]),
                "batch_size": stage.batch_size,
                "optimizer_steps": sum(entry["optimizer_steps"] for entry in self.stage_budgets),
                "images_seen": sum(entry["images_seen"] for entry in self.stage_budgets),
                "wall_time_s": sum(entry["wall_time_s"] for entry in self.stage_budgets),
                "spikes": spikes,
            }
        )
        logger.debug(
            "stage %d epoch %d loss %.5f", stage.number, self.epoch, self.log_rows[-1]["loss"]
        )

    def _detect_spikes(self, stage: Stage, slice_losses: np.ndarray) -> int:
        report = detect_spikes(
            self.loss_window,
            slice_losses,
            k=self.config.spike_k,
            min_history=self.config.spike_min_history,
        )
        self.loss_window = np.vstack([self.loss_window, slice_losses])[-self.config.spike_window :]
        oversampled = self.strategy.reselects and self.stage_position + 1 < len(self.stages)
        for position in np.flatnonzero(report.flagged):
            index = int(stage.indices[position])
            self.flagged_in_stage.add(index)
            self.spike_rows.append(
                {
                    "stage": stage.number,
                    "epoch": self.epoch,
                    "case_id": self.case_ids[index],
                    "spike_size": float(report.spike_size[position]),
                    "robust_z": float(report.robust_z[position]),
                    "level": float(report.level[position]),
                    "oversampled": oversampled,
                }
            )
        return int(report.flagged.sum())

    # ----- files and checkpoints -----

    def save(self) -> None:
        """Write the logs, the budget and then the checkpoint, each atomically."""
        self._write_logs()
        save_checkpoint(self.task_dir / CHECKPOINT_NAME, self._checkpoint_state())
        logger.debug("checkpoint at stage %d epoch %d", self.stage_position + 1, self.epoch)

    def _write_logs(self) -> None:
        write_csv(self.task_dir / "train_log.csv", self.train_log())
        write_csv(self.task_dir / "sample_losses.csv", self._sample_loss_frame())
        write_csv(self.task_dir / "reselected.csv", self.flagged())
        write_json(self.task_dir / "budget.json", self.budget())

    def _checkpoint_state(self) -> dict[str, Any]:
        sample_losses = (
            np.concatenate(self.sample_losses) if self.sample_losses else np.empty((0, 4))
        )
        return {
            "config_hash": self.config.config_hash(),
            "config": self.config.to_dict(),
            "data_fingerprint": self.fingerprint,
            "model": _uncompiled(self.model).state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "rng": capture_rng_state(),
            "stage_position": self.stage_position,
            "epoch": self.epoch,
            "finished": self.finished,
            "stage_budgets": self.stage_budgets,
            "oversampled": torch.from_numpy(self.oversampled),
            "flagged_in_stage": sorted(self.flagged_in_stage),
            "loss_window": torch.from_numpy(self.loss_window),
            "log_rows": self.log_rows,
            "spike_rows": self.spike_rows,
            "sample_losses": torch.from_numpy(sample_losses),
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Restore the training state from a checkpoint that ``load_checkpoint`` accepted."""
        _uncompiled(self.model).load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        restore_rng_state(state["rng"])
        self.stage_position = state["stage_position"]
        self.epoch = state["epoch"]
        self.finished = state["finished"]
        self.stage_budgets = [dict(entry) for entry in state["stage_budgets"]]
        self.oversampled = state["oversampled"].numpy()
        self.flagged_in_stage = set(state["flagged_in_stage"])
        self.loss_window = state["loss_window"].numpy()
        self.log_rows = list(state["log_rows"])
        self.spike_rows = list(state["spike_rows"])
        self.sample_losses = [state["sample_losses"].numpy()]
        logger.info(
            "resuming %s at stage %d epoch %d%s",
            self.task_dir, self.stage_position + 1, self.epoch, " (finished)" if self.finished else "",
        )  # fmt: skip

    # ----- results -----

    def train_log(self) -> pd.DataFrame:
        return pd.DataFrame(self.log_rows, columns=TRAIN_LOG_COLUMNS)

    def flagged(self) -> pd.DataFrame:
        return pd.DataFrame(self.spike_rows, columns=RESELECTED_COLUMNS)

    def budget(self) -> dict[str, Any]:
        total = {
            key: sum(entry[key] for entry in self.stage_budgets)
            for key in ("epochs", "optimizer_steps", "images_seen", "wall_time_s")
        }
        return {
            "device": str(self.device),
            "strategy": self.config.strategy,
            "budget_mode": self.config.budget,
            "reference_images": self.reference_images,
            "finished": self.finished,
            "stages": self.stage_budgets,
            "total": total,
        }

    def result(self, *, resumed: bool) -> TrainResult:
        return TrainResult(
            model=_uncompiled(self.model),
            device=self.device,
            budget=self.budget(),
            flagged=self.flagged(),
            train_log=self.train_log(),
            resumed=resumed,
        )

    def _sample_loss_frame(self) -> pd.DataFrame:
        rows = np.concatenate(self.sample_losses) if self.sample_losses else np.empty((0, 4))
        return pd.DataFrame(
            {
                "stage": rows[:, 0].astype(np.int64),
                "epoch": rows[:, 1].astype(np.int64),
                "case_id": self.case_ids[rows[:, 2].astype(np.int64)],
                "loss": rows[:, 3].astype(np.float32),
            }
        )


def _make_strategy(config: TrainConfig) -> Strategy:
    strategy_class = STRATEGIES.get(config.strategy)
    return strategy_class(config)


def _check_image_size(config: TrainConfig, data: PreparedDataset) -> None:
    if len(data) and data.image_size != config.image_size:
        raise ConfigError(
            f"dataset {data.name!r} has {data.image_size}x{data.image_size} slices but "
            f"image_size={config.image_size}; prepare the data at {config.image_size} "
            "or set image_size to match"
        )


def _device_tensors(
    data: PreparedDataset, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    images = data.images.to(device=device, dtype=torch.float32)
    if device.type == "cuda":
        images = images.contiguous(memory_format=torch.channels_last)
    scar = data.scar.to(device=device, dtype=torch.float32)
    myocardium = data.myocardium.to(device=device, dtype=torch.float32)
    return images, scar, myocardium


def _mean_per_slice(indices: np.ndarray, pool: np.ndarray, pool_losses: np.ndarray) -> np.ndarray:
    # ``indices`` is sorted and unique; an oversampled slice's losses are averaged.
    positions = np.searchsorted(indices, pool)
    totals = np.bincount(positions, weights=pool_losses, minlength=len(indices))
    counts = np.bincount(positions, minlength=len(indices))
    return totals / np.maximum(counts, 1)


def _to_device_batch(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    return _channels_last(images.to(device=device, dtype=torch.float32), device)


def _channels_last(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    if device.type == "cuda":
        return images.contiguous(memory_format=torch.channels_last)
    return images


def _autocast(device: torch.device):
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _uncompiled(model: nn.Module) -> nn.Module:
    return getattr(model, "_orig_mod", model)

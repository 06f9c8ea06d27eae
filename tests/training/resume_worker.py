"""Train one small anti-curriculum task; the resume test runs this file in a subprocess.

Usage: python resume_worker.py TASK_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from training_phantoms import register_tiny_backbone, ring_phantoms

from bench.training.config import TrainConfig
from bench.training.engine import train

# Enough epochs that the run is still going when the test kills it. The high
# learning rate and low spike_k make loss spikes, so that stage 3 oversamples
# slices and the resumed run has re-selection state to restore.
CONFIG = dict(
    strategy="anti-curriculum",
    epochs=45,
    image_size=32,
    learning_rate=5e-2,
    spike_k=0.3,
    spike_min_history=2,
    checkpoint_every=1,
    device="cpu",
    deterministic=True,
)


def main(task_dir: str) -> None:
    torch.set_num_threads(1)
    config = TrainConfig(backbone=register_tiny_backbone(), **CONFIG)
    train(config, ring_phantoms(60, size=32, seed=1), Path(task_dir), progress=False)


if __name__ == "__main__":
    main(sys.argv[1])

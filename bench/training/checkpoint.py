"""Checkpoints of a training task: written atomically, checked before they are used.

Example:
    >>> from bench.training.checkpoint import load_checkpoint, save_checkpoint
    >>> save_checkpoint(task_dir / "checkpoint.pt", state)  # doctest: +SKIP
    >>> state = load_checkpoint(task_dir / "checkpoint.pt", config, fingerprint)  # doctest: +SKIP

A checkpoint stores the model and optimiser state, the random number
generator states of Python, NumPy and torch, the position in the schedule
and the logs so far. It is loaded with ``torch.load(weights_only=True)``, so
it holds only tensors and plain Python values. ``load_checkpoint`` rejects a
checkpoint of another configuration, dataset, code version or file format.
"""

from __future__ import annotations

import hashlib
import logging
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench import __version__
from bench.data.prepared import PreparedDataset
from bench.errors import CheckpointError
from bench.fileio import save_torch
from bench.training.config import TrainConfig

__all__ = [
    "CHECKPOINT_FORMAT",
    "save_checkpoint",
    "load_checkpoint",
    "capture_rng_state",
    "restore_rng_state",
    "data_fingerprint",
]

logger = logging.getLogger(__name__)

# Bump when the layout of the checkpoint dict changes.
CHECKPOINT_FORMAT = 1


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Write ``state`` to ``path`` atomically, stamped with the format and code version."""
    stamped = {"format": CHECKPOINT_FORMAT, "code_version": __version__, **state}
    return save_torch(path, stamped)


def load_checkpoint(
    path: str | Path, config: TrainConfig, fingerprint: str
) -> dict[str, Any] | None:
    """Load the checkpoint at ``path`` if it exists and belongs to this task.

    Args:
        path: the task's ``checkpoint.pt``.
        config: the configuration the task runs with now.
        fingerprint: ``data_fingerprint`` of the training data.

    Returns:
        The checkpoint dict, or None when ``path`` does not exist.

    Raises:
        CheckpointError: the file is unreadable, or was written by another
            file format, code version, configuration or training dataset.
    """
    path = Path(path)
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for damaged files
        raise CheckpointError(
            f"cannot read checkpoint {path}: {error}; delete it to restart the task from scratch"
        ) from None
    _check_stamp(path, state, config, fingerprint)
    logger.info("loaded checkpoint %s", path)
    return state


def capture_rng_state() -> dict[str, Any]:
    """Return the states of Python's, NumPy's and torch's global generators (CUDA included)."""
    numpy_state = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {
            "algorithm": numpy_state[0],
            "keys": torch.from_numpy(numpy_state[1].astype(np.int64)),
            "position": int(numpy_state[2]),
            "has_gauss": int(numpy_state[3]),
            "cached_gaussian": float(numpy_state[4]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Restore the generator states that ``capture_rng_state`` returned."""
    random.setstate(_as_python_random_state(state["python"]))
    numpy_state = state["numpy"]
    np.random.set_state(
        (
            numpy_state["algorithm"],
            numpy_state["keys"].numpy().astype(np.uint32),
            numpy_state["position"],
            numpy_state["has_gauss"],
            numpy_state["cached_gaussian"],
        )
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def data_fingerprint(data: PreparedDataset) -> str:
    """Return a sha256 of the case ids and the image, myocardium and scar tensors."""
    digest = hashlib.sha256()
    digest.update("\n".join(map(str, data.cases["case_id"])).encode("utf-8"))
    for tensor in (data.images, data.myocardium, data.scar):
        array = tensor.detach().cpu().contiguous().numpy()
        digest.update(str((array.dtype, array.shape)).encode("utf-8"))
        digest.update(array.tobytes())
    return digest.hexdigest()


def _check_stamp(path: Path, state: Any, config: TrainConfig, fingerprint: str) -> None:
    if not isinstance(state, dict) or "format" not in state:
        raise CheckpointError(
            f"{path} is not a scarbench training checkpoint; move it away or delete it"
        )
    expected = {
        "format": (CHECKPOINT_FORMAT, "checkpoint format"),
        "code_version": (__version__, "scarbench version"),
        "config_hash": (config.config_hash(), "configuration hash"),
        "data_fingerprint": (fingerprint, "training data fingerprint"),
    }
    for key, (value, label) in expected.items():
        if state.get(key) != value:
            raise CheckpointError(
                f"checkpoint {path} has {label} {state.get(key)!r}, but this task has {value!r}; "
                "it belongs to another task or code version, so nothing was changed: "
                "use a new task folder, or delete the checkpoint to retrain"
            )


def _as_python_random_state(value: Any) -> tuple:
    # ``random.setstate`` needs tuples; a round trip may hand back lists.
    version, internal, gauss = value
    return (version, tuple(internal), gauss)

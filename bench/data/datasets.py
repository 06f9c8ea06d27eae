"""Built-in datasets: names that ``load_descriptor`` and ``--dataset`` accept.

Example:
    >>> from bench.data.manifest import load_descriptor
    >>> descriptor = load_descriptor("synthetic")  # doctest: +SKIP
    >>> descriptor.name  # doctest: +SKIP
    'synthetic'

``synthetic`` is a phantom set (``bench.data.synthetic``) generated on first
use into ``$SCARBENCH_CACHE/synthetic/`` (default ``~/.cache/scarbench``),
without network access. It is generated into a temporary folder and renamed
into place, so an interrupted generation never leaves a half-written set.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

from bench.registry import DATASETS

__all__ = ["SYNTHETIC_SETTINGS", "synthetic_descriptor", "cache_root"]

logger = logging.getLogger(__name__)

# About 240 slices: small enough for the CPU smoke matrix, large enough that
# each difficulty level has at least a fifth of the slices.
SYNTHETIC_SETTINGS = {"patients": 40, "slices_per_patient": 6, "size": 128, "seed": 0}
# Bump when the generator's output changes, so that old cached sets are not reused.
SYNTHETIC_VERSION = 1


def cache_root() -> Path:
    """Return ``$SCARBENCH_CACHE``, or ``~/.cache/scarbench`` when it is unset."""
    return Path(os.environ.get("SCARBENCH_CACHE") or Path.home() / ".cache" / "scarbench")


@DATASETS.register("synthetic")
def synthetic_descriptor() -> Path:
    """Return the descriptor of the built-in phantom set, generating it on first use."""
    from bench.data.synthetic import write_synthetic_dataset

    settings = SYNTHETIC_SETTINGS
    folder = (
        cache_root()
        / "synthetic"
        / (
            f"v{SYNTHETIC_VERSION}-p{settings['patients']}-s{settings['slices_per_patient']}"
            f"-n{settings['size']}-seed{settings['seed']}"
        )
    )
    descriptor = folder / "dataset.yaml"
    if descriptor.is_file():
        return descriptor

    folder.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        logger.info("generating the synthetic dataset into %s", folder)
        write_synthetic_dataset(temporary, name="synthetic", **settings)
        os.replace(temporary, folder)
    except OSError:
        # Another process renamed its copy into place first; use that one.
        if not descriptor.is_file():
            raise
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    return descriptor

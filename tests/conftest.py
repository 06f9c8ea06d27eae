"""Shared fixtures: a private prepared-data cache and the real EMIDEC slices."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

EMIDEC_VARIABLE = "SCARBENCH_EMIDEC_DIR"


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory: pytest.TempPathFactory):
    """Point $SCARBENCH_CACHE at a per-session folder unless CI set one."""
    if "SCARBENCH_CACHE" in os.environ:
        yield
        return
    os.environ["SCARBENCH_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield
    del os.environ["SCARBENCH_CACHE"]


@pytest.fixture(autouse=True, scope="session")
def _torch_threads():
    """Two-core CI machines: keep torch from oversubscribing them."""
    import torch

    torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def emidec_dir() -> Path:
    """The EMIDEC PNG slices (``images/``, ``labels/``), or a skip saying how to get them."""
    value = os.environ.get(EMIDEC_VARIABLE)
    if not value:
        pytest.skip(
            f"{EMIDEC_VARIABLE} is not set; point it at the EMIDEC PNG slices to run this test"
        )
    path = Path(value)
    if not (path / "images").is_dir() or not (path / "labels").is_dir():
        pytest.fail(f"{EMIDEC_VARIABLE}={path} has no images/ and labels/ folders")
    return path

"""Fixtures of the training tests: drawn ring phantoms and a tiny registered backbone."""

from __future__ import annotations

import pytest
from training_phantoms import register_tiny_backbone, ring_phantoms

from bench.data.prepared import PreparedDataset


@pytest.fixture(scope="session")
def tiny_backbone() -> str:
    return register_tiny_backbone()


@pytest.fixture(scope="session")
def rings() -> PreparedDataset:
    return ring_phantoms(24)

"""Fixtures for the backbone tests."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Run backbone tests on one thread, restoring the previous count afterwards.

    These tests use batches of one or two small images, which a second thread
    does not speed up. On a machine whose cores are busy with other work, two
    OpenMP threads waiting on each other made the overfit tests over ten times slower.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)

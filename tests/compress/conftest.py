"""One torch thread for the compression tests: their models are tiny, and on a shared, loaded
machine two OpenMP threads spin-wait on each other (a 300-step MLP fit: 16 s vs 0.4 s)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

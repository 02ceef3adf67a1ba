"""The default intra-op thread count of a serving worker leaves a core for its event loop."""

from __future__ import annotations

import pytest

from modelyard.serve.app import default_threads


@pytest.mark.parametrize(("cores", "workers", "threads"),
                         [(1, 1, 1), (2, 1, 1), (4, 1, 3), (8, 2, 3), (16, 4, 3), (2, 4, 1)])
def test_each_worker_gets_its_share_of_the_cores_less_one(cores: int, workers: int, threads: int) -> None:
    assert default_threads(cores, workers) == threads

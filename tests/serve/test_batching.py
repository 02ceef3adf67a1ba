"""The dynamic batcher on a fake model: batch formation, bounded queue, cancellation, failure isolation."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from modelyard.serve.batching import DynamicBatcher, InferenceFailed, QueueFull


class FakeModel:
    """Outputs each input's first value doubled; records batch sizes; can block or fail on demand."""

    def __init__(self) -> None:
        self.sizes: list[int] = []
        self.release = threading.Event()
        self.release.set()
        self.started = threading.Event()
        self.fail_next = False

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        self.started.set()
        self.release.wait(10)
        self.sizes.append(len(batch))
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("boom")
        return batch[:, :1] * 2


def _inputs(*values: float) -> np.ndarray:
    return np.array(values, dtype=np.float32).reshape(-1, 1)


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def test_concurrent_requests_share_one_forward_pass_and_get_their_own_rows() -> None:
    model = FakeModel()

    async def main() -> list[np.ndarray]:
        batcher = DynamicBatcher(model, max_batch_size=8, max_latency_s=0.5, max_queue=64)
        batcher.start()
        # 3 requests of 2 + 3 + 3 = 8 inputs: the batch is full, so it runs without waiting the 0.5 s.
        results = await asyncio.gather(batcher.submit(_inputs(1, 2)), batcher.submit(_inputs(3, 4, 5)),
                                       batcher.submit(_inputs(6, 7, 8)))
        await batcher.close()
        return results

    results = run(main())
    assert model.sizes == [8]
    np.testing.assert_array_equal(results[0].ravel(), [2, 4])
    np.testing.assert_array_equal(results[1].ravel(), [6, 8, 10])
    np.testing.assert_array_equal(results[2].ravel(), [12, 14, 16])


def test_a_lone_request_runs_after_the_latency_budget_and_batches_never_exceed_the_size() -> None:
    model = FakeModel()

    async def main() -> None:
        batcher = DynamicBatcher(model, max_batch_size=4, max_latency_s=0.01, max_queue=64)
        batcher.start()
        await batcher.submit(_inputs(1))
        # 3 + 3 inputs: the second request does not fit beside the first in a batch of 4.
        await asyncio.gather(batcher.submit(_inputs(1, 2, 3)), batcher.submit(_inputs(4, 5, 6)))
        await batcher.close()

    run(main())
    assert model.sizes == [1, 3, 3]


def test_max_batch_size_one_runs_every_request_alone() -> None:
    model = FakeModel()

    async def main() -> None:
        batcher = DynamicBatcher(model, max_batch_size=1, max_latency_s=1.0, max_queue=64)
        batcher.start()
        await asyncio.gather(*(batcher.submit(_inputs(i)) for i in range(5)))
        await batcher.close()

    run(main())
    assert model.sizes == [1, 1, 1, 1, 1]


def test_full_queue_refuses_at_once_with_retry_after_and_recovers() -> None:
    model = FakeModel()

    async def main() -> tuple[QueueFull, int, list[int]]:
        batcher = DynamicBatcher(model, max_batch_size=1, max_latency_s=0.0, max_queue=2, retry_after_s=3)
        batcher.start()
        model.release.clear()
        first = asyncio.ensure_future(batcher.submit(_inputs(1)))
        await asyncio.to_thread(model.started.wait, 5)   # the first input is in the (blocked) forward pass
        queued = [asyncio.ensure_future(batcher.submit(_inputs(2)))]
        await asyncio.sleep(0)
        batcher.check_room()                              # 1 waiting of 2: a request may still come in
        queued.append(asyncio.ensure_future(batcher.submit(_inputs(3))))
        await asyncio.sleep(0)
        with pytest.raises(QueueFull) as early:
            batcher.check_room()                          # full: refused before any body would be read
        with pytest.raises(QueueFull) as refused:
            await batcher.submit(_inputs(4))              # 2 waiting = the limit: refused without waiting
        depth = batcher.depth
        model.release.set()
        await asyncio.gather(first, *queued)
        batcher.check_room()
        await batcher.submit(_inputs(5))                  # room again
        await batcher.close()
        assert early.value.headers == refused.value.headers and batcher.stats.rejected == 2
        return refused.value, depth, model.sizes

    refused, depth, sizes = run(main())
    assert (refused.status, refused.code, refused.headers) == (503, "queue_full", {"Retry-After": "3"})
    assert depth == 2 and sizes == [1, 1, 1, 1]


def test_cancelled_requests_are_dropped_before_they_run() -> None:
    model = FakeModel()

    async def main() -> DynamicBatcher:
        batcher = DynamicBatcher(model, max_batch_size=1, max_latency_s=0.0, max_queue=8)
        batcher.start()
        model.release.clear()
        first = asyncio.ensure_future(batcher.submit(_inputs(1)))
        await asyncio.to_thread(model.started.wait, 5)
        gone = asyncio.ensure_future(batcher.submit(_inputs(2)))
        await asyncio.sleep(0)
        gone.cancel()                                     # the client left while queued
        await asyncio.sleep(0)
        assert batcher.depth == 0 and batcher.stats.dropped == 1   # its room is free while the model still runs
        model.release.set()
        await first
        await batcher.submit(_inputs(3))
        await batcher.close()
        return batcher

    batcher = run(main())
    assert model.sizes == [1, 1]                          # inputs 1 and 3 ran; 2 never reached the model
    assert batcher.stats.dropped == 1 and batcher.depth == 0


def test_a_failing_batch_fails_its_requests_only_and_the_batcher_goes_on() -> None:
    model = FakeModel()

    async def main() -> np.ndarray:
        batcher = DynamicBatcher(model, max_batch_size=4, max_latency_s=0.0, max_queue=8)
        batcher.start()
        model.fail_next = True
        with pytest.raises(InferenceFailed):
            await batcher.submit(_inputs(1))
        result = await batcher.submit(_inputs(21))
        await batcher.close()
        return result

    assert run(main()).ravel().tolist() == [42]


def test_close_drains_queued_requests_then_refuses_new_ones() -> None:
    model = FakeModel()

    async def main() -> list[np.ndarray]:
        batcher = DynamicBatcher(model, max_batch_size=2, max_latency_s=0.05, max_queue=8)
        batcher.start()
        pending = [asyncio.ensure_future(batcher.submit(_inputs(v))) for v in (1, 2, 3)]
        await asyncio.sleep(0)
        await batcher.close(drain=True)
        with pytest.raises(Exception, match="shutting down"):
            await batcher.submit(_inputs(4))
        return await asyncio.gather(*pending)

    results = run(main())
    assert [r.ravel().tolist() for r in results] == [[2], [4], [6]]

"""Dynamic batching with backpressure: requests for one model version run together.

A request's decoded inputs join the version's queue. One asyncio task takes the oldest
request and keeps collecting until the batch holds ``max_batch_size`` inputs or the
oldest waited ``max_latency_s``; then the whole batch runs in one forward pass on the
version's inference thread and every request gets its own rows back.

- **Bounded**: at most ``max_queue`` inputs wait. A request that does not fit is refused
  at once with :class:`QueueFull` (503 + Retry-After), so overload never grows memory or
  latency without bound; while the queue is full, :meth:`DynamicBatcher.check_room`
  refuses requests before their body is even parsed. (One request larger than the whole
  queue is taken when the queue is empty, else it could never run; requests are capped by
  ``max_instances``.)
- **Cancellable**: a request whose caller stopped waiting (timeout, client gone) is
  dropped when the batch is formed; if its batch already ran, its rows are thrown away.
- **Isolated failures**: a forward pass that raises fails the requests of that batch
  only; the task keeps serving.

The event loop never runs the model: it stays free to parse, refuse and answer requests
while a batch runs.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from modelyard.core.logging import get_logger
from modelyard.serve.errors import ServeError
from modelyard.serve.inputs import Batch, batch_len, concat

log = get_logger("serve.batching")
T = TypeVar("T")


class QueueFull(ServeError):
    """The version's queue has no room for this request (503)."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(503, "queue_full", message, headers={"Retry-After": str(retry_after_s)})


class InferenceFailed(ServeError):
    """The forward pass of this request's batch raised (500, no internals in the message)."""

    def __init__(self) -> None:
        super().__init__(500, "inference_failed", "the model failed on this batch; see the server log")


@dataclass(eq=False)
class _Job:
    inputs: Batch
    size: int
    future: asyncio.Future[np.ndarray]
    enqueued: float = field(default_factory=time.perf_counter)


@dataclass
class BatchStats:
    """Counters a test or the metrics can read."""

    batches: int = 0
    inputs: int = 0
    dropped: int = 0
    rejected: int = 0
    sizes: list[int] = field(default_factory=list)


class DynamicBatcher:
    """Queue, batch and run one model version's requests.

    Args:
        run_batch: the forward pass, ``(batch) -> (N, K) outputs``; runs on the inference thread.
        max_batch_size: most inputs per forward pass (1: every request alone).
        max_latency_s: longest the oldest request waits for the batch to fill.
        max_queue: most inputs waiting; beyond it :meth:`submit` raises :class:`QueueFull`.
        retry_after_s: the Retry-After a refused client is told.
        on_batch: called with (size, seconds) after each forward pass (metrics).
        on_depth: called with the queue depth in inputs whenever it changes (metrics).
        name: for log lines.
    """

    def __init__(self, run_batch: Callable[[Batch], np.ndarray], *, max_batch_size: int, max_latency_s: float,
                 max_queue: int, retry_after_s: int = 1, on_batch: Callable[[int, float], None] | None = None,
                 on_depth: Callable[[int], None] | None = None, name: str = "model") -> None:
        self.run_batch = run_batch
        self.max_batch_size = max_batch_size
        self.max_latency_s = max_latency_s
        self.max_queue = max_queue
        self.retry_after_s = retry_after_s
        self.on_batch = on_batch or (lambda _size, _seconds: None)
        self.on_depth = on_depth or (lambda _depth: None)
        self.name = name
        self.stats = BatchStats()
        # One thread: the model runs one batch at a time, using torch's intra-op threads inside it.
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"infer-{name}")
        self._pending: deque[_Job] = deque()
        self._depth = 0
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    @property
    def depth(self) -> int:
        """Inputs waiting (cancelled ones included until the next batch is formed)."""
        return self._depth

    def start(self) -> None:
        """Start the batching task on the running event loop."""
        if self._task is None:
            self._wakeup = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._loop(), name=f"batcher-{self.name}")

    def check_room(self) -> None:
        """Raise :class:`QueueFull` when the queue is full, so no request of any size could join now.

        Called before a request's body is read: under overload a refusal then costs no JSON
        parsing or decoding, which keeps refusals fast when the event loop is the bottleneck.
        """
        if self._depth >= self.max_queue:
            self.stats.rejected += 1
            raise QueueFull(f"queue full ({self._depth} inputs waiting, limit {self.max_queue}); retry later",
                            self.retry_after_s)

    async def submit(self, inputs: Batch) -> np.ndarray:
        """Queue ``inputs`` and wait for their output rows.

        Raises:
            QueueFull: the queue has no room (answer 503 at once).
            InferenceFailed: the forward pass of its batch raised.
            asyncio.CancelledError: the caller cancelled (the job is dropped).
        """
        size = batch_len(inputs)
        if self._closing or self._task is None or self._wakeup is None:
            raise ServeError(503, "unavailable", "this model version is shutting down",
                             headers={"Retry-After": str(self.retry_after_s)})
        if self._depth and self._depth + size > self.max_queue:
            self.stats.rejected += 1
            raise QueueFull(f"queue full ({self._depth} inputs waiting, limit {self.max_queue}); retry later",
                            self.retry_after_s)
        job = _Job(inputs=inputs, size=size, future=asyncio.get_running_loop().create_future())
        self._pending.append(job)
        self._set_depth(self._depth + size)
        self._wakeup.set()
        try:
            return await job.future
        except asyncio.CancelledError:
            job.future.cancel()
            # Still queued: free its room at once (the batcher may be busy with a long forward pass).
            # Already in a running batch: its rows are thrown away when that batch ends.
            try:
                self._pending.remove(job)
            except ValueError:
                pass
            else:
                self.stats.dropped += 1
                self._set_depth(self._depth - job.size)
            raise

    async def run_exclusive(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the inference thread, between batches (explanations)."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    async def close(self, *, drain: bool = True) -> None:
        """Stop taking requests; finish the queued ones (``drain``) or fail them; stop the task."""
        self._closing = True
        if not drain:
            while self._pending:
                job = self._pending.popleft()
                if not job.future.done():
                    job.future.set_exception(ServeError(503, "unavailable", "server shutting down"))
            self._set_depth(0)
        if self._wakeup is not None:
            self._wakeup.set()
        if self._task is not None:
            await self._task
            self._task = None
        self.executor.shutdown(wait=True)

    def _set_depth(self, depth: int) -> None:
        self._depth = depth
        self.on_depth(depth)

    def _drop_cancelled(self) -> None:
        while self._pending and self._pending[0].future.done():
            job = self._pending.popleft()
            self.stats.dropped += 1
            self._set_depth(self._depth - job.size)

    async def _loop(self) -> None:
        assert self._wakeup is not None
        wakeup = self._wakeup
        loop = asyncio.get_running_loop()
        while True:
            self._drop_cancelled()
            if not self._pending:
                if self._closing:
                    return
                wakeup.clear()
                await wakeup.wait()
                continue
            # Wait for company until the batch is full or the oldest request's wait is used up.
            deadline = self._pending[0].enqueued + self.max_latency_s
            while self._depth < self.max_batch_size and not self._closing:
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    break
                wakeup.clear()
                try:
                    await asyncio.wait_for(wakeup.wait(), remaining)
                except TimeoutError:
                    break
            jobs = self._take_batch()
            if not jobs:
                continue
            batch = concat([job.inputs for job in jobs])
            started = time.perf_counter()
            try:
                outputs = await loop.run_in_executor(self.executor, self.run_batch, batch)
            except Exception:  # any model failure fails this batch's requests, not the server
                log.exception("forward pass failed for %s (batch of %d inputs)", self.name, batch_len(batch))
                for job in jobs:
                    if not job.future.done():
                        job.future.set_exception(InferenceFailed())
                continue
            seconds = time.perf_counter() - started
            size = batch_len(batch)
            self.stats.batches += 1
            self.stats.inputs += size
            if len(self.stats.sizes) < 10_000:
                self.stats.sizes.append(size)
            self.on_batch(size, seconds)
            offset = 0
            for job in jobs:
                rows = outputs[offset:offset + job.size]
                offset += job.size
                if not job.future.done():  # a caller that left in the meantime gets nothing
                    job.future.set_result(rows)

    def _take_batch(self) -> list[_Job]:
        """Pop live jobs from the front while they fit in one batch (the first always fits)."""
        jobs: list[_Job] = []
        total = 0
        while self._pending:
            job = self._pending[0]
            if job.future.done():
                self._pending.popleft()
                self.stats.dropped += 1
                self._set_depth(self._depth - job.size)
                continue
            if jobs and total + job.size > self.max_batch_size:
                break
            self._pending.popleft()
            self._set_depth(self._depth - job.size)
            jobs.append(job)
            total += job.size
        return jobs


__all__ = ["BatchStats", "DynamicBatcher", "InferenceFailed", "QueueFull"]

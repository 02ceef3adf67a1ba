"""RunContext: what a stage gets from the outside world for one run.

The store handle, the run id, a batched metric logger, a progress reporter and, in a
search, a pull-style pruning reporter. Stages never see optuna, rich or SQL directly.
"""

from __future__ import annotations

import traceback
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from modelyard.core.errors import YardError
from modelyard.store.environment import peak_rss_mb, process_cpu_seconds
from modelyard.store.project import Store


class MetricLogger:
    """Buffers (key, step, value) points and writes them to the store in batches."""

    def __init__(self, store: Store, run_id: str, *, flush_every: int = 200) -> None:
        self.store = store
        self.run_id = run_id
        self.flush_every = flush_every
        self._buffer: list[tuple[str, int, float]] = []

    def log(self, step: int, values: Mapping[str, float]) -> None:
        """Queue one point per key at ``step``."""
        self._buffer.extend((key, step, float(value)) for key, value in values.items())
        if len(self._buffer) >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        """Write everything queued."""
        if self._buffer:
            points, self._buffer = self._buffer, []
            self.store.runs.log_metrics(self.run_id, points)


class PruningReporter(Protocol):
    """What a tuner hands training: report intermediate values, ask whether to stop."""

    def report(self, step: int, value: float) -> None: ...

    def should_stop(self) -> bool: ...


class NeverPrune:
    """The reporter outside a search: records nothing, never stops."""

    def report(self, step: int, value: float) -> None:
        """Ignore the value."""

    def should_stop(self) -> bool:
        """Never stop."""
        return False


class Progress(Protocol):
    """A progress sink: a task with a total, advanced as work is done."""

    def start(self, description: str, total: int | None) -> None: ...

    def advance(self, n: int = 1, **fields: Any) -> None: ...

    def stop(self) -> None: ...


class SilentProgress:
    """Progress that shows nothing (tests, workers)."""

    def start(self, description: str, total: int | None) -> None:
        """Do nothing."""

    def advance(self, n: int = 1, **fields: Any) -> None:
        """Do nothing."""

    def stop(self) -> None:
        """Do nothing."""


class RichProgress:
    """A rich progress bar with ETA and free-form fields (loss, lr…)."""

    def __init__(self) -> None:
        self._progress: Any = None
        self._task: Any = None

    def start(self, description: str, total: int | None) -> None:
        """Open a bar."""
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.stop()
        self._progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                  TimeRemainingColumn(), TextColumn("{task.fields[info]}"), transient=False)
        self._progress.start()
        self._task = self._progress.add_task(description, total=total, info="")

    def advance(self, n: int = 1, **fields: Any) -> None:
        """Move the bar and show ``fields`` (e.g. loss=0.31)."""
        if self._progress is None:
            return
        info = "  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in fields.items())
        self._progress.update(self._task, advance=n, info=info)

    def stop(self) -> None:
        """Close the bar."""
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


@dataclass
class RunContext:
    """Everything a stage needs besides its config and input artifacts."""

    store: Store
    run_id: str
    metrics: MetricLogger
    progress: Progress = field(default_factory=SilentProgress)
    pruning: PruningReporter = field(default_factory=NeverPrune)
    seed: int = 0

    @property
    def work_dir(self) -> Path:
        """A per-run scratch folder in the store (checkpoints live here)."""
        # An encrypted store keeps run scratch in private memory (store/plaintext.py), not on disk.
        path = self.store.scratch_root / "runs" / self.run_id
        path.mkdir(parents=True, exist_ok=True)
        return path


@contextmanager
def stage_run(store: Store, *, kind: str, name: str, config: Mapping[str, Any], parent_run_id: str | None = None,
              progress: Progress | None = None, seed: int = 0) -> Iterator[RunContext]:
    """Open a run for one stage; it ends ``finished``, or ``failed`` with the error, whatever happens."""
    run_id = store.runs.create(kind=kind, name=name, config=config, parent_run_id=parent_run_id)
    cpu_before = process_cpu_seconds()
    ctx = RunContext(store=store, run_id=run_id, metrics=MetricLogger(store, run_id),
                     progress=progress or SilentProgress(), seed=seed)
    try:
        yield ctx
    except BaseException as exc:
        ctx.progress.stop()
        ctx.metrics.flush()
        message = str(exc) if isinstance(exc, YardError) else "".join(
            traceback.format_exception_only(type(exc), exc)).strip()
        if isinstance(exc, KeyboardInterrupt):
            message = "interrupted"
        store.runs.finish(run_id, status="failed", error=message, compute=_compute_used(cpu_before))
        raise
    ctx.progress.stop()
    ctx.metrics.flush()
    store.runs.finish(run_id, status="finished", compute=_compute_used(cpu_before))


def _compute_used(cpu_before: float) -> dict[str, Any]:
    """What the model card reports as compute: measured CPU time, and the process's peak memory."""
    # Peak RSS is the process's high-water mark so far: for a stage inside `yard run` it
    # includes the stages before it (an upper bound, said so in the card).
    return {"cpu_hours": round((process_cpu_seconds() - cpu_before) / 3600, 6),
            "peak_memory_mb": peak_rss_mb(), "measured": "process cpu time; process peak RSS"}

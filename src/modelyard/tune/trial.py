"""One trial: a modelyard run of kind ``trial`` (parent: the search run) that trains a sampled recipe.

Without cross-validation the trial run *is* the train run. With k folds, the trial run
has one ``train`` child run per fold and its value is the mean over folds (std recorded).
Training talks to the tuner only through ``ctx.pruning`` (``report`` / ``should_stop``),
so this module, not ``train``, knows about trials.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from modelyard import train as train_stage
from modelyard.config.loader import recipe_to_dict
from modelyard.config.recipe import Recipe
from modelyard.core.errors import ConfigError
from modelyard.core.refs import DatasetRef
from modelyard.store.context import MetricLogger, RunContext, stage_run
from modelyard.store.project import Store


class MetricNotRecorded(ConfigError):
    """The objective metric is not among what training recorded: the whole search stops."""


class WatchedMetricLogger(MetricLogger):
    """A metric logger that also remembers the latest value of every key (for intermediate reports)."""

    def __init__(self, store: Store, run_id: str) -> None:
        super().__init__(store, run_id)
        self.latest: dict[str, float] = {}

    def log(self, step: int, values: Mapping[str, float]) -> None:
        """Remember, then queue for the store."""
        self.latest.update({k: float(v) for k, v in values.items()})
        super().log(step, values)


class TrialReporter:
    """The pull-style reporter handed to training as ``ctx.pruning``.

    Training calls ``report(epoch, selection_score)`` after each validation pass; the
    reporter forwards the *objective metric's* latest value (from the watched logger) to
    the tuner, at ``step_offset + epoch`` so folds of one trial never reuse a step.

    Args:
        metric: the objective metric key (``valid/accuracy``).
        send: forwards (step, value) to the tuner (``trial.report``, ``ray.tune.report``).
        prune: asks the tuner whether to stop (``trial.should_prune``).
        deadline: ``time.time()`` at which the search's wall-clock budget ends (None: none).
    """

    def __init__(self, metric: str, *, send: Callable[[int, float], None], prune: Callable[[], bool],
                 deadline: float | None) -> None:
        self.metric = metric
        self.send = send
        self.prune = prune
        self.deadline = deadline
        self.logger: WatchedMetricLogger | None = None
        self.step_offset = 0
        self.stopped: str | None = None
        self.reported: list[tuple[int, float]] = []

    def report(self, step: int, value: float) -> None:
        """Forward the objective's latest value (ignored when not finite or not logged yet)."""
        latest = self.logger.latest.get(self.metric) if self.logger else None
        if latest is None or not math.isfinite(latest):
            return
        self.reported.append((self.step_offset + step, latest))
        self.send(self.step_offset + step, latest)

    def should_stop(self) -> bool:
        """Stop at the time budget, or when the tuner prunes the trial."""
        if self.deadline is not None and time.time() >= self.deadline:
            self.stopped = "time budget"
            return True
        if self.prune():
            self.stopped = "pruned"
            return True
        return False


@dataclass
class TrialOutcome:
    """What one trial produced."""

    run_id: str
    value: float
    std: float | None
    fold_values: list[float]
    model_id: str | None
    steps: int
    train_seconds: float
    stopped: str | None
    intermediate: list[tuple[int, float]] = field(default_factory=list)

    def attrs(self) -> dict[str, Any]:
        """JSON-able attributes to store with the tuner's trial."""
        return {"run_id": self.run_id, "std": self.std, "fold_values": self.fold_values, "model": self.model_id,
                "steps": self.steps, "train_seconds": round(self.train_seconds, 4), "stopped": self.stopped}


def _objective_value(store: Store, run_id: str, metric: str, watched: WatchedMetricLogger) -> float:
    """The metric at the selected (best) epoch from the run summary, else its latest logged value."""
    summary = store.runs.get(run_id).get("summary") or {}
    value = summary.get(metric, watched.latest.get(metric))
    if value is None:
        recorded = sorted(set(store.runs.metric_keys(run_id)) | {k for k, v in summary.items()
                                                                 if isinstance(v, int | float) and "/" in k})
        raise MetricNotRecorded(f"metric {metric!r} is never recorded by training (recorded: "
                                f"{', '.join(recorded) or 'nothing'})", where="tune.metric")
    return float(value)


def _train_once(store: Store, recipe: Recipe, dataset: DatasetRef, *, kind: str, parent: str,
                reporter: TrialReporter, config: dict[str, Any]) -> tuple[str, float, str, int, float]:
    """Train in a new run; returns (run id, objective value, model id, steps, seconds in train.run)."""
    with stage_run(store, kind=kind, name=recipe.name, config=config, parent_run_id=parent,
                   seed=recipe.seed) as ctx:
        return _train_in(ctx, recipe, dataset, reporter)


def _train_in(ctx: RunContext, recipe: Recipe, dataset: DatasetRef,
              reporter: TrialReporter) -> tuple[str, float, str, int, float]:
    watched = WatchedMetricLogger(ctx.store, ctx.run_id)
    ctx.metrics = watched
    ctx.pruning = reporter
    reporter.logger = watched
    started = time.perf_counter()
    model = train_stage.run(recipe, dataset, ctx=ctx)
    seconds = time.perf_counter() - started
    watched.flush()
    summary = ctx.store.runs.get(ctx.run_id).get("summary") or {}
    value = _objective_value(ctx.store, ctx.run_id, reporter.metric, watched)
    return ctx.run_id, value, model.id, int(summary.get("steps", 0)), seconds


def run_trial(store: Store, recipe: Recipe, params: Mapping[str, Any], *, number: int, search_run_id: str,
              datasets: list[DatasetRef], cross_validated: bool, reporter: TrialReporter,
              on_run: Callable[[str], None] | None = None) -> TrialOutcome:
    """Train one sampled recipe (once, or once per fold) inside a ``trial`` run.

    Args:
        store: the project store.
        recipe: the trial's validated recipe (see :func:`~modelyard.tune.space.trial_recipe`).
        params: the sampled values by recipe path (recorded as the run's params).
        number: the tuner's trial number.
        search_run_id: the parent search run.
        datasets: the dataset, or one dataset per fold when ``cross_validated``.
        cross_validated: average over ``datasets`` as folds.
        reporter: the pruning reporter (intermediate values, stop requests).
        on_run: called with the trial run's id as soon as the run exists (links tuner and store).

    Raises:
        MetricNotRecorded: the objective is not recorded (the caller stops the search).
        YardError: the trial failed (NaN loss, bad sampled value…); its run is marked failed.
    """
    config = recipe_to_dict(recipe)
    with stage_run(store, kind="trial", name=recipe.name, config=config, parent_run_id=search_run_id,
                   seed=recipe.seed) as ctx:
        if on_run is not None:
            on_run(ctx.run_id)
        store.runs.log_params(ctx.run_id, {"trial": number, **{f"tune.{k}": v for k, v in params.items()}})
        if not cross_validated:
            run_id, value, model_id, steps, seconds = _train_in(ctx, recipe, datasets[0], reporter)
            values: list[float] = [value]
        else:
            values, steps, seconds, model_id = [], 0, 0.0, None
            for index, fold in enumerate(datasets):
                reporter.step_offset = index * recipe.train.epochs
                _, value, model_id, fold_steps, fold_seconds = _train_once(
                    store, recipe, fold, kind="train", parent=ctx.run_id, reporter=reporter, config=config)
                values.append(value)
                steps += fold_steps
                seconds += fold_seconds
                ctx.metrics.log(index, {"cv/fold_value": value})
                if reporter.stopped:
                    break
            run_id = ctx.run_id
        mean = statistics.fmean(values)
        std = statistics.pstdev(values) if len(values) > 1 else None
        outcome = TrialOutcome(run_id=ctx.run_id, value=mean, std=std, fold_values=values,
                               model_id=None if cross_validated else model_id, steps=steps,
                               train_seconds=seconds, stopped=reporter.stopped, intermediate=reporter.reported)
        summary = dict(store.runs.get(ctx.run_id).get("summary") or {})
        summary.update({"trial": number, "objective": reporter.metric, "value": mean, "std": std,
                        "fold_values": values if cross_validated else None,
                        "state": "pruned" if reporter.stopped else "complete", "stopped": reporter.stopped,
                        "steps": steps, "train_seconds": round(seconds, 4), "params": dict(params)})
        store.runs.set_summary(ctx.run_id, summary)
        assert run_id
    return outcome

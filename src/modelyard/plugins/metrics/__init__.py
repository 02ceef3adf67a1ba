"""Metrics: ``fn(*, y_true, y_pred, y_prob=None) -> float`` registered in ``METRICS``.

Register a metric with :func:`metric`, which also records the tasks it fits, whether it
needs class probabilities, whether higher is better, and (optionally) a vectorised
``batch`` form used by the bootstrap. A metric that is undefined on its input (ROC-AUC
with one class present) raises :class:`UndefinedMetric` with the reason; evaluation
reports it as undefined instead of failing.

Tasks: ``classification``, ``regression``, ``language-modeling`` (``y_true``: target token
ids, ``y_prob``: (N, V) next-token probabilities) and ``generation`` (``y_true``:
reference strings, ``y_pred``: generated strings).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from modelyard.core.errors import ConfigError
from modelyard.plugins import METRICS, load_builtins

MetricFn = Callable[..., float]
# batch(y_true, y_pred, y_prob, index) -> one value per row of ``index`` (B, n) of resampled rows.
BatchFn = Callable[[Any, Any, Any, Any], Any]

TASKS = ("classification", "regression", "language-modeling", "generation")


class UndefinedMetric(ValueError):
    """The metric has no value on this input; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True)
class MetricInfo:
    """What a registered metric fits and needs."""

    name: str
    tasks: tuple[str, ...]
    needs_proba: bool
    higher_is_better: bool
    batch: BatchFn | None
    summary: str


METRIC_INFO: dict[str, MetricInfo] = {}


def metric(name: str, *, tasks: tuple[str, ...], needs_proba: bool = False, higher_is_better: bool = True,
           batch: BatchFn | None = None) -> Callable[[MetricFn], MetricFn]:
    """Register ``fn`` in ``METRICS`` under ``name`` with its task and needs."""

    def decorate(fn: MetricFn) -> MetricFn:
        METRICS.register(name)(fn)
        summary = (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else ""
        METRIC_INFO[name] = MetricInfo(name=name, tasks=tasks, needs_proba=needs_proba,
                                       higher_is_better=higher_is_better, batch=batch, summary=summary)
        return fn

    return decorate


def info(name: str) -> MetricInfo:
    """The :class:`MetricInfo` of a registered metric (third-party ones: any task, no batch form).

    Raises:
        PluginError: unknown metric name, with close matches.
    """
    load_builtins()
    fn = METRICS.get(name)
    if name in METRIC_INFO:
        return METRIC_INFO[name]
    return MetricInfo(name=name, tasks=TASKS, needs_proba=False, higher_is_better=True, batch=None,
                      summary=(fn.__doc__ or "").strip().split("\n")[0])


def check_fits(names: list[str], task: str, *, where: str = "evaluate.metrics") -> None:
    """Refuse metrics that do not fit ``task`` (``mae`` on a classifier), naming ones that do."""
    for name in names:
        fitting = info(name)
        if task not in fitting.tasks:
            usable = sorted(n for n, i in METRIC_INFO.items() if task in i.tasks)
            raise ConfigError(f"metric {name!r} does not fit a {task} task (it is for {', '.join(fitting.tasks)})",
                              where=where, hint=f"metrics for {task}: {', '.join(usable)}")


__all__ = ["METRIC_INFO", "TASKS", "MetricInfo", "UndefinedMetric", "check_fits", "info", "metric"]

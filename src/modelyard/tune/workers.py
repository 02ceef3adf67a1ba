"""The search loop (ask → train → tell) and the processes that run it in parallel.

One loop serves both cases: with ``n_jobs == 1`` it runs in the search's own process;
otherwise each of ``n_jobs`` spawned processes runs it on the same journal-backed study,
with its share of the trial budget, its own sampler seed and ``cores // n_jobs`` torch
threads, so parallel trials do not fight over the cores.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import optuna

from modelyard.config.loader import validate_recipe
from modelyard.config.recipe import Recipe
from modelyard.core import errors
from modelyard.core.errors import YardError
from modelyard.core.logging import get_logger
from modelyard.core.refs import DatasetRef
from modelyard.store.project import Store, open_store
from modelyard.tune.space import suggest, trial_recipe
from modelyard.tune.study import make_pruner, make_sampler, open_storage, quiet_optuna
from modelyard.tune.trial import MetricNotRecorded, TrialReporter, run_trial

log = get_logger("modelyard.tune")

# What a single trial may raise and still leave the search going: our own errors (NaN loss,
# a sampled value the model rejects) and the runtime errors torch raises (shape, out of memory).
TRIAL_ERRORS: tuple[type[BaseException], ...] = (YardError, RuntimeError, ValueError, FloatingPointError)


@dataclass
class WorkerPlan:
    """Everything a search loop needs, as plain data (it crosses a process boundary)."""

    store_root: str
    store_url: str
    study: str
    journal: str
    recipe: dict[str, Any]
    datasets: list[str]
    cross_validated: bool
    search_run_id: str
    trials: int | None
    deadline: float | None
    seed: int
    max_steps: int
    threads: int | None = None


class _TrialFailed(Exception):
    """A trial's own failure, recorded on the trial; Optuna catches it and the search goes on."""


def search_loop(store: Store, study: optuna.Study, recipe: Recipe, plan: WorkerPlan) -> int:
    """Run trials until this loop's share of the budget, the deadline, or the grid is used up.

    Uses ``study.optimize`` (not bare ask/tell) so the grid sampler can end the study when
    every grid point has run.

    Returns:
        The number of trials this loop ran.

    Raises:
        MetricNotRecorded: the objective metric does not exist (no point in more trials).
    """
    assert recipe.tune is not None
    cfg = recipe.tune
    datasets = [DatasetRef(id=d) for d in plan.datasets]
    ran = 0

    def objective(trial: optuna.Trial) -> float:
        nonlocal ran
        ran += 1
        params = suggest(trial, cfg)
        trial.set_user_attr("params", params)
        reporter = TrialReporter(cfg.metric, send=lambda step, value: trial.report(value, step),
                                 prune=trial.should_prune, deadline=plan.deadline)
        try:
            sampled = trial_recipe(recipe, params, source=f"trial {trial.number}")
            outcome = run_trial(store, sampled, params, number=trial.number, search_run_id=plan.search_run_id,
                                datasets=datasets, cross_validated=plan.cross_validated, reporter=reporter,
                                on_run=lambda run_id: trial.set_user_attr("run_id", run_id))
        except MetricNotRecorded:
            raise
        except TRIAL_ERRORS as exc:
            trial.set_user_attr("error", f"{type(exc).__name__}: {exc}")
            log.warning("trial %d failed: %s", trial.number, exc)
            raise _TrialFailed(str(exc)) from exc
        trial.set_user_attr("outcome", outcome.attrs())  # one journal write, not one per figure
        log.info("trial %d %s: %s = %.4f after %d steps", trial.number, outcome.stopped or "complete", cfg.metric,
                 outcome.value, outcome.steps)
        if outcome.stopped:
            raise optuna.TrialPruned(outcome.stopped)
        return outcome.value

    timeout = None if plan.deadline is None else max(0.0, plan.deadline - time.time())
    if timeout == 0.0 or plan.trials == 0:
        return 0
    study.optimize(objective, n_trials=plan.trials, timeout=timeout, catch=(_TrialFailed,))
    return ran


def load_study(plan: WorkerPlan, recipe: Recipe) -> optuna.Study:
    """The plan's study with this loop's own seeded sampler and the pruner."""
    assert recipe.tune is not None
    return optuna.load_study(study_name=plan.study, storage=open_storage(Path(plan.journal)),
                             sampler=make_sampler(recipe.tune, seed=plan.seed),
                             pruner=make_pruner(recipe.tune, max_steps=plan.max_steps))


def worker_main(plan_data: dict[str, Any], errors_out: Any) -> None:
    """Entry point of one spawned trial process: run the loop, report a YardError back instead of a traceback."""
    plan = WorkerPlan(**plan_data)
    if plan.threads:
        import torch

        torch.set_num_threads(plan.threads)
    quiet_optuna()
    try:
        recipe = validate_recipe(plan.recipe, source="<search>")
        with open_store(plan.store_root, plan.store_url) as store:
            search_loop(store, load_study(plan, recipe), recipe, plan)
    except YardError as exc:
        errors_out.put((type(exc).__name__, exc.message, exc.where, exc.hint))


def run_parallel(plans: list[WorkerPlan]) -> None:
    """Run one spawned process per plan and wait for all; re-raise the first YardError a worker met.

    Spawned, not forked: a fork of a process that already started torch's thread pools can hang.
    """
    context = multiprocessing.get_context("spawn")
    errors_out = context.SimpleQueue()
    processes = [context.Process(target=worker_main, args=(asdict(plan), errors_out), daemon=True,
                                 name=f"yard-trial-{i}") for i, plan in enumerate(plans)]
    for process in processes:
        process.start()
    try:
        for process in processes:
            process.join()
    except KeyboardInterrupt:
        for process in processes:
            process.terminate()
        raise
    if not errors_out.empty():
        name, message, where, hint = errors_out.get()
        cls = getattr(errors, name, None) or (MetricNotRecorded if name == "MetricNotRecorded" else YardError)
        if not (isinstance(cls, type) and issubclass(cls, YardError)):
            cls = YardError
        raise cls(message, where=where, hint=hint)
    crashed = [p.name for p in processes if p.exitcode not in (0, None)]
    if crashed:
        raise errors.TrainingError(f"trial process(es) {', '.join(crashed)} exited abnormally",
                                   hint="completed trials are kept: rerun with --resume")


def split_budget(remaining: int | None, workers: int) -> list[int | None]:
    """Share ``remaining`` trials among ``workers`` as evenly as possible (None: unlimited each)."""
    if remaining is None:
        return [None] * workers
    base, extra = divmod(remaining, workers)
    return [base + (1 if i < extra else 0) for i in range(workers)]


def usable_cores() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1

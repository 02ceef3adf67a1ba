"""The Optuna study of a search: journal storage in the store, samplers, pruners, resume rules.

The study lives in ``<store>/tune/<study>.journal`` (Optuna's JournalFileBackend): an
append-only log that several trial processes may write at once (file lock) and that
survives a kill, so a search resumes where it stopped. Optuna's documentation advises
against SQLite for parallel workers, hence the journal even though the store is SQLite.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from modelyard.config.recipe import Recipe
from modelyard.config.tune import TuneConfig
from modelyard.core.errors import ConfigError
from modelyard.store.project import Store
from modelyard.tune.space import optuna_grid, space_fingerprint, suggest

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
_SAFE = re.compile(r"[^A-Za-z0-9._-]")
_INTERRUPTED = "interrupted (the search was killed)"


def quiet_optuna() -> None:
    """Optuna logs every trial (and each caught failure with its traceback); modelyard reports trials itself."""
    optuna.logging.set_verbosity(logging.ERROR)


def study_name(recipe: Recipe) -> str:
    """The study's name: ``tune.study_name`` or the recipe name."""
    assert recipe.tune is not None
    return recipe.tune.study_name or recipe.name


def journal_path(store: Store, name: str) -> Path:
    """Where the study's journal lives in the store."""
    folder = store.root / "tune"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{_SAFE.sub('_', name)}.journal"


def open_storage(path: Path) -> JournalStorage:
    """A journal storage on ``path`` (safe for several processes on one machine)."""
    return JournalStorage(JournalFileBackend(str(path)))


def make_sampler(cfg: TuneConfig, *, seed: int) -> optuna.samplers.BaseSampler:
    """The sampler named by ``cfg.sampler``, seeded."""
    if cfg.sampler == "grid":
        return optuna.samplers.GridSampler(optuna_grid(cfg), seed=seed)
    if cfg.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if cfg.sampler == "cmaes":
        # CMA-ES models float/int dimensions; categorical ones are sampled at random (no warning per trial).
        return optuna.samplers.CmaEsSampler(seed=seed, n_startup_trials=cfg.startup_trials,
                                            warn_independent_sampling=False)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=cfg.startup_trials)


def make_pruner(cfg: TuneConfig, *, max_steps: int) -> optuna.pruners.BasePruner:
    """The pruner named by ``cfg.pruner``; ``max_steps`` is the epochs (times folds) of a trial."""
    if cfg.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=cfg.startup_trials, n_warmup_steps=cfg.warmup_steps)
    if cfg.pruner == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=max(1, cfg.warmup_steps))
    if cfg.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=max(1, cfg.warmup_steps), max_resource=max(2, max_steps))
    return optuna.pruners.NopPruner()


def open_study(store: Store, recipe: Recipe, *, resume: bool, sampler_seed: int,
               max_steps: int) -> optuna.Study:
    """Create the study, or load it when ``resume`` and its space and base recipe match.

    Raises:
        ConfigError: the study exists and ``resume`` is off, or it exists with another
            space / objective / base recipe (never mixed: its trials would not compare).
    """
    assert recipe.tune is not None
    cfg = recipe.tune
    name = study_name(recipe)
    storage = open_storage(journal_path(store, name))
    fingerprint = space_fingerprint(recipe)
    existing = {s.study_name: s for s in optuna.study.get_all_study_summaries(storage)}
    sampler = make_sampler(cfg, seed=sampler_seed)
    pruner = make_pruner(cfg, max_steps=max_steps)
    if name in existing:
        study = optuna.load_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner)
        stored = study.user_attrs.get("fingerprint", {})
        for part, what in (("space", "search space or objective"), ("recipe", "base recipe")):
            if stored.get(part) != fingerprint[part]:
                raise ConfigError(f"study {name!r} exists with a different {what}; its trials would not compare",
                                  where="tune.study_name",
                                  hint="choose another tune.study_name, or restore the recipe it was started with")
        if not resume:
            done = len(study.get_trials(deepcopy=False, states=FINISHED))
            raise ConfigError(f"study {name!r} already exists ({done} finished trials)", where="tune.study_name",
                              hint="pass --resume to continue it, or set another tune.study_name")
        return study
    study = optuna.create_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner,
                                direction=cfg.direction)
    study.set_user_attr("fingerprint", fingerprint)
    study.set_user_attr("metric", cfg.metric)
    return study


def fail_interrupted(study: optuna.Study, store: Store) -> list[int]:
    """Mark trials left RUNNING by a killed search as FAIL (and their runs failed); returns their numbers.

    Only the search that owns the study calls this, before it starts workers, so no live
    worker's trial is touched.
    """
    numbers = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING)):
        study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
        run_id = trial.user_attrs.get("run_id")
        if run_id:
            record = store.runs.get(run_id)
            if record["status"] == "running":
                store.runs.finish(run_id, status="failed", error=_INTERRUPTED)
        numbers.append(trial.number)
    return numbers


def count_finished(study: optuna.Study) -> int:
    """Trials that count against the budget (complete, pruned or failed)."""
    return len(study.get_trials(deepcopy=False, states=FINISHED))


def trial_rows(study: optuna.Study) -> list[dict[str, Any]]:
    """Every trial as a plain dict (the results table), by number."""
    rows = []
    for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        duration = (t.datetime_complete - t.datetime_start).total_seconds() \
            if t.datetime_complete and t.datetime_start else None
        # A finished trial's figures are one "outcome" attribute (studies written before kept them flat).
        attrs = {**t.user_attrs, **t.user_attrs.get("outcome", {})}
        rows.append({"number": t.number, "state": t.state.name.lower(), "value": t.value,
                     "params": dict(attrs.get("params", t.params)), "run_id": attrs.get("run_id"),
                     "std": attrs.get("std"), "fold_values": attrs.get("fold_values"),
                     "model": attrs.get("model"), "steps": attrs.get("steps"),
                     "train_seconds": attrs.get("train_seconds"), "stopped": attrs.get("stopped"),
                     "error": attrs.get("error") or (_INTERRUPTED if t.state == TrialState.FAIL else None),
                     "duration_s": duration,
                     "intermediate": sorted([int(k), float(v)] for k, v in t.intermediate_values.items())})
    return rows


def replayed_importances(cfg: TuneConfig, results: list[tuple[dict[str, Any], float]], *,
                         seed: int) -> dict[str, float]:
    """fANOVA importances of complete trials that ran outside an Optuna study of ours (Ray Tune).

    ``results``: (raw parameters as the searcher stored them, objective value) per complete
    trial. Each is replayed through the space with a ``FixedTrial`` (which records the
    distributions the space asks for, conditions included) into an in-memory study.
    """
    study = optuna.create_study(direction=cfg.direction)
    for raw, value in results:
        fixed = optuna.trial.FixedTrial(raw)
        suggest(fixed, cfg)
        study.add_trial(optuna.trial.create_trial(params=fixed.params, distributions=fixed.distributions,
                                                  value=float(value)))
    return importances(study, seed=seed)


def importances(study: optuna.Study, *, seed: int) -> dict[str, float]:
    """fANOVA importance of each parameter ({} with fewer than two complete trials, or one that varies)."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(complete) < 2:
        return {}
    evaluator = optuna.importance.FanovaImportanceEvaluator(seed=seed)
    try:
        found = optuna.importance.get_param_importances(study, evaluator=evaluator)
    except (RuntimeError, ValueError):
        # Raised when no parameter is shared by every complete trial or none of them varies.
        return {}
    return {k: round(float(v), 6) for k, v in found.items()}

"""The recipe's ``tune:`` section (stage 3, search): a search space addressed by recipe paths.

    tune:
      metric: valid/accuracy
      direction: maximize
      n_trials: 20
      space:
        train.optimizer.lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
        model.params.dropout: {type: float, low: 0.0, high: 0.5}
        train.optimizer.name: {type: categorical, choices: [adamw, sgd]}
        train.schedule.warmup: {type: float, low: 0.0, high: 0.2, when: {train.optimizer.name: sgd}}

Everything here is checked without torch or optuna: the CLI validates a search before it
loads either. Whether a path exists is checked against the Recipe schema by
:func:`check_space_paths` (called from the Recipe's validator, which knows the schema).
"""

from __future__ import annotations

import difflib
import math
import types
import typing
from collections.abc import Iterable
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, Field, model_validator

from modelyard.config.base import Section

# Recipe paths the search must never change: they name the run, its schema or the search itself.
_FROZEN_ROOTS = ("version", "name", "task", "tune")


class _Param(Section):
    """What every search dimension has."""

    when: dict[str, Any] | None = Field(
        default=None,
        description="Sample this dimension only when another dimension took one of these values, e.g. "
                    "{train.optimizer.name: sgd} or {train.optimizer.name: [sgd, adam]} (conditional choice).",
    )


class FloatParam(_Param):
    """A real number in [low, high], linear or log scale, optionally on a step grid."""

    type: Literal["float"] = Field(description="Dimension kind: float.")
    low: float = Field(description="Smallest value (inclusive).")
    high: float = Field(description="Largest value (inclusive).")
    log: bool = Field(default=False, description="Sample on a log scale (needs low > 0).")
    step: float | None = Field(default=None, gt=0.0, description="Grid step (needed by the grid sampler).")

    @model_validator(mode="after")
    def _range(self) -> FloatParam:
        _check_range(self.low, self.high, self.log, self.step)
        if not (math.isfinite(self.low) and math.isfinite(self.high)):
            raise ValueError(f"low and high must be finite (got {self.low}, {self.high})")
        return self


class IntParam(_Param):
    """An integer in [low, high], linear or log scale, on a step grid (default step 1)."""

    type: Literal["int"] = Field(description="Dimension kind: int.")
    low: int = Field(description="Smallest value (inclusive).")
    high: int = Field(description="Largest value (inclusive).")
    log: bool = Field(default=False, description="Sample on a log scale (needs low > 0, step 1).")
    step: int = Field(default=1, ge=1, description="Grid step.")

    @model_validator(mode="after")
    def _range(self) -> IntParam:
        _check_range(self.low, self.high, self.log, self.step)
        if self.log and self.step != 1:
            raise ValueError("an int dimension on a log scale needs step 1")
        return self


class CategoricalParam(_Param):
    """One of a list of values (strings, numbers, booleans, null, or lists such as layer widths)."""

    type: Literal["categorical"] = Field(description="Dimension kind: categorical.")
    choices: list[Any] = Field(description="The values to choose from (at least one).")

    @model_validator(mode="after")
    def _has_choices(self) -> CategoricalParam:
        if not self.choices:
            raise ValueError("a categorical dimension needs at least one choice")
        return self


ParamSpec = Annotated[FloatParam | IntParam | CategoricalParam, Field(discriminator="type")]


def _check_range(low: float, high: float, log: bool, step: float | None) -> None:
    if low > high:
        raise ValueError(f"low {low} is greater than high {high}")
    if log and low <= 0:
        raise ValueError(f"a log-scale dimension needs low > 0 (got low {low})")
    if log and step is not None and not isinstance(step, int):
        raise ValueError("a float dimension cannot be both log-scale and stepped")


class CrossValidationConfig(Section):
    """k-fold cross-validation of every trial over the train + valid rows (test stays held out)."""

    folds: int = Field(ge=2, le=20, description="Number of folds k; the trial's value is the mean over folds.")
    stratify: bool = Field(default=True, description="Keep class proportions in every fold (classification).")


class TuneConfig(Section):
    """Stage 3: search hyperparameters with Optuna (or Ray Tune), each trial a normal train run."""

    space: dict[str, ParamSpec] = Field(
        description="Search dimensions keyed by recipe path (train.optimizer.lr, model.params.dropout, …).")
    metric: str = Field(default="valid/accuracy",
                        description="Objective: a metric training records (valid/accuracy, valid/loss, …).")
    direction: Literal["maximize", "minimize"] = Field(default="maximize",
                                                       description="Optimise the metric up or down.")
    sampler: Literal["tpe", "random", "grid", "cmaes"] = Field(
        default="tpe", description="Search strategy: tpe (Bayesian, default), random, grid, cmaes.")
    pruner: Literal["none", "median", "halving", "hyperband"] = Field(
        default="median", description="Stop unpromising trials early: none, median, halving (successive), hyperband.")
    n_trials: int | None = Field(default=20, ge=1, description="Trial budget (null: only the time limit).")
    timeout_s: float | None = Field(default=None, gt=0, description="Wall-clock budget in seconds (null: none).")
    n_jobs: int = Field(default=1, ge=1, description="Trials run in parallel processes (capped at the cores).")
    seed: int | None = Field(default=None, description="Sampler seed (default: the recipe seed).")
    startup_trials: int = Field(default=5, ge=0,
                                description="Random trials before TPE models the space; also the pruners' start.")
    warmup_steps: int = Field(default=1, ge=0, description="Epochs a trial runs before it may be pruned.")
    cv: CrossValidationConfig | None = Field(default=None, description="k-fold cross-validation (null: off).")
    refit: bool = Field(default=False,
                        description="Retrain the best config on train + valid for the final model.")
    study_name: str | None = Field(default=None, description="Study name in the store (default: the recipe name).")
    backend: Literal["optuna", "ray"] = Field(default="optuna",
                                              description="Run trials here (optuna) or on a Ray cluster (ray).")
    ray_address: str | None = Field(default=None,
                                    description="Ray cluster address (backend ray), e.g. 'auto' or 'ray://host:10001'.")

    @model_validator(mode="after")
    def _coherent(self) -> TuneConfig:
        if not self.space:
            raise ValueError("space is empty: name at least one recipe path to search")
        if self.n_trials is None and self.timeout_s is None:
            raise ValueError("set n_trials, timeout_s or both: a search needs a budget")
        if not (self.metric.startswith(("valid/", "train/")) and len(self.metric.split("/", 1)[1]) > 0):
            raise ValueError(f"metric {self.metric!r} must be a recorded series such as valid/accuracy or valid/loss")
        for path, spec in self.space.items():
            if spec.when is None:
                continue
            for other, values in spec.when.items():
                if other not in self.space:
                    raise ValueError(f"space.{path}.when names {other!r}, which is not a dimension of the space")
                parent = self.space[other]
                allowed = values if isinstance(values, list) else [values]
                if isinstance(parent, CategoricalParam):
                    missing = [v for v in allowed if v not in parent.choices]
                    if missing:
                        raise ValueError(f"space.{path}.when: {missing!r} is not a choice of {other}")
                if other == path:
                    raise ValueError(f"space.{path}.when refers to itself")
        if self.sampler == "grid":
            for path, spec in self.space.items():
                if isinstance(spec, FloatParam) and spec.step is None:
                    raise ValueError(f"grid search needs a step for the continuous dimension {path} "
                                     "(add step:, or make it categorical)")
                if spec.when is not None:
                    raise ValueError(f"grid search cannot use the conditional dimension {path} "
                                     "(use tpe or random, or drop 'when')")
        if self.backend == "ray" and not self.ray_address:
            raise ValueError("backend 'ray' needs ray_address ('auto', 'local' or 'ray://host:port')")
        return self


def grid_values(spec: FloatParam | IntParam | CategoricalParam) -> list[Any]:
    """Every value of a dimension on its grid (categorical choices, or low..high by step)."""
    if isinstance(spec, CategoricalParam):
        return list(spec.choices)
    assert spec.step is not None  # the TuneConfig validator refuses a stepless float in a grid
    count = math.floor((spec.high - spec.low) / spec.step + 1e-9) + 1
    values = [spec.low + i * spec.step for i in range(count)]
    return [int(v) for v in values] if isinstance(spec, IntParam) else [round(v, 12) for v in values]


def grid_size(cfg: TuneConfig) -> int:
    """The number of points of the full grid of ``cfg.space``."""
    return math.prod(len(grid_values(spec)) for spec in cfg.space.values())


def check_space_paths(paths: Iterable[str], recipe_model: type[BaseModel]) -> None:
    """Check that every search path is a field of ``recipe_model`` (the Recipe).

    Free-form mappings (``model.params``) accept any key below them: the model factory
    checks those when a trial builds it.

    Raises:
        ValueError: naming the path, with the closest known paths.
    """
    known = sorted(_leaf_paths(recipe_model, ""))
    for path in paths:
        if not isinstance(path, str) or not path or any(not part for part in path.split(".")):
            raise ValueError(f"space: {path!r} is not a dotted recipe path")
        if path.split(".")[0] in _FROZEN_ROOTS:
            raise ValueError(f"space: {path!r} cannot be searched (name, version, task and tune are fixed)")
        if not _path_exists(recipe_model, path.split(".")):
            raise ValueError(f"space: {path!r} is not a recipe field{_did_you_mean(path, known)}")


def _did_you_mean(path: str, known: list[str]) -> str:
    last = path.split(".")[-1]
    close = [k for k in known if k.split(".")[-1] == last]
    close += [c for c in difflib.get_close_matches(path, known, n=3, cutoff=0.6) if c not in close]
    return f" (did you mean {', '.join(repr(c) for c in close[:3])}?)" if close else ""


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models inside an annotation (``X``, ``X | None``, ``Annotated[X, …]``)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType, Annotated):
        return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]
    return []


def _is_mapping(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType):
        return any(_is_mapping(a) for a in typing.get_args(annotation))
    return origin is dict or annotation is dict


def _field(model: type[BaseModel], key: str) -> Any:
    for name, info in model.model_fields.items():
        if key in (name, info.alias):
            return info
    return None


def _path_exists(model: type[BaseModel], parts: list[str]) -> bool:
    info = _field(model, parts[0])
    if info is None:
        return False
    if len(parts) == 1:
        return True
    if _is_mapping(info.annotation):
        return True
    return any(_path_exists(sub, parts[1:]) for sub in _models_in(info.annotation))


def _leaf_paths(model: type[BaseModel], prefix: str, depth: int = 0) -> set[str]:
    out: set[str] = set()
    for name, info in model.model_fields.items():
        key = info.alias or name
        path = f"{prefix}{key}"
        subs = _models_in(info.annotation)
        if subs and depth < 6:
            for sub in subs:
                out |= _leaf_paths(sub, path + ".", depth + 1)
        else:
            out.add(path)
    return out

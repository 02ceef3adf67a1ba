"""The search space: sample a trial's values and turn them into a validated trial recipe.

A sampled trial goes through the one validation path of the config package: its values
are written into the recipe dict at their recipe paths and the whole dict is validated
again by :func:`~modelyard.config.loader.validate_recipe`.
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import json
from collections.abc import Mapping
from typing import Any, Protocol

from modelyard.config.loader import recipe_to_dict, validate_recipe
from modelyard.config.recipe import Recipe
from modelyard.config.tune import CategoricalParam, FloatParam, IntParam, TuneConfig, grid_values
from modelyard.core.errors import ConfigError
from modelyard.core.registry import unknown_name_message


class TrialLike(Protocol):
    """The part of ``optuna.trial.Trial`` the space uses (also what Ray's OptunaSearch hands over)."""

    def suggest_float(self, name: str, low: float, high: float, *, step: float | None = None,
                      log: bool = False) -> float: ...

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int: ...

    def suggest_categorical(self, name: str, choices: Any) -> Any: ...


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, bool | int | float | str)


def encoded_choices(spec: CategoricalParam) -> list[Any]:
    """Choices as Optuna stores them: scalars as they are, lists and mappings as JSON text."""
    if all(_is_scalar(c) for c in spec.choices):
        return list(spec.choices)
    return [json.dumps(c, sort_keys=True) for c in spec.choices]


def decode_choice(spec: CategoricalParam, value: Any) -> Any:
    """The recipe value of an encoded categorical choice."""
    if all(_is_scalar(c) for c in spec.choices):
        return value
    return json.loads(value)


def _active(spec: FloatParam | IntParam | CategoricalParam, chosen: Mapping[str, Any]) -> bool | None:
    """Whether a conditional dimension applies (None: a dimension it depends on is not decided yet)."""
    if spec.when is None:
        return True
    for other, wanted in spec.when.items():
        if other not in chosen:
            return None
        allowed = wanted if isinstance(wanted, list) else [wanted]
        if chosen[other] not in allowed:
            return False
    return True


def suggest(trial: TrialLike, cfg: TuneConfig) -> dict[str, Any]:
    """Sample every active dimension of ``cfg.space`` from ``trial``; returns {recipe path: value}.

    Dimensions whose ``when`` is not met are not sampled (and so not set in the trial recipe).
    """
    chosen: dict[str, Any] = {}
    skipped: set[str] = set()
    pending = dict(cfg.space)
    while pending:
        progressed = False
        for path, spec in list(pending.items()):
            # A dimension that depends on a skipped one is skipped too.
            if spec.when and any(other in skipped for other in spec.when):
                active: bool | None = False
            else:
                active = _active(spec, chosen)
            if active is None:
                continue
            del pending[path]
            progressed = True
            if not active:
                skipped.add(path)
                continue
            chosen[path] = _suggest_one(trial, path, spec)
        if not progressed:  # pragma: no cover - the config validator refuses cycles through unknown names
            raise ConfigError(f"tune.space: circular 'when' between {sorted(pending)}")
    return chosen


def _suggest_one(trial: TrialLike, path: str, spec: FloatParam | IntParam | CategoricalParam) -> Any:
    if isinstance(spec, FloatParam):
        return trial.suggest_float(path, spec.low, spec.high, step=spec.step, log=spec.log)
    if isinstance(spec, IntParam):
        return trial.suggest_int(path, spec.low, spec.high, step=spec.step, log=spec.log)
    return decode_choice(spec, trial.suggest_categorical(path, encoded_choices(spec)))


def decode_params(cfg: TuneConfig, raw: Mapping[str, Any]) -> dict[str, Any]:
    """Recipe values of parameters as Optuna (or Ray's OptunaSearch) stored them."""
    out = {}
    for path, value in raw.items():
        spec = cfg.space.get(path)
        out[path] = decode_choice(spec, value) if isinstance(spec, CategoricalParam) else value
    return out


def optuna_grid(cfg: TuneConfig) -> dict[str, list[Any]]:
    """The grid sampler's search space (values in Optuna's encoding)."""
    out: dict[str, list[Any]] = {}
    for path, spec in cfg.space.items():
        out[path] = encoded_choices(spec) if isinstance(spec, CategoricalParam) else grid_values(spec)
    return out


def base_dict(recipe: Recipe) -> dict[str, Any]:
    """The resolved recipe as a plain dict, without its ``tune:`` section."""
    raw = recipe_to_dict(recipe)
    raw.pop("tune", None)
    return raw


def trial_recipe(recipe: Recipe, params: Mapping[str, Any], *, source: str = "<trial>") -> Recipe:
    """The recipe of one trial: ``params`` set at their recipe paths, validated like any recipe.

    The trial recipe has no ``tune:`` section, so it is exactly what `yard run` would train.

    Raises:
        ConfigError: a sampled value fails validation (named by path, value and trial).
    """
    raw = base_dict(recipe)
    for path, value in params.items():
        node = raw
        parts = path.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"{path}: {part} is not a section", where=source)
            node = child
        node[parts[-1]] = copy.deepcopy(value)
    return validate_recipe(raw, source=source)


def check_model_params(recipe: Recipe, cfg: TuneConfig) -> None:
    """Check ``model.params.<name>`` paths against the model factory's keyword arguments.

    The recipe schema keeps ``model.params`` free-form, so this is where a misspelt
    parameter is caught, before any trial trains.

    Raises:
        ConfigError: an unknown parameter, with did-you-mean.
    """
    from modelyard.plugins import MODELS, load_builtins

    load_builtins()
    factory = MODELS.get(recipe.model.name)
    accepted = [name for name, p in inspect.signature(factory).parameters.items()
                if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if any(p.kind is p.VAR_KEYWORD for p in inspect.signature(factory).parameters.values()):
        return
    for path in cfg.space:
        parts = path.split(".")
        if parts[:2] == ["model", "params"] and len(parts) >= 3 and parts[2] not in accepted:
            message = unknown_name_message(f"parameter of model {recipe.model.name!r}", parts[2], accepted)
            raise ConfigError(f"space: {path!r}: {message}", where="tune.space")


def space_fingerprint(recipe: Recipe) -> dict[str, str]:
    """Digests of what makes trials comparable: the space and objective, and the base recipe.

    A study can be resumed only when both match; budgets, sampler, pruner and scale-out may change.
    """
    assert recipe.tune is not None
    tune = recipe.tune.model_dump(mode="json")
    meaning = {key: tune[key] for key in ("space", "metric", "direction", "cv")}
    return {"space": _digest(meaning), "recipe": _digest(base_dict(recipe))}


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]

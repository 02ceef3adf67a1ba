"""Load, migrate, override and validate recipes, with errors that say file:line and field path.

There is one validation path: YAML text, ``key=value`` overrides, tune's sampled values
and API payloads are all merged into a plain dict and validated by :func:`validate_recipe`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from modelyard.config.recipe import RECIPE_VERSION, Recipe
from modelyard.core.errors import ConfigError

# version -> function turning a recipe dict of that version into the next version.
Migration = Callable[[dict[str, Any]], dict[str, Any]]


def _migrate_v0(raw: dict[str, Any]) -> dict[str, Any]:
    """v0 kept ``train.lr`` / ``train.weight_decay`` flat; v1 nests them in ``train.optimizer``."""
    out = copy.deepcopy(raw)
    train = out.get("train")
    if isinstance(train, dict):
        optimizer = train.setdefault("optimizer", {})
        for key in ("lr", "weight_decay"):
            if key in train:
                optimizer[key] = train.pop(key)
    out["version"] = 1
    return out


MIGRATIONS: dict[int, Migration] = {0: _migrate_v0}


class _LineLoader(yaml.SafeLoader):
    """A safe loader that remembers the line of every mapping key."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> dict[str, Any]:
    mapping: dict[str, Any] = {}
    lines: dict[str, int] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in mapping:
            raise ConfigError(f"duplicate key {key!r}", where=f"line {key_node.start_mark.line + 1}")
        mapping[key] = loader.construct_object(value_node, deep=True)
        lines[str(key)] = key_node.start_mark.line + 1
    return _LinedDict(mapping, lines)


class _LinedDict(dict):  # type: ignore[type-arg]
    """A dict that knows on which line each key was written."""

    def __init__(self, data: dict[str, Any], lines: dict[str, int]) -> None:
        super().__init__(data)
        self.lines = lines


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)  # type: ignore[arg-type]


def _line_of(raw: Any, loc: Iterable[Any]) -> int | None:
    """The line of the deepest key of ``loc`` that exists in ``raw``."""
    line = None
    node = raw
    for part in loc:
        if isinstance(node, _LinedDict) and str(part) in node.lines:
            line = node.lines[str(part)]
            node = node[str(part)]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            break
    return line


def _plain(obj: Any) -> Any:
    """Strip line bookkeeping: plain dicts and lists only."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_plain(v) for v in obj]
    return obj


def parse_yaml(text: str, *, source: str) -> dict[str, Any]:
    """Parse recipe YAML safely; errors name ``source`` and the line."""
    try:
        raw = yaml.load(text, Loader=_LineLoader)  # noqa: S506 - _LineLoader derives from SafeLoader
    except ConfigError as exc:
        raise ConfigError(exc.message, where=f"{source}:{exc.where}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark else source
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"YAML syntax error: {problem}", where=where) from None
    if raw is None:
        raise ConfigError("recipe is empty", where=source)
    if not isinstance(raw, dict):
        raise ConfigError(f"a recipe must be a mapping, not {type(raw).__name__}", where=source)
    return raw


def migrate(raw: dict[str, Any], *, source: str) -> dict[str, Any]:
    """Bring an older recipe dict up to :data:`RECIPE_VERSION`, or refuse with how to update it."""
    version = raw.get("version")
    if version is None:
        raise ConfigError(f"missing 'version' (add 'version: {RECIPE_VERSION}' at the top)", where=source)
    if not isinstance(version, int) or isinstance(version, bool):
        raise ConfigError(f"'version' must be an integer, got {version!r}", where=source)
    if version > RECIPE_VERSION:
        raise ConfigError(
            f"recipe version {version} is newer than this modelyard understands ({RECIPE_VERSION})",
            where=source, hint="upgrade modelyard",
        )
    out = raw
    while out["version"] < RECIPE_VERSION:
        step = MIGRATIONS.get(out["version"])
        if step is None:
            raise ConfigError(
                f"recipe version {out['version']} can no longer be migrated",
                where=source, hint=f"rewrite it for version {RECIPE_VERSION}: see `yard config schema`",
            )
        out = step(out)
    return out


def _format_error(err: Mapping[str, Any]) -> tuple[str, str]:
    path = ".".join(str(p) for p in err["loc"]) or "(top)"
    kind = err["type"]
    if kind == "extra_forbidden":
        return path, "unknown key"
    if kind == "missing":
        return path, "required key is missing"
    value = err.get("input")
    shown = repr(value) if not isinstance(value, dict | list) else type(value).__name__
    message = str(err["msg"]).removeprefix("Value error, ")
    return path, f"{message} (got {shown})"


def validate_recipe(raw: dict[str, Any], *, source: str = "<recipe>") -> Recipe:
    """Migrate and validate a recipe dict; the first error names file:line and the field path."""
    migrated = migrate(raw, source=source)
    try:
        return Recipe.model_validate(_plain(migrated))
    except ValidationError as exc:
        first = exc.errors()[0]
        path, message = _format_error(first)
        line = _line_of(raw, first["loc"])
        where = f"{source}:{line}" if line else source
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ConfigError(f"{path}: {message}{more}", where=where) from None


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split ``train.optimizer.lr=3e-4`` into a key path and a YAML-parsed value."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {text!r} is not of the form key.path=value")
    parts = key.strip().split(".")
    if any(not p for p in parts):
        raise ConfigError(f"override {text!r} has an empty key segment")
    try:
        parsed = yaml.safe_load(value) if value.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {text!r}: value is not valid YAML ({exc})") from None
    return parts, parsed


def apply_overrides(raw: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Return a copy of ``raw`` with each ``key.path=value`` set (intermediate mappings created)."""
    out = copy.deepcopy(_plain(raw))
    for text in overrides:
        parts, value = parse_override(text)
        node = out
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"override {text!r}: {'.'.join(parts[: i + 1])} is not a section")
            node = child
        node[parts[-1]] = value
    return out


def load_recipe(path: str | Path, overrides: Iterable[str] = ()) -> Recipe:
    """Read, migrate, override and validate the recipe at ``path``.

    Raises:
        ConfigError: naming the file (and line, and field path) of the first problem.
    """
    source = str(path)
    file = Path(path)
    if not file.is_file():
        raise ConfigError("recipe file not found", where=source)
    try:
        text = file.read_text("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"recipe is not UTF-8 text ({exc.reason} at byte {exc.start})", where=source) from None
    raw = parse_yaml(text, source=source)
    overrides = list(overrides)
    if overrides:
        migrated = migrate(raw, source=source)
        return validate_recipe(apply_overrides(migrated, overrides), source=f"{source} (with overrides)")
    return validate_recipe(raw, source=source)


def recipe_to_dict(recipe: Recipe) -> dict[str, Any]:
    """The fully resolved recipe as plain JSON-able data (defaults filled in)."""
    return recipe.model_dump(mode="json")


def recipe_to_yaml(recipe: Recipe) -> str:
    """The fully resolved recipe as YAML text that :func:`load_recipe` accepts."""
    return yaml.safe_dump(recipe_to_dict(recipe), sort_keys=False)

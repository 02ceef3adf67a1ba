"""The model registry: ``NAME@vN`` versions (immutable) and movable aliases (``NAME@staging``)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from modelyard.core.errors import ConfigError, NotFoundError, StoreError
from modelyard.core.names import check_name
from modelyard.core.refs import ModelRef
from modelyard.store import tables
from modelyard.store.engine import with_retry

_VERSION = re.compile(r"^v?(\d+)$")


@dataclass(frozen=True)
class ModelVersion:
    """One registered version of a model."""

    name: str
    version: int
    ref: ModelRef
    run_id: str | None
    description: str
    metrics: dict[str, Any]
    created_at: str
    aliases: tuple[str, ...] = ()

    @property
    def uri(self) -> str:
        """``name@vN``."""
        return f"{self.name}@v{self.version}"


def parse_model_uri(text: str) -> tuple[str, str | None]:
    """Split ``name@selector`` into (name, selector); the selector may be absent."""
    name, _, selector = text.partition("@")
    check_name(name, what="model name")
    if selector:
        if not _VERSION.match(selector):
            check_name(selector, what="alias")
        return name, selector
    return name, None


class ModelRegistry:
    """Register versions, move aliases, resolve ``NAME@ALIAS`` / ``NAME@vN`` / ``NAME``."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def register(self, name: str, ref: ModelRef, *, run_id: str | None = None, description: str = "",
                 metrics: Mapping[str, Any] | None = None, alias: str | None = None) -> ModelVersion:
        """Add ``ref`` as the next version of ``name`` (creating the model) and optionally point ``alias`` at it.

        The version row and the alias move happen in one transaction: a process killed
        midway leaves no half-registered version.
        """
        check_name(name, what="model name")
        if alias is not None:
            check_name(alias, what="alias")
            if _VERSION.match(alias):
                raise ConfigError(f"alias {alias!r} looks like a version number")
        now = datetime.now(UTC).isoformat()
        metrics_json = json.dumps(dict(metrics or {}), sort_keys=True, default=str)

        def work(conn: Any) -> int:
            if conn.execute(select(tables.models.c.name).where(tables.models.c.name == name)).first() is None:
                conn.execute(insert(tables.models).values(name=name, description="", created_at=now))
            mv = tables.model_versions
            latest = conn.execute(select(func.max(mv.c.version)).where(mv.c.name == name)).scalar() or 0
            version = latest + 1
            conn.execute(insert(mv).values(name=name, version=version, artifact_id=ref.id, run_id=run_id,
                                           description=description, metrics=metrics_json, created_at=now))
            if alias is not None:
                _set_alias(conn, name, alias, version, now)
            return int(version)

        for _attempt in range(10):
            try:
                version = with_retry(self.engine, work)
                break
            except IntegrityError:
                continue  # a concurrent writer took the same version number (PostgreSQL); take the next
        else:  # pragma: no cover
            raise StoreError(f"could not allocate a version for model {name!r}")
        return self.get(name, version)

    def set_alias(self, name: str, alias: str, version: int) -> int | None:
        """Point ``name@alias`` at ``version``; returns the version it pointed at before (or None)."""
        check_name(alias, what="alias")
        self.get(name, version)  # raises if the version does not exist

        def work(conn: Any) -> int | None:
            a = tables.aliases
            before = conn.execute(select(a.c.version).where(a.c.name == name, a.c.alias == alias)).scalar()
            _set_alias(conn, name, alias, version, datetime.now(UTC).isoformat())
            return before

        return with_retry(self.engine, work)

    def get(self, name: str, version: int) -> ModelVersion:
        """One version of a model."""
        mv = tables.model_versions
        with self.engine.connect() as conn:
            row = conn.execute(select(mv).where(mv.c.name == name, mv.c.version == version)).first()
            if row is None:
                raise NotFoundError(f"model {name}@v{version} not found", hint="see `yard models list`")
            aliases = conn.execute(select(tables.aliases.c.alias).where(
                tables.aliases.c.name == name, tables.aliases.c.version == version)).scalars().all()
        return _version(row, tuple(sorted(aliases)))

    def resolve(self, uri: str) -> ModelVersion:
        """Resolve ``NAME``, ``NAME@vN`` / ``NAME@N`` or ``NAME@ALIAS`` to a version.

        Raises:
            ConfigError: the text is not a valid model reference.
            NotFoundError: no such model, version or alias.
        """
        name, selector = parse_model_uri(uri)
        if selector is None:
            versions = self.versions(name)
            if not versions:
                raise NotFoundError(f"model {name!r} not found", hint="see `yard models list`")
            return versions[-1]
        match = _VERSION.match(selector)
        if match:
            return self.get(name, int(match.group(1)))
        a = tables.aliases
        with self.engine.connect() as conn:
            version = conn.execute(select(a.c.version).where(a.c.name == name, a.c.alias == selector)).scalar()
        if version is None:
            raise NotFoundError(f"model {name}@{selector} not found (no such alias)")
        return self.get(name, int(version))

    def versions(self, name: str) -> list[ModelVersion]:
        """Every version of ``name``, oldest first."""
        mv = tables.model_versions
        with self.engine.connect() as conn:
            rows = conn.execute(select(mv).where(mv.c.name == name).order_by(mv.c.version)).all()
            alias_rows = conn.execute(select(tables.aliases).where(tables.aliases.c.name == name)).all()
        by_version: dict[int, list[str]] = {}
        for a in alias_rows:
            by_version.setdefault(a.version, []).append(a.alias)
        return [_version(r, tuple(sorted(by_version.get(r.version, [])))) for r in rows]

    def list_models(self) -> list[dict[str, Any]]:
        """Each model with its latest version and aliases."""
        with self.engine.connect() as conn:
            names = conn.execute(select(tables.models.c.name).order_by(tables.models.c.name)).scalars().all()
        out = []
        for name in names:
            versions = self.versions(name)
            aliases = {alias: v.version for v in versions for alias in v.aliases}
            out.append({"name": name, "versions": len(versions),
                        "latest": versions[-1].version if versions else None, "aliases": aliases})
        return out


def _set_alias(conn: Any, name: str, alias: str, version: int, now: str) -> None:
    a = tables.aliases
    exists = conn.execute(select(a.c.version).where(a.c.name == name, a.c.alias == alias)).first()
    if exists:
        conn.execute(update(a).where(a.c.name == name, a.c.alias == alias).values(version=version, updated_at=now))
    else:
        conn.execute(insert(a).values(name=name, alias=alias, version=version, updated_at=now))


def _version(row: Any, aliases: tuple[str, ...]) -> ModelVersion:
    return ModelVersion(name=row.name, version=row.version, ref=ModelRef(id=row.artifact_id), run_id=row.run_id,
                        description=row.description, metrics=json.loads(row.metrics or "{}"),
                        created_at=row.created_at, aliases=aliases)

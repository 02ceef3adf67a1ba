"""The model registry: ``NAME@vN`` versions (immutable) and movable aliases (``NAME@staging``).

A version names one model artifact forever; its number is never reused, even after a
delete (a soft delete: the row stays for lineage and audit, ``yard store gc`` frees the
files). Aliases move between versions and every move is kept in ``alias_history``, so
``rollback`` knows where an alias was before. Tags, descriptions and card notes are
metadata about a version, not part of it.

Every change appends to the audit chain in the same transaction as the change: a
process killed midway leaves neither a half-registered version nor an audit entry
for something that did not happen.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import EllipsisType
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, insert, select, update

from modelyard.core.errors import ConfigError, NotFoundError, StoreError
from modelyard.core.names import check_name
from modelyard.core.refs import ModelRef
from modelyard.store import tables
from modelyard.store.audit import AuditLog, Record
from modelyard.store.paths import check_alias

_VERSION = re.compile(r"^v?(\d+)$")
PRODUCTION = "production"


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
    tags: dict[str, str] = field(default_factory=dict)
    deleted_at: str | None = None

    @property
    def uri(self) -> str:
        """``name@vN``."""
        return f"{self.name}@v{self.version}"


def parse_model_uri(text: str) -> tuple[str, str | None]:
    """Split ``name@selector`` into (name, selector); the selector may be absent.

    Raises:
        ConfigError: the name or selector is not a safe name.
    """
    name, _, selector = text.partition("@")
    check_name(name, what="model name")
    if selector:
        if not _VERSION.match(selector):
            check_name(selector, what="alias")
        return name, selector
    return name, None


class ModelRegistry:
    """Register versions, move aliases, resolve ``NAME@ALIAS`` / ``NAME@vN`` / ``NAME``.

    Args:
        engine: the store's database.
        audit: the audit chain (a private one without a head anchor when not given).
    """

    def __init__(self, engine: Engine, audit: AuditLog | None = None) -> None:
        self.engine = engine
        self.audit = audit or AuditLog(engine)

    # ---- writes ---------------------------------------------------------------------------------

    def register(self, name: str, ref: ModelRef, *, run_id: str | None = None, description: str = "",
                 metrics: Mapping[str, Any] | None = None, alias: str | None = None,
                 tags: Mapping[str, str] | None = None, actor: str | None = None) -> ModelVersion:
        """Add ``ref`` as the next version of ``name`` (creating the model) and optionally point ``alias`` at it.

        The version row, the alias move and their audit entries commit in one transaction.

        Raises:
            ConfigError: a bad name, alias or tag.
            NotFoundError: ``ref`` is not an artifact of this store.
        """
        check_name(name, what="model name")
        if alias is not None:
            check_alias(alias)
        tag_values = _check_tags(tags or {})
        now = _now()
        metrics_json = json.dumps(dict(metrics or {}), sort_keys=True, default=str)
        with self.engine.connect() as conn:
            if conn.execute(select(tables.artifacts.c.id).where(tables.artifacts.c.id == ref.id)).first() is None:
                raise NotFoundError(f"artifact {ref.id[:12]} not found: publish it before registering")
            if run_id is not None and conn.execute(
                    select(tables.runs.c.id).where(tables.runs.c.id == run_id)).first() is None:
                raise NotFoundError(f"run {run_id!r} not found", where="run", hint="see `yard runs list`")

        def work(conn: Connection, record: Record) -> int:
            if conn.execute(select(tables.models.c.name).where(tables.models.c.name == name)).first() is None:
                conn.execute(insert(tables.models).values(name=name, description="", created_at=now))
            mv = tables.model_versions
            latest = conn.execute(select(func.max(mv.c.version)).where(mv.c.name == name)).scalar() or 0
            version = int(latest) + 1
            conn.execute(insert(mv).values(name=name, version=version, artifact_id=ref.id, run_id=run_id,
                                           description=description, metrics=metrics_json, created_at=now))
            for key, value in tag_values.items():
                conn.execute(insert(tables.model_tags).values(name=name, version=version, key=key, value=value,
                                                              updated_at=now))
            entry = record(actor=actor, action="model.register", target=f"{name}@v{version}",
                           details={"artifact": ref.id, "run": run_id, "alias": alias})
            if alias is not None:
                before = _move_alias(conn, name, alias, version, kind="set", actor=entry.actor, now=now)
                record(actor=actor, action="alias.set", target=f"{name}@{alias}",
                       details={"from": before, "to": version})
            return version

        version = self.audit.transact(work)
        return self.get(name, version)

    def set_alias(self, name: str, alias: str, version: int, *, actor: str | None = None, kind: str = "set",
                  action: str = "alias.set", outcome: str = "ok", details: Mapping[str, Any] | None = None,
                  expect: int | EllipsisType | None = ...) -> int | None:
        """Point ``name@alias`` at ``version``; returns the version it pointed at before (or None).

        Args:
            expect: when given, the version the alias must still point at (None: must not
                exist); checked inside the write transaction, so a decision made against
                that version (a promotion gate) cannot land on top of someone else's move.

        Raises:
            ConfigError: a bad alias.
            NotFoundError: no such (live) version.
            StoreError: the alias moved since ``expect`` was read.
        """
        check_alias(alias)
        self.get(name, version)  # raises if the version does not exist or was deleted

        def work(conn: Connection, record: Record) -> int | None:
            if expect is not ...:
                a = tables.aliases
                now_at = conn.execute(select(a.c.version).where(a.c.name == name, a.c.alias == alias)).scalar()
                if now_at != expect:
                    raise StoreError(f"{name}@{alias} moved to {_v(now_at)} while this change was being decided "
                                     f"(expected {_v(expect)})", hint="run the command again")
            entry = record(actor=actor, action=action, target=f"{name}@{alias}", outcome=outcome,
                           details={"to": version, **dict(details or {})})
            before = _move_alias(conn, name, alias, version, kind=kind, actor=entry.actor, now=entry.at)
            return before

        return self.audit.transact(work)

    def promote(self, name: str, version: int, *, alias: str = PRODUCTION, gate: Mapping[str, Any] | None = None,
                forced: bool = False, actor: str | None = None,
                expect: int | EllipsisType | None = ...) -> int | None:
        """Move ``alias`` (production) to ``version`` after a gate decision; audited as forced or not.

        Args:
            expect: the version the gate compared against (see :meth:`set_alias`).

        Returns:
            The version the alias pointed at before.
        """
        return self.set_alias(name, alias, version, actor=actor, kind="promote", action="model.promote",
                              outcome="forced" if forced else "ok",
                              details={"gate": dict(gate or {}), "forced": forced}, expect=expect)

    def rollback(self, name: str, alias: str = PRODUCTION, *, actor: str | None = None) -> tuple[int, int]:
        """Move ``alias`` back to the version it pointed at before its current one.

        Repeated rollbacks keep walking back (v3 → v2 → v1), skipping deleted versions.

        Returns:
            (from version, to version).

        Raises:
            NotFoundError: the alias has no earlier version to go back to.
        """
        check_alias(alias)
        stack = self.alias_stack(name, alias)
        if not stack:
            raise NotFoundError(f"model {name}@{alias} not found (no such alias)")
        current = stack[-1]
        live = {v.version for v in self.versions(name)}
        previous = [v for v in stack[:-1] if v in live and v != current]
        if not previous:
            raise NotFoundError(f"{name}@{alias} has no earlier version to roll back to (it is at v{current})")
        target = previous[-1]
        self.set_alias(name, alias, target, actor=actor, kind="rollback", action="model.rollback",
                       details={"from": current})
        return current, target

    def remove_alias(self, name: str, alias: str, *, actor: str | None = None) -> int:
        """Delete ``name@alias``; returns the version it pointed at.

        Raises:
            NotFoundError: no such alias.
        """
        check_alias(alias)

        def work(conn: Connection, record: Record) -> int:
            a = tables.aliases
            before = conn.execute(select(a.c.version).where(a.c.name == name, a.c.alias == alias)).scalar()
            if before is None:
                raise NotFoundError(f"model {name}@{alias} not found (no such alias)")
            entry = record(actor=actor, action="alias.remove", target=f"{name}@{alias}", details={"from": before})
            conn.execute(delete(a).where(a.c.name == name, a.c.alias == alias))
            conn.execute(insert(tables.alias_history).values(name=name, alias=alias, from_version=before,
                                                             to_version=None, kind="remove", actor=entry.actor,
                                                             at=entry.at))
            return int(before)

        return self.audit.transact(work)

    def tag(self, name: str, version: int, *, set_tags: Mapping[str, str] | None = None,
            remove: list[str] | tuple[str, ...] = (), description: str | None = None,
            actor: str | None = None) -> ModelVersion:
        """Set or remove tags, or replace the description, of one version (audited).

        Raises:
            ConfigError: a bad tag key or value.
            NotFoundError: no such version.
        """
        self.get(name, version)
        values = _check_tags(set_tags or {})
        for key in remove:
            check_name(key, what="tag key")
        now = _now()

        def work(conn: Connection, record: Record) -> None:
            t = tables.model_tags
            for key, value in values.items():
                conn.execute(delete(t).where(t.c.name == name, t.c.version == version, t.c.key == key))
                conn.execute(insert(t).values(name=name, version=version, key=key, value=value, updated_at=now))
            for key in remove:
                conn.execute(delete(t).where(t.c.name == name, t.c.version == version, t.c.key == key))
            if description is not None:
                mv = tables.model_versions
                conn.execute(update(mv).where(mv.c.name == name, mv.c.version == version)
                             .values(description=description))
            record(actor=actor, action="model.tag", target=f"{name}@v{version}",
                   details={"set": values, "remove": list(remove), "description": description})

        self.audit.transact(work)
        return self.get(name, version)

    def set_notes(self, name: str, version: int, notes: str, *, actor: str | None = None) -> None:
        """Replace the free-text notes shown in a version's model card (audited)."""
        self.get(name, version)

        def work(conn: Connection, record: Record) -> None:
            entry = record(actor=actor, action="model.notes", target=f"{name}@v{version}",
                           details={"chars": len(notes)})
            n = tables.model_notes
            conn.execute(delete(n).where(n.c.name == name, n.c.version == version))
            conn.execute(insert(n).values(name=name, version=version, notes=notes, updated_at=entry.at,
                                          updated_by=entry.actor))

        self.audit.transact(work)

    def delete(self, name: str, version: int, *, force: bool = False, actor: str | None = None) -> ModelVersion:
        """Soft-delete a version: it no longer resolves; ``yard store gc`` frees its files.

        Raises:
            StoreError: aliases still point at it and ``force`` is not set.
            NotFoundError: no such live version.
        """
        current = self.get(name, version)
        if current.aliases and not force:
            raise StoreError(f"{current.uri} is still {', '.join(current.aliases)}",
                             hint="move the aliases first, or pass --force to remove them")

        def work(conn: Connection, record: Record) -> None:
            entry = record(actor=actor, action="model.delete", target=current.uri,
                           outcome="forced" if current.aliases else "ok",
                           details={"artifact": current.ref.id, "removed_aliases": list(current.aliases)})
            a = tables.aliases
            for alias in current.aliases:
                conn.execute(delete(a).where(a.c.name == name, a.c.alias == alias))
                conn.execute(insert(tables.alias_history).values(name=name, alias=alias, from_version=version,
                                                                 to_version=None, kind="remove",
                                                                 actor=entry.actor, at=entry.at))
            mv = tables.model_versions
            conn.execute(update(mv).where(mv.c.name == name, mv.c.version == version).values(deleted_at=entry.at))

        self.audit.transact(work)
        return self.get(name, version, include_deleted=True)

    # ---- reads ----------------------------------------------------------------------------------

    def get(self, name: str, version: int, *, include_deleted: bool = False) -> ModelVersion:
        """One version of a model.

        Raises:
            NotFoundError: no such version (or it was deleted, unless ``include_deleted``).
        """
        mv = tables.model_versions
        with self.engine.connect() as conn:
            row = conn.execute(select(mv).where(mv.c.name == name, mv.c.version == version)).first()
            if row is None:
                raise NotFoundError(f"model {name}@v{version} not found", hint="see `yard models list`")
            if row.deleted_at and not include_deleted:
                raise NotFoundError(f"model {name}@v{version} was deleted at {row.deleted_at}")
            aliases = conn.execute(select(tables.aliases.c.alias).where(
                tables.aliases.c.name == name, tables.aliases.c.version == version)).scalars().all()
            tags = _tags(conn, name, [version]).get(version, {})
        return _version(row, tuple(sorted(aliases)), tags)

    def resolve(self, uri: str) -> ModelVersion:
        """Resolve ``NAME``, ``NAME@vN`` / ``NAME@N`` or ``NAME@ALIAS`` to a live version.

        Raises:
            ConfigError: the text is not a valid model reference.
            NotFoundError: no such model, version or alias (or the version was deleted).
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

    def versions(self, name: str, *, include_deleted: bool = False) -> list[ModelVersion]:
        """Every (live) version of ``name``, oldest first."""
        mv = tables.model_versions
        query = select(mv).where(mv.c.name == name).order_by(mv.c.version)
        if not include_deleted:
            query = query.where(mv.c.deleted_at.is_(None))
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
            alias_rows = conn.execute(select(tables.aliases).where(tables.aliases.c.name == name)).all()
            tags = _tags(conn, name, None)
        by_version: dict[int, list[str]] = {}
        for a in alias_rows:
            by_version.setdefault(a.version, []).append(a.alias)
        return [_version(r, tuple(sorted(by_version.get(r.version, []))), tags.get(r.version, {})) for r in rows]

    def list_models(self) -> list[dict[str, Any]]:
        """Each model with its latest live version and aliases."""
        with self.engine.connect() as conn:
            names = conn.execute(select(tables.models.c.name).order_by(tables.models.c.name)).scalars().all()
        out = []
        for name in names:
            versions = self.versions(name)
            aliases = {alias: v.version for v in versions for alias in v.aliases}
            out.append({"name": name, "versions": len(versions),
                        "latest": versions[-1].version if versions else None, "aliases": aliases})
        return out

    def versions_of_artifact(self, artifact_id: str, *, include_deleted: bool = False) -> list[ModelVersion]:
        """The versions (of any model) that name ``artifact_id``."""
        mv = tables.model_versions
        query = select(mv.c.name, mv.c.version).where(mv.c.artifact_id == artifact_id)
        if not include_deleted:
            query = query.where(mv.c.deleted_at.is_(None))
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(mv.c.name, mv.c.version)).all()
        return [self.get(r.name, r.version, include_deleted=True) for r in rows]

    def notes(self, name: str, version: int) -> str:
        """The card notes of a version ('' when none)."""
        n = tables.model_notes
        with self.engine.connect() as conn:
            text = conn.execute(select(n.c.notes).where(n.c.name == name, n.c.version == version)).scalar()
        return str(text or "")

    def alias_stack(self, name: str, alias: str) -> list[int]:
        """The versions ``alias`` went through, replayed from its history: moves push, rollbacks pop.

        The last element is the current version; the one before it is where a rollback goes.
        """
        h = tables.alias_history
        with self.engine.connect() as conn:
            rows = conn.execute(select(h).where(h.c.name == name, h.c.alias == alias).order_by(h.c.id)).all()
            current = conn.execute(select(tables.aliases.c.version).where(
                tables.aliases.c.name == name, tables.aliases.c.alias == alias)).scalar()
        stack: list[int] = []
        for row in rows:
            if row.kind == "remove":
                stack = []
            elif row.kind == "rollback":
                while stack and stack[-1] != row.to_version:
                    stack.pop()
                if not stack:
                    stack.append(row.to_version)
            else:
                if not stack and row.from_version is not None:
                    stack.append(row.from_version)  # where the alias was before history began (schema 1)
                if not stack or stack[-1] != row.to_version:
                    stack.append(row.to_version)
        if current is not None and (not stack or stack[-1] != current):
            stack.append(int(current))  # an alias set by schema 1, before history was kept
        return stack if current is not None else []

    def history(self, name: str) -> list[dict[str, Any]]:
        """Registrations, alias moves and deletions of ``name``, oldest first."""
        mv, h = tables.model_versions, tables.alias_history
        with self.engine.connect() as conn:
            rows = conn.execute(select(mv).where(mv.c.name == name)).all()
            moves = conn.execute(select(h).where(h.c.name == name).order_by(h.c.id)).all()
        if not rows:
            raise NotFoundError(f"model {name!r} not found", hint="see `yard models list`")
        events: list[dict[str, Any]] = []
        for r in rows:
            events.append({"at": r.created_at, "event": "register", "version": r.version, "artifact": r.artifact_id,
                           "actor": None, "detail": r.description})
            if r.deleted_at:
                events.append({"at": r.deleted_at, "event": "delete", "version": r.version,
                               "artifact": r.artifact_id, "actor": None, "detail": ""})
        for m in moves:
            events.append({"at": m.at, "event": f"alias {m.kind}", "version": m.to_version, "artifact": None,
                           "actor": m.actor,
                           "detail": f"{m.alias}: {_v(m.from_version)} → {_v(m.to_version)}"})
        actors = {e.target: e.actor for e in self.audit.entries(action="model.register")
                  if e.target.startswith(name + "@")}
        for event in events:
            if event["actor"] is None:
                event["actor"] = actors.get(f"{name}@v{event['version']}")
        return sorted(events, key=lambda e: (e["at"], e["event"] != "register"))


def _v(version: int | None) -> str:
    return "-" if version is None else f"v{version}"


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _check_tags(tags: Mapping[str, str]) -> dict[str, str]:
    out = {}
    for key, value in tags.items():
        check_name(key, what="tag key")
        text = str(value)
        if len(text) > 1000 or "\0" in text:
            raise ConfigError(f"tag {key!r}: value must be at most 1000 characters without NUL")
        out[key] = text
    return out


def _move_alias(conn: Connection, name: str, alias: str, version: int, *, kind: str, actor: str,
                now: str) -> int | None:
    a = tables.aliases
    before = conn.execute(select(a.c.version).where(a.c.name == name, a.c.alias == alias)).scalar()
    if before is not None:
        conn.execute(update(a).where(a.c.name == name, a.c.alias == alias).values(version=version, updated_at=now))
    else:
        conn.execute(insert(a).values(name=name, alias=alias, version=version, updated_at=now))
    conn.execute(insert(tables.alias_history).values(name=name, alias=alias, from_version=before, to_version=version,
                                                     kind=kind, actor=actor, at=now))
    return int(before) if before is not None else None


def _tags(conn: Connection, name: str, versions: list[int] | None) -> dict[int, dict[str, str]]:
    t = tables.model_tags
    query = select(t).where(t.c.name == name)
    if versions is not None:
        query = query.where(t.c.version.in_(versions))
    out: dict[int, dict[str, str]] = {}
    for row in conn.execute(query).all():
        out.setdefault(row.version, {})[row.key] = row.value
    return out


def _version(row: Any, aliases: tuple[str, ...], tags: dict[str, str] | None = None) -> ModelVersion:
    return ModelVersion(name=row.name, version=row.version, ref=ModelRef(id=row.artifact_id), run_id=row.run_id,
                        description=row.description, metrics=json.loads(row.metrics or "{}"),
                        created_at=row.created_at, aliases=aliases, tags=dict(sorted((tags or {}).items())),
                        deleted_at=row.deleted_at)


__all__ = ["PRODUCTION", "ModelRegistry", "ModelVersion", "parse_model_uri"]

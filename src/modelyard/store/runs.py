"""Runs, their params and metric series."""

from __future__ import annotations

import builtins
import json
import math
import time
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, insert, select, update

from modelyard.core.errors import NotFoundError
from modelyard.store import tables
from modelyard.store.engine import with_retry
from modelyard.store.environment import git_sha, host_facts, package_versions

RUN_STATUSES = ("running", "finished", "failed")


def _now() -> str:
    return datetime.now(UTC).isoformat()


class RunStore:
    """Create and finish runs; record params and metric series (written in batches)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(self, *, kind: str, name: str, config: Mapping[str, Any], parent_run_id: str | None = None) -> str:
        """Start a run in status ``running`` and return its id."""
        run_id = uuid.uuid4().hex[:16]
        row = {
            "id": run_id, "kind": kind, "name": name, "status": "running",
            "config": json.dumps(config, sort_keys=True, default=str), "parent_run_id": parent_run_id,
            "host": json.dumps(host_facts()), "packages": json.dumps(package_versions()),
            "git_sha": git_sha(), "started_at": _now(),
        }
        with_retry(self.engine, lambda conn: conn.execute(insert(tables.runs).values(**row)))
        return run_id

    def finish(self, run_id: str, *, status: str, error: str | None = None,
               summary: Mapping[str, Any] | None = None, compute: Mapping[str, Any] | None = None) -> None:
        """Close a run as ``finished`` or ``failed`` (with its error).

        Args:
            summary: replaces the run's summary figures.
            compute: resource figures (e.g. ``peak_memory_mb``) merged into ``summary["compute"]``,
                keeping what the stage recorded there itself.
        """
        if status not in RUN_STATUSES[1:]:
            raise ValueError(f"status must be finished or failed, not {status!r}")
        values = {"status": status, "error": error, "ended_at": _now()}
        if summary is not None:
            values["summary"] = json.dumps(summary, sort_keys=True, default=str)

        def work(conn: Any) -> None:
            if compute:
                current = summary if summary is not None else json.loads(conn.execute(
                    select(tables.runs.c.summary).where(tables.runs.c.id == run_id)).scalar() or "{}")
                merged = dict(current or {})
                merged["compute"] = {**dict(compute), **dict(merged.get("compute") or {})}
                values["summary"] = json.dumps(merged, sort_keys=True, default=str)
            conn.execute(update(tables.runs).where(tables.runs.c.id == run_id).values(**values))

        with_retry(self.engine, work)

    def set_summary(self, run_id: str, summary: Mapping[str, Any]) -> None:
        """Replace the run's summary figures."""
        text = json.dumps(summary, sort_keys=True, default=str)
        with_retry(self.engine, lambda conn: conn.execute(
            update(tables.runs).where(tables.runs.c.id == run_id).values(summary=text)))

    def get(self, run_id: str) -> dict[str, Any]:
        """One run as a dict (JSON columns decoded); a unique id prefix works too.

        Raises:
            NotFoundError: no run, or an ambiguous prefix.
        """
        with self.engine.connect() as conn:
            rows = conn.execute(select(tables.runs).where(tables.runs.c.id.like(f"{run_id}%")).limit(2)).all()
        exact = [r for r in rows if r.id == run_id]
        if exact:
            rows = exact
        if not rows:
            raise NotFoundError(f"run {run_id!r} not found", hint="see `yard runs list`")
        if len(rows) > 1:
            raise NotFoundError(f"run id prefix {run_id!r} is ambiguous")
        return _decode(rows[0]._asdict())

    def list(self, *, kind: str | None = None, limit: int = 50,
             parent_run_id: str | None = None) -> builtins.list[dict[str, Any]]:
        """The newest runs first."""
        query = select(tables.runs).order_by(tables.runs.c.started_at.desc()).limit(limit)
        if kind:
            query = query.where(tables.runs.c.kind == kind)
        if parent_run_id:
            query = query.where(tables.runs.c.parent_run_id == parent_run_id)
        with self.engine.connect() as conn:
            return [_decode(r._asdict()) for r in conn.execute(query).all()]

    def log_params(self, run_id: str, values: Mapping[str, Any]) -> None:
        """Record flat params (values stored as JSON)."""
        rows = [{"run_id": run_id, "key": k, "value": json.dumps(v, default=str)} for k, v in values.items()]
        if rows:
            with_retry(self.engine, lambda conn: conn.execute(insert(tables.params), rows))

    def params(self, run_id: str) -> dict[str, Any]:
        """The params of a run."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(tables.params).where(tables.params.c.run_id == run_id)).all()
        return {r.key: json.loads(r.value) for r in rows}

    def log_metrics(self, run_id: str, points: Iterable[tuple[str, int, float]]) -> None:
        """Write many (key, step, value) points in one transaction. NaN and ±Inf are stored as NULL."""
        now = time.time()
        rows = [{"run_id": run_id, "key": key, "step": int(step),
                 "value": float(value) if math.isfinite(value) else None, "time": now}
                for key, step, value in points]
        if rows:
            with_retry(self.engine, lambda conn: conn.execute(insert(tables.metrics), rows))

    def metric_keys(self, run_id: str) -> builtins.list[str]:
        """The metric names a run recorded."""
        with self.engine.connect() as conn:
            keys = conn.execute(select(tables.metrics.c.key).where(tables.metrics.c.run_id == run_id)
                                .distinct()).scalars().all()
        return sorted(keys)

    def metric_series(self, run_id: str, key: str) -> builtins.list[tuple[int, float]]:
        """(step, value) pairs of one metric, by step (NULL comes back as NaN)."""
        m = tables.metrics
        with self.engine.connect() as conn:
            rows = conn.execute(select(m.c.step, m.c.value).where(m.c.run_id == run_id, m.c.key == key)
                                .order_by(m.c.step, m.c.id)).all()
        return [(r.step, math.nan if r.value is None else r.value) for r in rows]

    def artifacts(self, run_id: str, role: str = "output") -> builtins.list[tuple[str, str]]:
        """(artifact id, kind) pairs a run wrote (or read, with ``role='input'``)."""
        ra, a = tables.run_artifacts, tables.artifacts
        with self.engine.connect() as conn:
            rows = conn.execute(select(a.c.id, a.c.kind).join(ra, ra.c.artifact_id == a.c.id)
                                .where(ra.c.run_id == run_id, ra.c.role == role)).all()
        return [(r.id, r.kind) for r in rows]


def _decode(row: dict[str, Any]) -> dict[str, Any]:
    for key in ("config", "host", "packages", "summary"):
        if row.get(key):
            row[key] = json.loads(row[key])
    return row

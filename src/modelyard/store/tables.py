"""The store's tables (the current schema), as SQLAlchemy Core objects.

Changing a table means: edit it here, add a numbered migration in ``migrations.py``
that brings an older store to the same shape, and a test that an old store opens.
"""

from __future__ import annotations

from sqlalchemy import (
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

schema_migrations = Table(
    "schema_migrations", metadata,
    Column("version", Integer, primary_key=True),
    Column("applied_at", String(40), nullable=False),
)

runs = Table(
    "runs", metadata,
    Column("id", String(32), primary_key=True),
    Column("kind", String(32), nullable=False),          # pipeline, data, train, evaluate, …
    Column("name", String(128), nullable=False),
    Column("status", String(16), nullable=False),        # running, finished, failed
    Column("config", Text, nullable=False),              # resolved config, JSON
    Column("parent_run_id", String(32), ForeignKey("runs.id"), nullable=True),
    Column("host", Text, nullable=False),                # host facts, JSON
    Column("packages", Text, nullable=False),            # package versions, JSON
    Column("git_sha", String(64), nullable=True),
    Column("error", Text, nullable=True),
    Column("summary", Text, nullable=True),              # final figures, JSON
    Column("started_at", String(40), nullable=False),
    Column("ended_at", String(40), nullable=True),
    Index("ix_runs_started", "started_at"),
)

params = Table(
    "params", metadata,
    Column("run_id", String(32), ForeignKey("runs.id"), primary_key=True),
    Column("key", String(256), primary_key=True),
    Column("value", Text, nullable=False),
)

metrics = Table(
    "metrics", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(32), ForeignKey("runs.id"), nullable=False),
    Column("key", String(256), nullable=False),
    Column("step", Integer, nullable=False),
    Column("value", Float, nullable=True),               # NULL stores NaN
    Column("time", Float, nullable=False),
    Index("ix_metrics_run_key", "run_id", "key", "step"),
)

artifacts = Table(
    "artifacts", metadata,
    Column("id", String(64), primary_key=True),          # content digest (sha256 tree digest)
    Column("kind", String(32), nullable=False),
    Column("size", Integer, nullable=False),
    Column("run_id", String(32), ForeignKey("runs.id"), nullable=True),
    Column("meta", Text, nullable=False),                # JSON
    Column("created_at", String(40), nullable=False),
    Column("deleted_at", String(40), nullable=True),     # set by `yard store gc` when the files are freed (v2)
)

run_artifacts = Table(
    "run_artifacts", metadata,
    Column("run_id", String(32), ForeignKey("runs.id"), primary_key=True),
    Column("artifact_id", String(64), ForeignKey("artifacts.id"), primary_key=True),
    Column("role", String(16), primary_key=True),        # input | output
)

lineage = Table(
    "lineage", metadata,
    Column("parent_id", String(64), primary_key=True),   # artifact id
    Column("child_id", String(64), primary_key=True),    # artifact id
    Column("relation", String(32), nullable=False),      # trained_from, compressed_from, …
)

models = Table(
    "models", metadata,
    Column("name", String(128), primary_key=True),
    Column("description", Text, nullable=False, default=""),
    Column("created_at", String(40), nullable=False),
)

model_versions = Table(
    "model_versions", metadata,
    Column("name", String(128), ForeignKey("models.name"), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("artifact_id", String(64), ForeignKey("artifacts.id"), nullable=False),
    Column("run_id", String(32), ForeignKey("runs.id"), nullable=True),
    Column("description", Text, nullable=False, default=""),
    Column("metrics", Text, nullable=False, default="{}"),   # JSON headline metrics
    Column("created_at", String(40), nullable=False),
    Column("deleted_at", String(40), nullable=True),         # soft delete: the number is never reused (v2)
)

aliases = Table(
    "aliases", metadata,
    Column("name", String(128), ForeignKey("models.name"), primary_key=True),
    Column("alias", String(128), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("updated_at", String(40), nullable=False),
)

# ---- schema 2: registry metadata, API keys, the audit chain -------------------------------------

model_tags = Table(
    "model_tags", metadata,
    Column("name", String(128), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("key", String(128), primary_key=True),
    Column("value", Text, nullable=False),
    Column("updated_at", String(40), nullable=False),
)

model_notes = Table(
    "model_notes", metadata,
    Column("name", String(128), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("notes", Text, nullable=False),               # free Markdown, shown in the model card
    Column("updated_at", String(40), nullable=False),
    Column("updated_by", String(128), nullable=False),
)

alias_history = Table(
    "alias_history", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(128), nullable=False),
    Column("alias", String(128), nullable=False),
    Column("from_version", Integer, nullable=True),      # NULL: the alias did not exist before
    Column("to_version", Integer, nullable=True),        # NULL: the alias was removed
    Column("kind", String(16), nullable=False),          # set | promote | rollback | remove
    Column("actor", String(128), nullable=False),
    Column("at", String(40), nullable=False),
    Index("ix_alias_history_name", "name", "alias", "id"),
)

api_keys = Table(
    "api_keys", metadata,
    Column("id", String(16), primary_key=True),          # public part of the token
    Column("name", String(128), nullable=False),
    Column("secret_hash", Text, nullable=False),         # argon2id hash of the secret part
    Column("scopes", String(128), nullable=False),       # comma-separated
    Column("created_at", String(40), nullable=False),
    Column("created_by", String(128), nullable=False),
    Column("expires_at", String(40), nullable=True),
    Column("revoked_at", String(40), nullable=True),
    Column("last_used_at", String(40), nullable=True),
)

audit_log = Table(
    "audit_log", metadata,
    Column("seq", Integer, primary_key=True, autoincrement=False),  # 1, 2, 3…: a gap is a deletion
    Column("at", String(40), nullable=False),
    Column("actor", String(128), nullable=False),
    Column("action", String(64), nullable=False),
    Column("target", String(256), nullable=False),
    Column("outcome", String(16), nullable=False),       # ok | refused | forced | failed
    Column("details", Text, nullable=False),             # JSON
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False, unique=True),
    Column("signature", Text, nullable=True),            # base64 Ed25519 over `hash`, when a signing key is set
    Column("signer", String(32), nullable=True),         # fingerprint of the signing key
)

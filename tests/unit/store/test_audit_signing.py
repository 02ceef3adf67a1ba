"""Optional Ed25519 signatures on audit entries, and the head anchor against truncation."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from sqlalchemy import update

from modelyard.core.errors import ConfigError
from modelyard.store import open_store, tables
from modelyard.store.audit import SIGNING_KEY_ENV, AuditSigner, generate_signing_key, load_public_key
from modelyard.store.migrations import drop_audit_guard


def test_signed_entries_verify_and_forgeries_do_not(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    private, public = tmp_path / "audit.key", tmp_path / "audit.key.pub"
    generate_signing_key(private, public)
    other_private, other_public = tmp_path / "other.key", tmp_path / "other.key.pub"
    generate_signing_key(other_private, other_public)
    with open_store(tmp_path / "s") as store:
        store.audit.append(action="before.signing", target="x")  # unsigned
    monkeypatch.setenv(SIGNING_KEY_ENV, str(private))
    with open_store(tmp_path / "s") as store:
        store.keys.create("read")
        store.audit.append(action="custom", target="y")
        report = store.audit.verify(public_key=load_public_key(public))
        assert report.ok and report.entries == 3 and report.signed == 2
        strict = store.audit.verify(public_key=load_public_key(public), require_signatures=True)
        assert strict.problems == ["entry 1: not signed"]
        wrong_key = store.audit.verify(public_key=load_public_key(other_public))
        assert any("signed by another key" in p for p in wrong_key.problems)
        # Someone who can rewrite the database re-hashes an edited entry, but cannot sign it.
        forged = AuditSigner.from_file(other_private)
        entry = store.audit.entries()[2]
        with store.engine.begin() as conn:
            drop_audit_guard(conn)  # the append-only triggers, as someone holding the database could
            conn.execute(update(tables.audit_log).where(tables.audit_log.c.seq == 3).values(
                signature=forged.sign(entry.hash)))
        bad = store.audit.verify(public_key=load_public_key(public))
        assert bad.problems == ["entry 3: bad signature"]
        with store.engine.begin() as conn:
            conn.execute(update(tables.audit_log).where(tables.audit_log.c.seq == 3).values(
                signature=base64.b64encode(b"\0" * 64).decode()))
        assert store.audit.verify(public_key=load_public_key(public)).problems == ["entry 3: bad signature"]


def test_signing_key_must_be_private(tmp_path: Path) -> None:
    private = tmp_path / "audit.key"
    generate_signing_key(private, tmp_path / "audit.key.pub")
    private.chmod(0o644)
    with pytest.raises(ConfigError, match="permissions 0644"):
        AuditSigner.from_file(private)
    with pytest.raises(ConfigError, match="exists already"):
        generate_signing_key(private, tmp_path / "x.pub")


def test_head_anchor_catches_a_rewritten_tail(tmp_path: Path) -> None:
    with open_store(tmp_path / "s") as store:
        for i in range(3):
            store.audit.append(action="event", target=str(i))
        head = (tmp_path / "s" / "audit-head.json").read_text()
        with store.engine.begin() as conn:  # drop the newest entry: the chain alone still looks whole
            drop_audit_guard(conn)
            conn.execute(tables.audit_log.delete().where(tables.audit_log.c.seq == 3))
        report = store.audit.verify()
        assert report.problems == ["the log ends at entry 2 but the head anchor names entry 3 (newest entries deleted)"]
        assert '"seq": 3' in head

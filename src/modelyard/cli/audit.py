"""``yard audit show|verify|keygen``: the hash-chained audit log."""

from __future__ import annotations

from pathlib import Path

import click

from modelyard.cli.output import emit_json, json_option, print_table


@click.group("audit")
def audit_group() -> None:
    """Who did what, when, with what outcome: append-only and hash-chained."""


@audit_group.command("show")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 1_000_000))
@click.option("--action", default=None, help="Only actions starting with this (model., key., store.).")
@click.option("--target", default=None, help="Only entries about this target (e.g. digits@production).")
@json_option
def show_command(limit: int, action: str | None, target: str | None, as_json: bool) -> None:
    """The newest entries first."""
    from dataclasses import asdict

    from modelyard.store import open_store

    with open_store() as store:
        entries = store.audit.entries(limit=limit, action=action, target=target, newest_first=True)
    if as_json:
        emit_json([asdict(e) for e in entries])
        return
    print_table("audit log", ["seq", "when", "actor", "action", "target", "outcome", "details"],
                [(e.seq, e.at[:19].replace("T", " "), e.actor, e.action, e.target, e.outcome, e.details)
                 for e in entries])


@audit_group.command("verify")
@click.option("--public-key", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="Check entry signatures with this Ed25519 public key.")
@click.option("--require-signatures", is_flag=True, help="Count unsigned entries as problems.")
@json_option
def verify_command(public_key: Path | None, require_signatures: bool, as_json: bool) -> None:
    """Walk the chain; exit 2 naming every edited, deleted, reordered or badly signed entry."""
    from modelyard.core.errors import StoreError
    from modelyard.store import open_store
    from modelyard.store.audit import load_public_key

    key = load_public_key(public_key) if public_key is not None else None
    with open_store() as store:
        report = store.audit.verify(public_key=key, require_signatures=require_signatures)
    if as_json:
        emit_json({"ok": report.ok, "entries": report.entries, "signed": report.signed, "problems": report.problems})
    if not report.ok:
        if not as_json:  # every problem on stdout; the one-line error (exit 2) on stderr
            for problem in report.problems:
                click.echo(f"problem: {problem}")
        raise StoreError(f"audit chain broken: {report.problems[0]}"
                         + (f" (+{len(report.problems) - 1} more)" if len(report.problems) > 1 else ""))
    if not as_json:
        click.echo(f"audit chain ok: {report.entries} entries, {report.signed} signed")


@audit_group.command("keygen")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Private key file to create (0600); the public key goes to OUT.pub.")
def keygen_command(out: Path) -> None:
    """Make an Ed25519 key pair for signing audit entries and bundles."""
    from modelyard.store.audit import SIGNING_KEY_ENV, generate_signing_key

    fingerprint = generate_signing_key(out, out.with_name(out.name + ".pub"))
    click.echo(f"key {fingerprint}: private {out} (0600), public {out}.pub")
    click.echo(f"sign audit entries with: export {SIGNING_KEY_ENV}={out}")


COMMANDS = [audit_group]

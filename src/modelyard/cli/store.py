"""``yard store init|info|keygen|gc|backup|restore|verify-backup``: the project store itself."""

from __future__ import annotations

from pathlib import Path

import click

from modelyard.cli.output import emit_json, json_option, print_table


@click.group("store")
def store_group() -> None:
    """The project store: encryption, garbage collection, backups."""


@store_group.command("init")
@click.option("--encrypt", is_flag=True,
              help="Encrypt artifacts at rest (AES-256-GCM) with the key in $YARD_ENCRYPTION_KEY(_FILE).")
def init_command(encrypt: bool) -> None:
    """Create the store (in $YARD_HOME or ./.yard), optionally encrypted; only an empty store can be encrypted."""
    from modelyard.core.errors import ConfigError
    from modelyard.store import crypto, default_root, open_store

    root = default_root()
    if encrypt:
        key = crypto.load_key()
        if key is None:
            raise ConfigError(f"--encrypt needs a key in ${crypto.KEY_ENV} or ${crypto.KEY_FILE_ENV}",
                              hint="make one with `yard store keygen --out FILE`")
        root.mkdir(parents=True, exist_ok=True)
        settings = crypto.enable(root, key)
    with open_store(root) as store:
        store.audit.append(action="store.init", target=str(root), details={"encrypted": store.encrypted})
        click.echo(f"store at {root}" + (f", encrypted (key id {settings.key_id})" if encrypt else ""))


@store_group.command("keygen")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Key file to create (mode 0600); point $YARD_ENCRYPTION_KEY_FILE at it.")
def keygen_command(out: Path) -> None:
    """Make a new 256-bit encryption key file."""
    from modelyard.store.crypto import KEY_FILE_ENV, write_key_file

    key_id = write_key_file(out)
    click.echo(f"key {key_id} written to {out} (0600); export {KEY_FILE_ENV}={out}")


@store_group.command("info")
@json_option
def info_command(as_json: bool) -> None:
    """Where the store is, its schema version, encryption, and sizes."""
    from sqlalchemy import func, select

    from modelyard.store import open_store, tables
    from modelyard.store.migrations import current_version

    with open_store() as store:
        with store.engine.connect() as conn:
            schema = current_version(conn)
            counts = {name: conn.execute(select(func.count()).select_from(getattr(tables, name))).scalar()
                      for name in ("runs", "artifacts", "model_versions", "api_keys", "audit_log")}
        info = {"root": str(store.root), "database": store.redacted_url, "schema_version": schema,
                "encrypted": store.encrypted, **counts}
    if as_json:
        emit_json(info)
        return
    print_table("store", ["", ""], list(info.items()))


@store_group.command("gc")
@click.option("--dry-run", is_flag=True, help="Show what would be freed.")
@click.option("--grace", default=3600.0, show_default=True, type=click.FloatRange(0),
              help="Leave temp and orphan folders younger than this many seconds (a writer may own them).")
@json_option
def gc_command(dry_run: bool, grace: float, as_json: bool) -> None:
    """Free the files of deleted versions and what killed processes left behind."""
    from modelyard.store import open_store
    from modelyard.store.gc import collect_garbage

    with open_store() as store:
        report = collect_garbage(store, dry_run=dry_run, grace_seconds=grace)
    if as_json:
        emit_json(report.__dict__)
        return
    verb = "would free" if dry_run else "freed"
    click.echo(f"{verb} {report.bytes_freed} bytes: {len(report.artifacts)} artifacts of deleted versions, "
               f"{len(report.orphans)} orphan folders, {len(report.stale_temp)} stale temp entries")


@store_group.command("backup")
@click.argument("dest", type=click.Path(file_okay=False, path_type=Path))
def backup_command(dest: Path) -> None:
    """Write a consistent, verified copy of the store (database snapshot + artifacts) to DEST."""
    from modelyard.core.errors import StoreError
    from modelyard.store import open_store
    from modelyard.store.backup import backup

    with open_store() as store:
        report = backup(store, dest)
    if not report.ok:
        raise StoreError(f"backup written but verification failed: {report.problems[0]}", where=str(dest))
    click.echo(f"backup at {dest}: {report.artifacts} artifacts, {report.bytes} bytes, "
               f"{report.audit_entries} audit entries; verified")


@store_group.command("verify-backup")
@click.argument("path", type=click.Path(file_okay=False, exists=True, path_type=Path))
def verify_backup_command(path: Path) -> None:
    """Check a backup: database hash and integrity, every artifact, the audit chain."""
    from modelyard.core.errors import StoreError
    from modelyard.store.backup import verify_backup
    from modelyard.store.crypto import StoreCipher, load_key, read_settings

    key = load_key() if read_settings(path) is not None else None
    report = verify_backup(path, cipher=StoreCipher(key) if key is not None else None)
    if not report.ok:
        raise StoreError(f"backup is damaged: {report.problems[0]}", where=str(path))
    click.echo(f"backup ok: {report.artifacts} artifacts, {report.audit_entries} audit entries")


@store_group.command("restore")
@click.argument("backup_path", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--to", "root", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Store folder to restore into (default: $YARD_HOME or ./.yard).")
@click.option("--force", is_flag=True, help="Move an existing store there aside (never deleted) and restore.")
def restore_command(backup_path: Path, root: Path | None, force: bool) -> None:
    """Verify BACKUP_PATH, then restore it (audited in the restored store)."""
    from modelyard.store import default_root
    from modelyard.store.backup import restore

    target = root or default_root()
    report = restore(backup_path, target, force=force)
    click.echo(f"restored {report.artifacts} artifacts into {target}")


COMMANDS = [store_group]

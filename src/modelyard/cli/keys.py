"""``yard keys create|list|revoke``: API keys for the HTTP server."""

from __future__ import annotations

from typing import Any

import click

from modelyard.cli.output import emit_json, json_option, print_table


@click.group("keys")
def keys_group() -> None:
    """API keys: scoped, expiring, stored hashed (argon2id), shown once."""


@keys_group.command("create")
@click.option("--scopes", required=True, help="Comma-separated: predict, read, admin.")
@click.option("--expires", default=None, help="Lifetime such as 90m, 12h, 30d, 2w (default: never).")
@click.option("--name", default="", help="A label for people (who holds the key).")
@json_option
def create_command(scopes: str, expires: str | None, name: str, as_json: bool) -> None:
    """Create a key and print it once: it cannot be shown again."""
    from modelyard.store import open_store

    with open_store() as store:
        token, info = store.keys.create(scopes, expires, name=name)
    if as_json:
        emit_json({"token": token, "id": info.id, "name": info.name, "scopes": list(info.scopes),
                   "expires_at": info.expires_at})
        return
    click.echo(token)
    click.echo(f"key {info.id} ({info.name}): scopes {','.join(info.scopes)}, "
               f"expires {info.expires_at or 'never'}. Store it now: it is not shown again.", err=True)


@keys_group.command("list")
@json_option
def list_command(as_json: bool) -> None:
    """Every key with its scopes, status and last use (never the secret)."""
    from modelyard.store import open_store

    with open_store() as store:
        keys = store.keys.list()
    rows: list[dict[str, Any]] = [
        {"id": k.id, "name": k.name, "scopes": list(k.scopes), "status": k.status, "created_at": k.created_at,
         "created_by": k.created_by, "expires_at": k.expires_at, "last_used_at": k.last_used_at} for k in keys]
    if as_json:
        emit_json(rows)
        return
    print_table("API keys", ["id", "name", "scopes", "status", "expires", "last used", "created by"],
                [(r["id"], r["name"], ",".join(r["scopes"]), r["status"], (r["expires_at"] or "never")[:19],
                  (r["last_used_at"] or "never")[:19], r["created_by"]) for r in rows])


@keys_group.command("revoke")
@click.argument("key_id")
def revoke_command(key_id: str) -> None:
    """Revoke a key by id; requests with it fail from now on."""
    from modelyard.store import open_store

    with open_store() as store:
        info = store.keys.revoke(key_id)
    click.echo(f"revoked key {info.id} ({info.name})")


COMMANDS = [keys_group]

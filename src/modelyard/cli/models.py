"""``yard models list|show``."""

from __future__ import annotations

import click

from modelyard.cli.output import console, emit_json, json_option, print_table


@click.group("models")
def models_group() -> None:
    """The model registry: versions and aliases."""


@models_group.command("list")
@json_option
def list_command(as_json: bool) -> None:
    """Every registered model with its latest version and aliases."""
    from modelyard.store import open_store

    with open_store() as store:
        models = store.models.list_models()
    if as_json:
        emit_json(models)
        return
    print_table("models", ["name", "versions", "latest", "aliases"],
                [(m["name"], m["versions"], f"v{m['latest']}", ", ".join(f"{a}→v{v}" for a, v in m["aliases"].items()))
                 for m in models])


@models_group.command("show")
@click.argument("model")
@json_option
def show_command(model: str, as_json: bool) -> None:
    """One version (NAME, NAME@vN or NAME@ALIAS) with its metrics and artifact."""
    from modelyard.store import open_store

    with open_store() as store:
        version = store.models.resolve(model)
        manifest = store.artifacts.manifest(version.ref)
    info = {"model": version.uri, "aliases": list(version.aliases), "artifact": version.ref.id,
            "run": version.run_id, "created_at": version.created_at, "description": version.description,
            "metrics": version.metrics, "files": manifest.files, "parents": manifest.parents}
    if as_json:
        emit_json(info)
        return
    print_table(version.uri, ["", ""], [(k, v) for k, v in info.items() if k not in ("files", "metrics")]
                + [(k, v) for k, v in version.metrics.items()])
    console.print(f"{len(manifest.files)} files, all hashes verified")


COMMANDS = [models_group]

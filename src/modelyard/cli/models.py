"""``yard models register|list|show|history|promote|rollback|tag|card|export|import|verify|delete``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from modelyard.cli.output import console, emit_json, json_option, print_table


@click.group("models")
def models_group() -> None:
    """The model registry: versions, aliases, cards, promotion, bundles."""


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
                [(m["name"], m["versions"], f"v{m['latest']}" if m["latest"] else "-",
                  ", ".join(f"{a}→v{v}" for a, v in m["aliases"].items())) for m in models])


@models_group.command("show")
@click.argument("model")
@click.option("--lineage", is_flag=True, help="Draw dataset → runs → this version → children.")
@json_option
def show_command(model: str, lineage: bool, as_json: bool) -> None:
    """One version (NAME, NAME@vN or NAME@ALIAS) with its metrics, tags and artifact (hashes verified)."""
    from modelyard.store import open_store
    from modelyard.store.lineage import render_lineage, version_lineage

    with open_store() as store:
        version = store.models.resolve(model)
        manifest = store.artifacts.manifest(version.ref)
        chain = version_lineage(store, version) if lineage else None
    info: dict[str, Any] = {"model": version.uri, "aliases": list(version.aliases), "tags": version.tags,
                            "artifact": version.ref.id, "run": version.run_id, "created_at": version.created_at,
                            "description": version.description, "metrics": version.metrics,
                            "files": manifest.files, "parents": manifest.parents}
    if chain is not None:
        info["lineage"] = chain
    if as_json:
        emit_json(info)
        return
    print_table(version.uri, ["", ""],
                [(k, v) for k, v in info.items() if k not in ("files", "metrics", "lineage", "tags")]
                + [(f"tag {k}", v) for k, v in version.tags.items()]
                + [(k, v) for k, v in version.metrics.items()])
    console.print(f"{len(manifest.files)} files, all hashes verified")
    if chain is not None:
        click.echo(render_lineage(chain))


@models_group.command("register")
@click.argument("name")
@click.argument("artifact")
@click.option("--alias", default=None, help="Also point this alias at the new version.")
@click.option("--description", default="", help="What this version is.")
@click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE", help="A tag (repeatable).")
@click.option("--run", "run_id", default=None, help="The run that trained it (default: the artifact's run).")
@json_option
def register_command(name: str, artifact: str, alias: str | None, description: str, tags: tuple[str, ...],
                     run_id: str | None, as_json: bool) -> None:
    """Register model artifact ARTIFACT (id or 6+ hex prefix) as the next version of NAME."""
    from modelyard.core.errors import ConfigError
    from modelyard.core.refs import ModelRef
    from modelyard.store import open_store

    tag_values = _pairs(tags)  # bad input fails before the store is touched
    with open_store() as store:
        ref = store.artifacts.resolve_prefix(artifact)
        if ref.kind != "model":
            raise ConfigError(f"artifact {ref.short} is a {ref.kind}, not a model", where="ARTIFACT")
        store.artifacts.path(ref)  # verify before it gets a name
        row = store.artifacts.row(ref.id) or {}
        version = store.models.register(name, ModelRef(id=ref.id), run_id=run_id or row.get("run_id"),
                                        description=description, alias=alias, tags=tag_values)
    if as_json:
        emit_json({"model": version.uri, "artifact": version.ref.id, "aliases": list(version.aliases)})
        return
    click.echo(f"registered {version.uri}" + (f" ({alias})" if alias else ""))


def _pairs(items: tuple[str, ...] | list[str]) -> dict[str, str]:
    from modelyard.core.errors import ConfigError

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"expected KEY=VALUE, got {item!r}")
        out[key.strip()] = value
    return out


@models_group.command("history")
@click.argument("name")
@json_option
def history_command(name: str, as_json: bool) -> None:
    """Registrations, alias moves (promotions, rollbacks) and deletions of NAME, oldest first."""
    from modelyard.core.names import check_name
    from modelyard.store import open_store

    check_name(name, what="model name")
    with open_store() as store:
        events = store.models.history(name)
    if as_json:
        emit_json(events)
        return
    print_table(f"history of {name}", ["when", "event", "version", "by", "detail"],
                [(e["at"][:19].replace("T", " "), e["event"], f"v{e['version']}" if e["version"] else "-",
                  e["actor"], e["detail"]) for e in events])


def _scores(store: Any, version: Any, dataset: Any, split: str) -> Any:
    """Per-example scores of one version on ``split`` (higher is better): 1/0 correct, or -squared error."""
    import numpy as np

    from modelyard.core.errors import DataError
    from modelyard.data.artifact import open_dataset
    from modelyard.runtime.package import load_model
    from modelyard.runtime.predict import predict_outputs

    data = open_dataset(store, dataset)
    loaded = load_model(store, version.ref)
    if loaded.spec.get("task") != data.schema.task:
        raise DataError(f"{version.uri} is a {loaded.spec.get('task')} model; the gate's dataset is "
                        f"{data.schema.task}")
    if data.schema.task == "classification" and loaded.spec.get("label_names") != data.schema.label_names:
        raise DataError(f"{version.uri} was trained on other labels than the gate's dataset "
                        f"{dataset.short}; pass --dataset, or --force")
    x, y = data.arrays(split)
    if len(x) == 0:
        raise DataError(f"the {split} split of dataset {dataset.short} is empty: nothing to compare on")
    outputs = predict_outputs(loaded, x)
    if data.schema.task == "classification":
        return (outputs.argmax(axis=1) == y).astype(np.float64)
    return -((outputs.squeeze(-1) - y) ** 2).astype(np.float64)


def _gate_dataset(store: Any, version: Any, dataset: str | None) -> Any:
    from modelyard.core.errors import NotFoundError
    from modelyard.core.refs import DatasetRef

    if dataset:
        return DatasetRef(id=store.artifacts.resolve_prefix(dataset).id)
    for parent, relation in store.artifacts.parents(version.ref.id):
        row = store.artifacts.row(parent)
        if row and row["kind"] == "dataset" and relation == "trained_from":
            return DatasetRef(id=parent)
    raise NotFoundError(f"cannot tell which dataset {version.uri} was trained on", hint="pass --dataset ID")


@models_group.command("promote")
@click.argument("model")
@click.option("--to", "alias", default="production", show_default=True, help="The alias to move.")
@click.option("--force", is_flag=True, help="Skip (or override) the gate; the override is audited.")
@click.option("--tolerance", default=0.0, show_default=True, type=click.FloatRange(0),
              help="How much worse the candidate may be, in score units: accuracy for classification "
                   "(0.01 = 1 point), squared error for regression.")
@click.option("--dataset", default=None, help="Compare on this dataset's split (default: the candidate's).")
@click.option("--split", default="test", show_default=True, help="The split both versions are scored on.")
@click.option("--seed", default=0, show_default=True, help="Bootstrap seed.")
@json_option
def promote_command(model: str, alias: str, force: bool, tolerance: float, dataset: str | None, split: str,
                    seed: int, as_json: bool) -> None:
    """Point ALIAS (production) at MODEL, if it does not regress against the current one.

    For `production` both versions are scored on the same test examples and a paired
    bootstrap decides; a regression refuses the promotion (exit 2) unless --force.
    """
    from modelyard.core.errors import NotFoundError, StoreError
    from modelyard.store import open_store
    from modelyard.store.gate import gate
    from modelyard.store.paths import check_alias
    from modelyard.store.registry import PRODUCTION

    check_alias(alias)
    with open_store() as store:
        candidate = store.models.resolve(model)
        verdict: dict[str, Any] = {"checked": False}
        current = None
        if alias == PRODUCTION:
            try:
                current = store.models.resolve(f"{candidate.name}@{alias}")
            except NotFoundError:
                current = None  # the first production version has nothing to regress against
            if current is not None and current.version == candidate.version:
                raise StoreError(f"{candidate.uri} is {alias} already")
            if current is not None and not force:
                data_ref = _gate_dataset(store, candidate, dataset)
                result = gate(_scores(store, candidate, data_ref, split), _scores(store, current, data_ref, split),
                              tolerance=tolerance, seed=seed)
                verdict = {"checked": True, "baseline": current.uri, "dataset": data_ref.id, "split": split,
                           **result.as_dict()}
                if not result.passed:
                    store.audit.append(action="model.promote", target=f"{candidate.name}@{alias}",
                                       outcome="refused", details={"to": candidate.version, "gate": verdict})
                    raise StoreError(f"promotion of {candidate.uri} refused: {result.reason}",
                                     hint="fix the model, raise --tolerance, or --force (audited)")
            elif current is not None:
                verdict = {"checked": False, "baseline": current.uri, "reason": "--force"}
        # `expect`: the alias must still be where the gate looked, or the promotion is refused.
        before = store.models.promote(candidate.name, candidate.version, alias=alias, gate=verdict,
                                      forced=force and current is not None,
                                      expect=(current.version if current is not None else None)
                                      if alias == PRODUCTION else ...)
    if as_json:
        emit_json({"model": candidate.uri, "alias": alias, "previous": before, "gate": verdict, "forced": force})
        return
    if verdict.get("checked"):
        click.echo(f"gate: {verdict['reason']}")
    click.echo(f"{candidate.name}@{alias} → v{candidate.version}" + (f" (was v{before})" if before else "")
               + (" [forced]" if force and current is not None else ""))


@models_group.command("rollback")
@click.argument("name")
@click.option("--alias", default="production", show_default=True, help="The alias to move back.")
def rollback_command(name: str, alias: str) -> None:
    """Move NAME@ALIAS back to the version it pointed at before."""
    from modelyard.core.names import check_name
    from modelyard.store import open_store

    check_name(name, what="model name")
    with open_store() as store:
        old, new = store.models.rollback(name, alias)
    click.echo(f"{name}@{alias}: v{old} → v{new}")


@models_group.command("tag")
@click.argument("model")
@click.argument("tags", nargs=-1, metavar="[KEY=VALUE]...")
@click.option("--remove", multiple=True, metavar="KEY", help="Remove a tag (repeatable).")
@click.option("--description", default=None, help="Replace the version's description.")
def tag_command(model: str, tags: tuple[str, ...], remove: tuple[str, ...], description: str | None) -> None:
    """Set or remove tags (and the description) of a version."""
    from modelyard.store import open_store

    pairs = _pairs(tags)  # bad input fails before the store is touched
    with open_store() as store:
        version = store.models.resolve(model)
        updated = store.models.tag(version.name, version.version, set_tags=pairs, remove=list(remove),
                                   description=description)
    click.echo(f"{updated.uri}: " + (", ".join(f"{k}={v}" for k, v in updated.tags.items()) or "no tags"))


@models_group.command("card")
@click.argument("model")
@click.option("--format", "fmt", type=click.Choice(["md", "json"]), default="md", show_default=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Write card.md and card.json into this folder instead of printing.")
@click.option("--notes", default=None, help="Replace the card's notes (Markdown).")
@click.option("--notes-file", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="Replace the card's notes with this file's text.")
def card_command(model: str, fmt: str, out: Path | None, notes: str | None, notes_file: Path | None) -> None:
    """The model card of a version (Markdown or JSON); --notes edits its notes."""
    from modelyard.store import open_store
    from modelyard.store.cards import build_card, render_markdown

    with open_store() as store:
        version = store.models.resolve(model)
        if notes_file is not None:
            notes = notes_file.read_text("utf-8")
        if notes is not None:
            store.models.set_notes(version.name, version.version, notes)
        card = build_card(store, version)
    text = render_markdown(card)
    if out is not None:
        from modelyard.core.atomic import atomic_write_json, atomic_write_text

        atomic_write_text(out / "card.md", text)
        atomic_write_json(out / "card.json", card)
        click.echo(f"wrote {out / 'card.md'} and {out / 'card.json'}")
        return
    click.echo(json.dumps(card, indent=2, default=str) if fmt == "json" else text)


@models_group.command("export")
@click.argument("model")
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--sign-key", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="Sign the bundle with this Ed25519 private key (0600; `yard audit keygen`).")
@click.option("--force", is_flag=True, help="Overwrite OUT.")
def export_command(model: str, out: Path, sign_key: Path | None, force: bool) -> None:
    """Write a version (artifact, metadata, card) to a bundle file OUT (.tar.gz)."""
    from modelyard.store import open_store
    from modelyard.store.audit import AuditSigner
    from modelyard.store.bundles import export_bundle

    signer = AuditSigner.from_file(sign_key) if sign_key is not None else None
    with open_store() as store:
        version = store.models.resolve(model)
        path = export_bundle(store, version, out, signer=signer, overwrite=force)
        encrypted = store.encrypted
    click.echo(f"exported {version.uri} to {path}" + (" (signed)" if signer else ""))
    if encrypted:
        click.echo("note: bundles are not encrypted; keep this file as safe as the store's key", err=True)


@models_group.command("import")
@click.argument("bundle", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--name", default=None, help="Register under this name (default: the bundle's).")
@click.option("--public-key", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="Check the bundle's signature with this Ed25519 public key.")
@click.option("--require-signature", is_flag=True, help="Refuse unsigned bundles.")
def import_command(bundle: Path, name: str | None, public_key: Path | None, require_signature: bool) -> None:
    """Verify a bundle completely, then register it as a new version."""
    from modelyard.store import open_store
    from modelyard.store.audit import load_public_key
    from modelyard.store.bundles import import_bundle

    key = load_public_key(public_key) if public_key is not None else None
    with open_store() as store:
        version = import_bundle(store, bundle, name=name, public_key=key, require_signature=require_signature)
    click.echo(f"imported {bundle.name} as {version.uri}")


@models_group.command("verify")
@click.argument("model", required=False)
@click.option("--all", "check_all", is_flag=True, help="Every live version of every model.")
@click.option("--bundle", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="Verify a bundle file instead (hashes, and signature with --public-key).")
@click.option("--public-key", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None)
def verify_command(model: str | None, check_all: bool, bundle: Path | None, public_key: Path | None) -> None:
    """Re-hash the files of a version (or --all, or a --bundle); exit 2 on the first problem."""
    import shutil
    import tempfile

    from modelyard.core.errors import ConfigError
    from modelyard.store import open_store
    from modelyard.store.audit import load_public_key
    from modelyard.store.bundles import read_bundle

    if bundle is not None:
        key = load_public_key(public_key) if public_key is not None else None
        scratch_parent = Path(tempfile.mkdtemp(prefix="yard-bundle-"))
        try:
            contents = read_bundle(bundle, scratch_parent, public_key=key)
        finally:
            shutil.rmtree(scratch_parent, ignore_errors=True)
        model_info = contents.info["model"]
        signed = f"signed by {contents.signer}" + ("" if key is not None else " (not checked: no --public-key)") \
            if contents.signer else "unsigned"
        click.echo(f"bundle ok: {model_info['name']}@v{model_info['version']}, {len(contents.files)} files, {signed}")
        return
    if not model and not check_all:
        raise ConfigError("name a MODEL, or pass --all or --bundle FILE")
    with open_store() as store:
        versions = ([v for m in store.models.list_models() for v in store.models.versions(m["name"])]
                    if check_all else [store.models.resolve(model or "")])
        for version in versions:
            manifest = store.artifacts.manifest(version.ref)
            store.artifacts.path(version.ref)
            click.echo(f"ok {version.uri}: {len(manifest.files)} files")


@models_group.command("delete")
@click.argument("model")
@click.option("--force", is_flag=True, help="Also remove the aliases pointing at it.")
def delete_command(model: str, force: bool) -> None:
    """Delete a version (it stops resolving; `yard store gc` frees its files). Audited."""
    from modelyard.store import open_store

    with open_store() as store:
        version = store.models.resolve(model)
        store.models.delete(version.name, version.version, force=force)
    click.echo(f"deleted {version.uri}" + (f" (removed {', '.join(version.aliases)})" if version.aliases else "")
               + "; run `yard store gc` to free its files")


COMMANDS = [models_group]

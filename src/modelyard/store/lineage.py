"""Lineage of a model version: dataset → data run → (search run) → training run → version → children.

Built from what the store records: the model artifact's parents (``trained_from`` a
dataset, ``compressed_from`` another model), the runs that wrote each artifact, the
runs' parents (a search run is the parent of the training run it launched), and the
artifacts made from the model (evaluation reports, compressed children, and the
versions those were registered as).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from modelyard.core.errors import NotFoundError
from modelyard.store.registry import ModelVersion

if TYPE_CHECKING:
    from modelyard.store.project import Store

_MAX_DEPTH = 8


def _run(store: Store, run_id: str | None) -> dict[str, Any] | None:
    if not run_id:
        return None
    try:
        run = store.runs.get(run_id)
    except NotFoundError:
        return {"id": run_id, "missing": True}
    return {"id": run["id"], "kind": run["kind"], "name": run["name"], "status": run["status"],
            "started_at": run["started_at"], "ended_at": run["ended_at"], "parent_run_id": run["parent_run_id"]}


def _artifact(store: Store, artifact_id: str) -> dict[str, Any]:
    row = store.artifacts.row(artifact_id)
    if row is None:
        return {"id": artifact_id, "kind": "?", "missing": True}
    return {"id": artifact_id, "kind": row["kind"], "run_id": row["run_id"], "created_at": row["created_at"],
            "meta": row["meta"], "deleted": bool(row["deleted_at"])}


def _ancestor_of_kind(store: Store, run: dict[str, Any] | None, kinds: tuple[str, ...]) -> dict[str, Any] | None:
    seen = 0
    while run and run.get("parent_run_id") and seen < _MAX_DEPTH:
        run = _run(store, run["parent_run_id"])
        if run and run.get("kind") in kinds:
            return run
        seen += 1
    return None


def _children(store: Store, artifact_id: str, depth: int = 0) -> list[dict[str, Any]]:
    out = []
    for child_id, relation in store.artifacts.children(artifact_id):
        node = {**_artifact(store, child_id), "relation": relation}
        if node["kind"] == "model":
            node["versions"] = [v.uri for v in store.models.versions_of_artifact(child_id)]
            node["children"] = _children(store, child_id, depth + 1) if depth < _MAX_DEPTH else []
        out.append(node)
    return sorted(out, key=lambda n: (n["kind"] != "model", n.get("created_at") or ""))


def version_lineage(store: Store, version: ModelVersion) -> dict[str, Any]:
    """Everything upstream and downstream of ``version`` as one JSON-ready dict."""
    model_id = version.ref.id
    parents = [(_artifact(store, pid), relation) for pid, relation in store.artifacts.parents(model_id)]
    datasets = [{**node, "relation": rel} for node, rel in parents if node["kind"] == "dataset"]
    parent_models = [{**node, "relation": rel,
                      "versions": [v.uri for v in store.models.versions_of_artifact(node["id"])]}
                     for node, rel in parents if node["kind"] == "model"]
    for dataset in datasets:
        dataset["run"] = _run(store, dataset.get("run_id"))
        dataset["parents"] = [pid for pid, _rel in store.artifacts.parents(dataset["id"])]
    artifact = store.artifacts.row(model_id) or {}
    train_run = _run(store, version.run_id or artifact.get("run_id"))
    search_run = _ancestor_of_kind(store, train_run, ("tune",))
    pipeline_run = _ancestor_of_kind(store, train_run, ("pipeline",))
    return {
        "version": {"uri": version.uri, "artifact": model_id, "aliases": list(version.aliases),
                    "created_at": version.created_at, "tags": version.tags},
        "datasets": datasets,
        "parent_models": parent_models,
        "train_run": train_run,
        "search_run": search_run,
        "pipeline_run": pipeline_run,
        "children": _children(store, model_id),
    }


def render_lineage(lineage: dict[str, Any]) -> str:
    """The chain as indented text, upstream first (what ``yard models show --lineage`` prints)."""
    lines: list[str] = []
    depth = 0

    def add(text: str) -> None:
        nonlocal depth
        lines.append(("   " * (depth - 1) + "└─ " if depth else "") + text)
        depth += 1

    for dataset in lineage["datasets"]:
        rows = (dataset.get("meta") or {}).get("rows") or {}
        size = " / ".join(f"{k} {v}" for k, v in rows.items())
        add(f"dataset {dataset['id'][:12]}" + (f" ({size})" if size else "") + (" [files freed]" if dataset.get(
            "deleted") else ""))
        if dataset.get("run"):
            add(f"data run {dataset['run']['id']} ({dataset['run'].get('status', '?')})")
    for parent in lineage["parent_models"]:
        add(f"parent model {parent['id'][:12]} ({', '.join(parent['versions']) or 'unregistered'}; "
            f"{parent['relation']})")
    if lineage["search_run"]:
        add(f"search run {lineage['search_run']['id']} ({lineage['search_run'].get('status', '?')})")
    if lineage["train_run"]:
        add(f"training run {lineage['train_run']['id']} ({lineage['train_run'].get('status', '?')})")
    version = lineage["version"]
    aliases = f"; {', '.join(version['aliases'])}" if version["aliases"] else ""
    add(f"{version['uri']} (model {version['artifact'][:12]}{aliases})")
    base = depth

    def walk(children: list[dict[str, Any]], level: int) -> None:
        for child in children:
            prefix = "   " * (level - 1) + "└─ "
            if child["kind"] == "model":
                registered = ", ".join(child.get("versions") or []) or "unregistered"
                lines.append(f"{prefix}{child['relation']} → model {child['id'][:12]} ({registered})")
                walk(child.get("children") or [], level + 1)
            else:
                lines.append(f"{prefix}{child['kind']} {child['id'][:12]} ({child['relation']})")

    walk(lineage["children"], base)
    return "\n".join(lines)


__all__ = ["render_lineage", "version_lineage"]

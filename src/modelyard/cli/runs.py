"""``yard runs list|show``."""

from __future__ import annotations

import click

from modelyard.cli.output import emit_json, json_option, print_table


@click.group("runs")
def runs_group() -> None:
    """What happened: runs with their status, metrics and artifacts."""


@runs_group.command("list")
@click.option("--kind", default=None, help="Only runs of this kind (pipeline, data, train, evaluate).")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 10_000))
@json_option
def list_command(kind: str | None, limit: int, as_json: bool) -> None:
    """The newest runs first."""
    from modelyard.store import open_store

    with open_store() as store:
        runs = store.runs.list(kind=kind, limit=limit)
    if as_json:
        emit_json([{k: r[k] for k in ("id", "kind", "name", "status", "started_at", "ended_at", "parent_run_id",
                                      "error", "summary")} for r in runs])
        return
    print_table("runs", ["id", "kind", "name", "status", "started", "error"],
                [(r["id"], r["kind"], r["name"], r["status"], r["started_at"][:19].replace("T", " "),
                  (r["error"] or "")[:60]) for r in runs])


@runs_group.command("show")
@click.argument("run_id")
@json_option
def show_command(run_id: str, as_json: bool) -> None:
    """One run: config, status, params, final metrics, artifacts."""
    from modelyard.store import open_store

    with open_store() as store:
        run = store.runs.get(run_id)
        params = store.runs.params(run["id"])
        metrics = {key: store.runs.metric_series(run["id"], key)[-1][1] for key in store.runs.metric_keys(run["id"])}
        outputs = store.runs.artifacts(run["id"])
        inputs = store.runs.artifacts(run["id"], role="input")
        children = store.runs.list(parent_run_id=run["id"], limit=100)
    info = {**run, "params": params, "last_metrics": metrics,
            "inputs": [{"id": i, "kind": k} for i, k in inputs], "outputs": [{"id": i, "kind": k} for i, k in outputs],
            "children": [{"id": c["id"], "kind": c["kind"], "status": c["status"]} for c in children]}
    if as_json:
        emit_json(info)
        return
    rows = [(k, run[k]) for k in ("id", "kind", "name", "status", "started_at", "ended_at", "error", "git_sha")]
    rows += [(f"summary.{k}", v) for k, v in (run.get("summary") or {}).items() if k != "stage_runs"]
    rows += [(f"metric {k}", v) for k, v in metrics.items()]
    rows += [(f"output {k}", i[:16]) for i, k in outputs] + [(f"input {k}", i[:16]) for i, k in inputs]
    rows += [(f"stage {c['kind']}", f"{c['id']} ({c['status']})") for c in children]
    print_table(f"run {run['id']}", ["", ""], rows)


COMMANDS = [runs_group]

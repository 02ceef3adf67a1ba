"""Render a run (and its stage runs) into one self-contained HTML file that opens offline."""

from __future__ import annotations

import html
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from modelyard.core.atomic import atomic_write_text
from modelyard.report.plots import confusion_plot, line_plot
from modelyard.store.project import Store

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem auto;max-width:1000px;color:#222}
h1{margin-bottom:.2rem} .muted{color:#666} table{border-collapse:collapse;margin:.5rem 0}
td,th{border:1px solid #ddd;padding:.3rem .6rem;text-align:left} th{background:#f5f5f5}
img{max-width:100%;border:1px solid #eee;margin:.5rem 0} section{margin:1.5rem 0}
code{background:#f4f4f4;padding:0 .2rem}
"""


def _table(rows: list[tuple[str, Any]]) -> str:
    body = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(_fmt(v))}</td></tr>" for k, v in rows)
    return f"<table>{body}</table>"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, dict | list):
        return json.dumps(value, default=str)
    return str(value)


def _img(uri: str, alt: str) -> str:
    return f'<img src="{uri}" alt="{html.escape(alt)}">'


def _report_jsons(store: Store, run_id: str) -> list[dict[str, Any]]:
    out = []
    for artifact_id, kind in store.runs.artifacts(run_id):
        if kind != "report":
            continue
        folder = store.artifacts.path(artifact_id)
        for path in sorted(folder.glob("*.json")):
            if path.name != "manifest.json":
                out.append(json.loads(path.read_text("utf-8")))
    return out


def render_run_report(store: Store, run_id: str, *, out_dir: Path | None = None) -> Path:
    """Write ``<out_dir>/<run>.html`` for ``run_id`` (a pipeline run or a single stage run).

    Returns:
        The path of the written HTML file.
    """
    run = store.runs.get(run_id)
    children = store.runs.list(parent_run_id=run["id"], limit=100) or [run]
    by_kind = {c["kind"]: c for c in reversed(children)}
    sections: list[str] = []

    summary = run.get("summary") or {}
    sections.append("<section><h2>Summary</h2>" + _table([
        ("run", run["id"]), ("name", run["name"]), ("kind", run["kind"]), ("status", run["status"]),
        ("started", run["started_at"]), ("ended", run.get("ended_at")),
        *[(k, v) for k, v in summary.items() if k != "stage_runs"],
    ]) + (f"<p><b>error:</b> <code>{html.escape(run['error'])}</code></p>" if run.get("error") else "")
        + "</section>")

    data_run = by_kind.get("data")
    if data_run and data_run.get("summary"):
        sections.append("<section><h2>Data</h2>" + _table(list(data_run["summary"].items())) + "</section>")

    train_run = by_kind.get("train")
    if train_run:
        rid = train_run["id"]
        plots = []
        loss = {"train/loss": store.runs.metric_series(rid, "train/loss"),
                "valid/loss": store.runs.metric_series(rid, "valid/loss")}
        if any(loss.values()):
            plots.append(_img(line_plot(loss, title="loss", ylabel="loss"), "loss curve"))
        acc = store.runs.metric_series(rid, "valid/accuracy")
        if acc:
            plots.append(_img(line_plot({"valid/accuracy": acc}, title="validation accuracy"), "accuracy curve"))
        lr = store.runs.metric_series(rid, "train/lr")
        if lr:
            plots.append(_img(line_plot({"lr": lr}, title="learning rate"), "learning rate"))
        params = store.runs.params(rid)
        sections.append("<section><h2>Training</h2>" + "".join(plots)
                        + _table(sorted(params.items())) + _table(list((train_run.get("summary") or {}).items()))
                        + "</section>")

    eval_run = by_kind.get("evaluate")
    if eval_run:
        for report in _report_jsons(store, eval_run["id"]):
            parts = [_table(list(report.get("metrics", {}).items()))]
            if "confusion_matrix" in report:
                parts.append(_img(confusion_plot(report["confusion_matrix"], report["labels"]), "confusion matrix"))
            sections.append(f"<section><h2>Evaluation ({html.escape(report.get('split', ''))}, "
                            f"{report.get('rows')} rows)</h2>" + "".join(parts) + "</section>")

    sections.append("<section><h2>Environment</h2>" + _table([
        ("git", run.get("git_sha")), *sorted((run.get("host") or {}).items()),
        *sorted((run.get("packages") or {}).items())]) + "</section>")

    title = f"modelyard · {run['name']} · {run['id']}"
    page = (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{_CSS}</style></head><body><h1>{html.escape(run['name'])}</h1>"
            f"<p class='muted'>run {run['id']} · written {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}</p>"
            + "".join(sections) + "</body></html>")
    folder = out_dir or store.root / "reports"
    path = folder / f"{run['id']}.html"
    atomic_write_text(path, page)
    return path

"""Render a run (and its stage runs) into one self-contained HTML file that opens offline."""

from __future__ import annotations

import html
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from modelyard.core.atomic import atomic_write_text
from modelyard.core.errors import StoreError
from modelyard.report.compression import compression_section
from modelyard.report.data_quality import data_quality_section
from modelyard.report.evaluation import evaluation_section
from modelyard.report.explanation import explanation_section
from modelyard.report.markup import grid
from modelyard.report.plots import line_plot
from modelyard.report.search import search_section
from modelyard.store.project import Store

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem auto;max-width:1000px;color:#222}
h1{margin-bottom:.2rem} .muted{color:#666} table{border-collapse:collapse;margin:.5rem 0}
td,th{border:1px solid #ddd;padding:.3rem .6rem;text-align:left} th{background:#f5f5f5}
img{max-width:100%;border:1px solid #eee;margin:.5rem 0} section{margin:1.5rem 0}
code{background:#f4f4f4;padding:0 .2rem} .plots{display:flex;flex-wrap:wrap;gap:.5rem;align-items:flex-start}
.plots img{max-width:48%} td img{max-width:90px;margin:0} .tok{padding:0 .1rem;border-radius:2px}
.tokens{line-height:1.9} h3{margin-top:1.2rem}
"""

# Training series drawn in the report: (title, y label, metric keys).
TRAINING_PLOTS = (
    ("loss", "loss", ("train/loss", "valid/loss")),
    ("validation accuracy", "accuracy", ("valid/accuracy",)),
    ("learning rate", "lr", ("train/lr",)),
    ("throughput", "samples / s", ("train/samples_per_s", "train/tokens_per_s")),
    ("memory", "MB", ("train/peak_memory_mb", "train/memory_mb", "system/rss_mb", "system/cuda_memory_mb")),
)


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


def _report_jsons(store: Store, run_id: str, name: str = "evaluation.json") -> list[dict[str, Any]]:
    """The ``name`` file of every report artifact ``run_id`` wrote."""
    out = []
    for artifact_id, kind in store.runs.artifacts(run_id):
        if kind != "report":
            continue
        path = store.artifacts.path(artifact_id) / name
        if path.is_file():
            out.append(json.loads(path.read_text("utf-8")))
    return out


def _lineage(store: Store, runs: list[dict[str, Any]]) -> str:
    """Every artifact the runs read or wrote, with what it was made from."""
    rows = []
    seen: set[str] = set()
    for run in runs:
        for role in ("input", "output"):
            for artifact_id, kind in store.runs.artifacts(run["id"], role=role):
                if artifact_id in seen:
                    continue
                seen.add(artifact_id)
                parents = ", ".join(f"{relation} {parent[:12]}" for parent, relation in
                                    store.artifacts.parents(artifact_id))
                rows.append((kind, artifact_id[:12], f"{run['kind']} {run['id']}", parents or "—"))
    if not rows:
        return ""
    return "<section id='lineage'><h2>Lineage</h2>" + grid(["artifact", "id", "first seen in", "made from"],
                                                             rows) + "</section>"


def _dataset_qualities(store: Store, run_id: str) -> list[dict[str, Any]]:
    """The ``quality.json`` of every dataset a data run wrote."""
    out = []
    for artifact_id, kind in store.runs.artifacts(run_id):
        path = store.artifacts.path(artifact_id) / "quality.json" if kind == "dataset" else None
        if path is not None and path.is_file():
            out.append(json.loads(path.read_text("utf-8")))
    return out


def render_run_report(store: Store, run_id: str, *, out_dir: Path | None = None) -> Path:
    """Write ``<out_dir>/<run>.html`` for ``run_id`` (a pipeline run or a single stage run).

    Returns:
        The path of the written HTML file.

    Raises:
        StoreError: the store is encrypted at rest and no ``out_dir`` was named (a report holds
            data examples and metrics; it is not written inside an encrypted store in the clear).
    """
    if out_dir is None and store.encrypted:
        raise StoreError("this store is encrypted at rest: an HTML report is not written inside it in the clear",
                         where=str(store.root), hint="name a folder outside the store: `yard report RUN --out DIR`")
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
    if data_run:
        sections += [data_quality_section(q) for q in _dataset_qualities(store, data_run["id"])]

    train_run = by_kind.get("train")
    if train_run:
        rid = train_run["id"]
        plots = []
        for title, ylabel, keys in TRAINING_PLOTS:
            series = {key: store.runs.metric_series(rid, key) for key in keys}
            series = {k: v for k, v in series.items() if v}
            if series:
                plots.append(_img(line_plot(series, title=title, ylabel=ylabel), f"{title} curve"))
        params = store.runs.params(rid)
        sections.append("<section id='training'><h2>Training</h2><div class='plots'>" + "".join(plots) + "</div>"
                        + _table(sorted(params.items())) + _table(list((train_run.get("summary") or {}).items()))
                        + "</section>")

    eval_run = by_kind.get("evaluate")
    if eval_run:
        sections += [evaluation_section(report) for report in _report_jsons(store, eval_run["id"])]
    explain_run = by_kind.get("explain")
    if explain_run:
        sections += [explanation_section(report)
                     for report in _report_jsons(store, explain_run["id"], "explanation.json")]

    search_run = run if run["kind"] == "tune" else by_kind.get("tune")
    if search_run:
        sections.append(search_section(store, search_run["id"]))
    compress_run = run if run["kind"] == "compress" else by_kind.get("compress")
    compressed = (compress_run.get("summary") or {}).get("compress") if compress_run else None
    if compressed:
        sections.append(compression_section(compressed))

    sections.append(_lineage(store, [run, *[c for c in children if c["id"] != run["id"]]]))
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

"""The search section of the HTML report, drawn from the ``search.json`` a search run stored.

Four plots (optimization history, parallel coordinates, parameter importances,
intermediate values) with matplotlib, plus the results table. Only stored figures are
read: no optuna, no torch.
"""

from __future__ import annotations

import html
import json
import math
from typing import Any

import matplotlib.pyplot as plt

from modelyard.report.plots import to_data_uri
from modelyard.store.project import Store

_STATE_COLOURS = {"complete": "tab:blue", "pruned": "tab:orange", "fail": "tab:red"}


def load_search(store: Store, run_id: str) -> dict[str, Any] | None:
    """The ``search.json`` of the search artifact written by run ``run_id`` (None if there is none)."""
    for artifact_id, kind in store.runs.artifacts(run_id):
        if kind == "search":
            path = store.artifacts.path(artifact_id) / "search.json"
            return json.loads(path.read_text("utf-8"))  # type: ignore[no-any-return]
    return None


def _better(direction: str, a: float, b: float) -> bool:
    return a > b if direction == "maximize" else a < b


def history_plot(doc: dict[str, Any]) -> str:
    """Each trial's value by trial number (colour: state) and the best value so far."""
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    best: float | None = None
    xs, bests = [], []
    for state, colour in _STATE_COLOURS.items():
        pts = [(r["number"], r["value"]) for r in doc["trials"] if r["state"] == state and r["value"] is not None]
        if pts:
            ax.scatter([p[0] for p in pts], [p[1] for p in pts], c=colour, s=18, label=state)
    for row in doc["trials"]:
        if row["state"] == "complete" and row["value"] is not None:
            if best is None or _better(doc["direction"], row["value"], best):
                best = row["value"]
            xs.append(row["number"])
            bests.append(best)
    if xs:
        ax.step(xs, bests, where="post", color="black", linewidth=1.2, label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel(doc["metric"])
    ax.set_title("optimization history")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return to_data_uri(fig)


def _numeric(values: list[Any]) -> tuple[list[float], list[str] | None]:
    """Values on a numeric axis: numbers as they are, anything else by index of its label."""
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return [float(v) for v in values], None
    labels = sorted({json.dumps(v, default=str) for v in values})
    return [float(labels.index(json.dumps(v, default=str))) for v in values], labels


def parallel_plot(doc: dict[str, Any]) -> str | None:
    """Parallel coordinates of the complete trials: one axis per parameter, lines coloured by value."""
    rows = [r for r in doc["trials"] if r["state"] == "complete" and r["value"] is not None]
    names = sorted({k for r in rows for k in r["params"]})
    if len(rows) < 2 or not names:
        return None
    fig, ax = plt.subplots(figsize=(max(6.4, 1.6 * (len(names) + 1)), 3.8))
    scaled: list[list[float]] = [[] for _ in rows]
    for name in names:
        raw = [r["params"].get(name) for r in rows]
        present = [v for v in raw if v is not None]
        nums, _labels = _numeric(present) if present else ([], None)
        lo, hi = (min(nums), max(nums)) if nums else (0.0, 1.0)
        it = iter(nums)
        log_scale = lo > 0 and hi / lo > 100
        for i, v in enumerate(raw):
            if v is None:
                scaled[i].append(math.nan)
                continue
            x = next(it)
            if log_scale:
                x, lo_, hi_ = math.log10(x), math.log10(lo), math.log10(hi)
            else:
                lo_, hi_ = lo, hi
            scaled[i].append(0.5 if hi_ == lo_ else (x - lo_) / (hi_ - lo_))
    values = [r["value"] for r in rows]
    vmin, vmax = min(values), max(values)
    cmap = plt.get_cmap("viridis")
    for line, value in zip(scaled, values):
        shade = 0.5 if vmax == vmin else (value - vmin) / (vmax - vmin)
        if doc["direction"] == "minimize":
            shade = 1.0 - shade
        ax.plot(range(len(names) + 1), [*line, shade], color=cmap(shade), alpha=0.8)
    ax.set_xticks(range(len(names) + 1), labels=[*names, doc["metric"]], rotation=20, fontsize=8)
    ax.set_yticks([0, 1], labels=["low", "high"])
    ax.set_title("parallel coordinates (complete trials; bright = better)")
    ax.grid(alpha=0.3, axis="x")
    return to_data_uri(fig)


def importance_plot(importances: dict[str, float]) -> str | None:
    """Horizontal bars of the parameter importances (fANOVA)."""
    if not importances:
        return None
    items = sorted(importances.items(), key=lambda kv: kv[1])
    fig, ax = plt.subplots(figsize=(6.4, 0.6 + 0.45 * len(items)))
    ax.barh([k for k, _ in items], [v for _, v in items], color="tab:blue")
    ax.set_xlabel("importance (fANOVA)")
    ax.set_title("parameter importances")
    return to_data_uri(fig)


def intermediate_plot(doc: dict[str, Any]) -> str | None:
    """The objective reported at each epoch of each trial (pruned trials end early)."""
    rows = [r for r in doc["trials"] if r.get("intermediate")]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for row in rows:
        steps = [p[0] for p in row["intermediate"]]
        vals = [p[1] for p in row["intermediate"]]
        ax.plot(steps, vals, color=_STATE_COLOURS.get(row["state"], "grey"), alpha=0.7, linewidth=1,
                marker="o" if len(steps) < 4 else None, markersize=3)
    ax.set_xlabel("epoch (fold × epochs + epoch with cross-validation)")
    ax.set_ylabel(doc["metric"])
    ax.set_title("intermediate values (blue: complete, orange: pruned)")
    ax.grid(alpha=0.3)
    return to_data_uri(fig)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, default=str)
    return str(value)


def search_section(store: Store, run_id: str) -> str:
    """An HTML fragment for the search run ``run_id``: best trial, plots and the trials table ('' if none)."""
    doc = load_search(store, run_id)
    if doc is None:
        return ""
    best = doc["best"]
    parts = [f"<section><h2>Search: study {html.escape(doc['study'])}</h2>",
             f"<p>{html.escape(doc['sampler'])} sampler, {html.escape(doc['pruner'])} pruner, "
             f"{html.escape(doc['direction'])} <code>{html.escape(doc['metric'])}</code>"
             + (f", {doc['cv_folds']}-fold cross-validation" if doc.get("cv_folds") else "")
             + f". Best: trial {best['trial']} = {_fmt(best['value'])}"
             + (f" ± {_fmt(best['std'])}" if best.get("std") is not None else "")
             + f"; tuner overhead {doc['overhead'].get('overhead_fraction', 0):.1%}.</p>"]
    plots = [(history_plot(doc), "optimization history"), (parallel_plot(doc), "parallel coordinates"),
             (importance_plot(doc.get("importances") or {}), "parameter importances"),
             (intermediate_plot(doc), "intermediate values")]
    parts += [f'<img src="{uri}" alt="{alt}">' for uri, alt in plots if uri]
    header = "".join(f"<th>{h}</th>" for h in ("trial", "state", "value", "params", "steps", "run", "note"))
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in (
            r["number"], r["state"], r["value"], r["params"], r.get("steps"), r.get("run_id"),
            r.get("error") or r.get("stopped"))) + "</tr>" for r in doc["trials"])
    parts.append(f"<table><tr>{header}</tr>{body}</table></section>")
    return "".join(parts)

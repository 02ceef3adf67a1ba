"""The compression section of the HTML report, drawn from a compress run's summary.

One table (every variant against its parent: status, the budget metric and its drop, file
size, parameters, batch-1 and batch-32 latency, and the ratios) and one figure of the
trade-off: how much smaller and how much faster (batch 32) each variant is, coloured by
whether the accuracy budget accepted it. Only stored figures are read: no torch.
"""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt

from modelyard.report.markup import Markup, esc, grid, img, section
from modelyard.report.plots import to_data_uri

_STATUS_COLOURS = {"accepted": "tab:green", "rejected": "tab:red", "failed": "tab:gray"}


def _ratio(parent: float | None, variant: float | None) -> float | None:
    """``parent / variant`` (how many times smaller or faster), None when either is missing."""
    if not parent or not variant:
        return None
    return parent / variant


def variant_rows(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per variant (the parent first) with the figures the table and the plot show."""
    metric = doc["budget_metric"]
    parent_latency = doc.get("parent_latency_ms") or {}
    rows = [{"name": "parent (fp32)", "method": "—", "status": "parent", "metric": doc["parent_metrics"].get(metric),
             "drop": 0.0, "bytes": doc.get("parent_size_bytes"), "parameters": doc.get("parent_parameters"),
             "b1": parent_latency.get("batch1_p50"), "b32": parent_latency.get("batch32_p50"),
             "smaller": 1.0, "faster_b1": 1.0, "faster_b32": 1.0, "reason": ""}]
    for v in doc["variants"]:
        latency = v.get("latency_ms") or {}
        rows.append({"name": v["name"], "method": v["method"], "status": v["status"],
                     "metric": (v.get("metrics") or {}).get(metric), "drop": v.get("drop"),
                     "bytes": v.get("size_bytes"), "parameters": v.get("parameters"),
                     "b1": latency.get("batch1_p50"), "b32": latency.get("batch32_p50"),
                     "smaller": _ratio(doc.get("parent_size_bytes"), v.get("size_bytes")),
                     "faster_b1": _ratio(parent_latency.get("batch1_p50"), latency.get("batch1_p50")),
                     "faster_b32": _ratio(parent_latency.get("batch32_p50"), latency.get("batch32_p50")),
                     "reason": v.get("reason") or ""})
    return rows


def tradeoff_plot(rows: list[dict[str, Any]]) -> str | None:
    """Bars of "× smaller" and "× faster at batch 32" per variant (colour: accepted / rejected)."""
    shown = [r for r in rows if r["status"] != "parent" and (r["smaller"] or r["faster_b32"])]
    if not shown:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(9.6, 0.45 * len(shown) + 1.4), sharey=True)
    names = [r["name"] for r in shown]
    colours = [_STATUS_COLOURS.get(r["status"], "tab:gray") for r in shown]
    for ax, key, title in ((axes[0], "smaller", "× smaller file"), (axes[1], "faster_b32", "× faster, batch 32")):
        values = [r[key] or 0.0 for r in shown]
        ax.barh(names, values, color=colours)
        ax.axvline(1.0, color="black", linewidth=0.8, linestyle="--")
        ax.set_title(title)
        ax.grid(axis="x", alpha=0.3)
    axes[0].invert_yaxis()
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in _STATUS_COLOURS.values()]
    axes[1].legend(handles, list(_STATUS_COLOURS), fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.suptitle("compression trade-off (against the fp32 parent)", y=1.0 + 0.35 / (0.45 * len(shown) + 1.4))
    return to_data_uri(fig)


def compression_section(doc: dict[str, Any]) -> str:
    """The section for one compress run's ``summary["compress"]``."""
    rows = variant_rows(doc)
    metric = doc["budget_metric"]
    header = ["variant", "method", "status", f"{metric} ({doc['split']})", "drop (points)", "kB", "parameters",
              "b1 p50 ms", "b32 p50 ms", "× smaller", "× faster b1", "× faster b32", "why"]
    table = grid(header, [[r["name"], r["method"], Markup(f"<b>{esc(r['status'])}</b>"), r["metric"], r["drop"],
                           round(r["bytes"] / 1024, 1) if r["bytes"] else None, r["parameters"], r["b1"], r["b32"],
                           _round(r["smaller"]), _round(r["faster_b1"]), _round(r["faster_b32"]), r["reason"]]
                          for r in rows], raw=True)
    plot = tradeoff_plot(rows)
    lead = (f"<p>Parent <code>{esc(doc.get('parent_uri') or doc['parent'])}</code>; budget: at most "
            f"{esc(doc['max_drop'])} points of {esc(metric)} lost on the {esc(doc['split'])} split. Latencies are "
            "medians measured on this machine when the variant was made.</p>")
    return section("Compression", lead + (img(plot, "compression trade-off") if plot else "") + table,
                   anchor="compression")


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


__all__ = ["compression_section", "tradeoff_plot", "variant_rows"]

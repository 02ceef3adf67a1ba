"""Matplotlib figures rendered to base64 PNG for embedding in a self-contained HTML file."""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")  # no display: render to memory only
import matplotlib.pyplot as plt
from matplotlib.figure import Figure


def to_data_uri(fig: Figure) -> str:
    """PNG bytes of ``fig`` as a ``data:`` URI; closes the figure."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def line_plot(series: dict[str, list[tuple[int, float]]], *, title: str, xlabel: str = "step",
              ylabel: str = "") -> str:
    """One line per named series of (step, value)."""
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for name, points in series.items():
        pts = [(s, v) for s, v in points if not math.isnan(v)]
        if pts:
            ax.plot([s for s, _ in pts], [v for _, v in pts], label=name, marker="o" if len(pts) < 30 else None)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if len(series) > 1:
        ax.legend()
    return to_data_uri(fig)


def confusion_plot(matrix: Sequence[Sequence[int]], labels: Sequence[str]) -> str:
    """A confusion-matrix heat map with counts in the cells (rows: true, columns: predicted)."""
    k = len(labels)
    fig, ax = plt.subplots(figsize=(1.2 + 0.55 * k, 1.0 + 0.5 * k))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(k), labels=labels, rotation=45 if k > 6 else 0)
    ax.set_yticks(range(k), labels=labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    top = max((max(row) for row in matrix), default=0)
    for i in range(k):
        for j in range(k):
            value = matrix[i][j]
            ax.text(j, i, str(value), ha="center", va="center", fontsize=8,
                    color="white" if value > top / 2 else "black")
    ax.set_title("confusion matrix (test)")
    return to_data_uri(fig)


def bar_plot(names: Sequence[str], values: Sequence[float], *, title: str, xlabel: str = "",
             errors: Sequence[float] | None = None, top: int = 20) -> str:
    """Horizontal bars, largest |value| on top (at most ``top`` bars)."""
    order = sorted(range(len(values)), key=lambda i: -abs(values[i]))[:top][::-1]
    fig, ax = plt.subplots(figsize=(6.4, 0.6 + 0.28 * len(order)))
    ax.barh([str(names[i]) for i in order], [values[i] for i in order],
            xerr=[errors[i] for i in order] if errors is not None else None,
            color=["#c0392b" if values[i] < 0 else "#2e86c1" for i in order])
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.grid(alpha=0.3, axis="x")
    return to_data_uri(fig)


def curve_plot(curves: dict[str, dict[str, list[float]]], *, x: str, y: str, title: str,
               diagonal: bool = False) -> str:
    """ROC (``x=fpr, y=tpr``) or PR (``x=recall, y=precision``) curves, one per class."""
    fig, ax = plt.subplots(figsize=(4.8, 4.2))
    for name, points in list(curves.items())[:12]:
        ax.plot(points[x], points[y], label=name, drawstyle="steps-post" if y == "precision" else "default")
    if diagonal:
        ax.plot([0, 1], [0, 1], color="#999", linestyle="--", linewidth=1)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if 1 < len(curves) <= 12:
        ax.legend(fontsize=7)
    return to_data_uri(fig)


def reliability_plot(bins: dict[str, list[float]], *, ece: float | None) -> str:
    """Reliability diagram: accuracy per confidence bin against the diagonal, bin counts below."""
    fig, (ax, ax_count) = plt.subplots(2, 1, figsize=(4.8, 5.0), height_ratios=[3, 1], sharex=True)
    width = bins["upper"][0] - bins["lower"][0]
    used = [i for i, c in enumerate(bins["count"]) if c > 0]
    ax.bar([bins["lower"][i] for i in used], [bins["accuracy"][i] for i in used], width=width, align="edge",
           color="#2e86c1", edgecolor="white", label="accuracy")
    ax.plot([0, 1], [0, 1], color="#999", linestyle="--", linewidth=1, label="perfect calibration")
    ax.plot([bins["confidence"][i] for i in used], [bins["accuracy"][i] for i in used], "o", color="#c0392b",
            markersize=3, label="mean confidence")
    ax.set_ylabel("accuracy")
    ax.set_title("reliability" + (f" (ECE {ece:.3f})" if ece is not None else ""))
    ax.legend(fontsize=7)
    ax_count.bar(bins["lower"], bins["count"], width=width, align="edge", color="#888")
    ax_count.set_xlabel("confidence")
    ax_count.set_ylabel("rows")
    return to_data_uri(fig)


def image_plot(pixels: Sequence[Sequence[Sequence[float]]] | Sequence[Sequence[float]], *, title: str = "",
               overlay: Sequence[Sequence[float]] | None = None, size: float = 1.6) -> str:
    """One (C, H, W) or (H, W) image, optionally with a signed heat map drawn over it."""
    import numpy as np

    arr = np.asarray(pixels, dtype=float)
    if arr.ndim == 3:
        arr = arr[0] if arr.shape[0] == 1 else np.moveaxis(arr, 0, -1)
        if arr.ndim == 3:
            arr = (arr - arr.min()) / max(float(arr.max() - arr.min()), 1e-12)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(arr, cmap="gray" if arr.ndim == 2 else None)
    if overlay is not None:
        heat = np.asarray(overlay, dtype=float)
        bound = max(float(np.abs(heat).max()), 1e-12)
        ax.imshow(heat, cmap="bwr", vmin=-bound, vmax=bound, alpha=0.55)
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=7)
    return to_data_uri(fig)


def heatmap_plot(values: Sequence[Sequence[float]], *, title: str) -> str:
    """A single-channel map with a colour bar (mean |attribution| per pixel)."""
    fig, ax = plt.subplots(figsize=(3.2, 2.8))
    shown = ax.imshow(values, cmap="magma")
    fig.colorbar(shown, ax=ax, fraction=0.046)
    ax.set_axis_off()
    ax.set_title(title, fontsize=9)
    return to_data_uri(fig)


def slice_plot(rows: Sequence[dict[str, object]], metric: str, overall: float | None, *, title: str) -> str:
    """One bar per slice value of ``metric``, with the overall value as a line."""
    labels = [f"{r['value']} (n={r['rows']})" for r in rows][:25]
    values = [float(r["metrics"][metric]) if r["metrics"].get(metric) is not None else math.nan  # type: ignore[index, union-attr, attr-defined]
              for r in rows][:25]
    fig, ax = plt.subplots(figsize=(6.4, 0.7 + 0.3 * len(labels)))
    ax.barh(labels[::-1], values[::-1], color="#2e86c1")
    if overall is not None:
        ax.axvline(overall, color="#c0392b", linestyle="--", label=f"overall {overall:.3f}")
        ax.legend(fontsize=7)
    ax.set_xlabel(metric)
    ax.set_title(title)
    ax.grid(alpha=0.3, axis="x")
    return to_data_uri(fig)

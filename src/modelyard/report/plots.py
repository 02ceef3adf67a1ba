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

"""The data-quality section of the HTML report, from a dataset's ``quality.json``.

    fragment = data_quality_section(quality)        # an HTML <section>, self-contained
    page = data_quality_page(quality, title="…")    # a whole page (``yard data report --html``)

Charts are matplotlib figures embedded as PNG ``data:`` URIs (like the rest of the HTML
report), so the page is one self-contained file that opens offline. It reads only the JSON
the data stage wrote; every value is escaped.
"""

from __future__ import annotations

import html
import itertools
import json
from typing import Any

_CSS = """
.dq table{border-collapse:collapse;margin:.5rem 0;font-size:.9rem} .dq td,.dq th{border:1px solid #ddd;
padding:.25rem .5rem;text-align:left;vertical-align:top} .dq th{background:#f5f5f5} .dq .flag{color:#a40}
.dq figure{margin:.3rem 0} .dq img{max-width:100%} .dq h3{margin-top:1.2rem} .dq .muted{color:#666}
"""
_MAX_ROWS = 30


def _e(value: Any) -> str:
    if isinstance(value, float):
        value = f"{value:.4g}"
    elif isinstance(value, dict | list):
        value = json.dumps(value, default=str, ensure_ascii=False)
    return html.escape(str(value))


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows[:_MAX_ROWS])
    more = f"<p class='muted'>… {len(rows) - _MAX_ROWS} more</p>" if len(rows) > _MAX_ROWS else ""
    return f"<table><tr>{head}</tr>{body}</table>{more}"


def bar_chart(labels: list[str], values: list[float], *, title: str, series: dict[str, list[float]] | None = None,
              ) -> str:
    """A horizontal bar chart (matplotlib, embedded as a PNG ``data:`` URI) with its title as caption.

    Args:
        labels: one label per bar (per group of bars with ``series``).
        values: one value per label (ignored with ``series``).
        title: the chart's title, also its ``alt`` text.
        series: several named value lists drawn side by side per label (e.g. train / valid / test).
    """
    groups = series or {"": values}
    if not labels or not any(groups.values()):
        return ""
    from modelyard.report.plots import plt, to_data_uri  # matplotlib only when a chart is drawn

    fig, ax = plt.subplots(figsize=(6.4, 0.6 + 0.28 * len(labels) * max(1, len(groups) * 0.6)))
    height = 0.8 / len(groups)
    positions = list(range(len(labels)))
    for k, (name, numbers) in enumerate(groups.items()):
        offsets = [p + (k - (len(groups) - 1) / 2) * height for p in positions]
        bars = ax.barh(offsets, numbers, height=height, label=name or None)
        ax.bar_label(bars, labels=[f"{v:.4g}" for v in numbers], fontsize=7, padding=2)
    ax.set_yticks(positions, labels=[str(label)[:28] for label in labels], fontsize=8)
    ax.invert_yaxis()
    ax.set_title(title, fontsize=10)
    ax.margins(x=0.12)
    ax.grid(axis="x", alpha=0.3)
    if series:
        ax.legend(fontsize=7)
    return (f"<figure><img src='{to_data_uri(fig)}' alt='{_e(title)}'>"
            f"<figcaption class='muted'>{_e(title)}</figcaption></figure>")


def _steps(quality: dict[str, Any]) -> str:
    steps = quality.get("steps", [])
    rows = [[s["step"], s["rows_in"], s["rows_out"], s["rows_in"] - s["rows_out"],
             ", ".join(f"{k}: {v}" for k, v in s.get("counts", {}).items())] for s in steps]
    chart = bar_chart([s["step"] for s in steps], [float(s["rows_out"]) for s in steps], title="rows after each step")
    return "<h3>Rows per step</h3>" + _table(["step", "rows in", "rows out", "removed", "counts"], rows) + chart


def _columns(quality: dict[str, Any]) -> str:
    columns = quality.get("columns", [])
    if not columns:
        return ""
    rows = []
    for c in columns:
        flags = ", ".join(f for f in ("constant", "id_like", "all_missing") if c.get(f))
        detail = (f"{c['min']:.4g} … {c['max']:.4g}, mean {c['mean']:.4g}, std {c['std']:.4g}" if "min" in c
                  else ", ".join(f"{v} ({n})" for v, n in c.get("top", [])[:5]) if "top" in c
                  else f"mean length {c.get('length_mean')}" if "length_mean" in c else "")
        rows.append([c["column"], c["kind"], c["count"], f"{c['missing_pct']:.2f}%", c["distinct"], flags, detail])
    out = "<h3>Columns</h3>" + _table(["column", "kind", "rows", "missing", "distinct", "flags", "range / top values"],
                                      rows)
    gaps = [c for c in columns if c.get("missing")]
    out += bar_chart([c["column"] for c in gaps], [float(c["missing_pct"]) for c in gaps],
                     title="missing values per column (%)")
    for c in columns:
        hist = c.get("length_histogram")
        if hist:
            bins = hist["bins"]
            labels = [f"{lo}–{hi - 1}" for lo, hi in itertools.pairwise(bins)] + [f"≥{bins[-1]}"]
            out += bar_chart(labels, [float(v) for v in hist["counts"]], title=f"text length of {c['column']} (chars)")
    return out


def _balance(quality: dict[str, Any]) -> str:
    balance = quality.get("class_balance")
    if not balance:
        return ""
    splits = {name: balance["splits"][name] for name in ("train", "valid", "test") if name in balance["splits"]}
    names = balance["label_names"]
    rows = [[name, *[splits[s]["counts"].get(name, 0) for s in splits], w]
            for name, w in zip(names, balance["balanced_class_weights"])]
    train = splits.get("train", {})
    chart = bar_chart(names, [], title="rows per class and split",
                      series={s: [float(splits[s]["counts"].get(n, 0)) for n in names] for s in splits})
    return ("<h3>Class balance</h3>" + _table(["class", *splits, "balanced weight"], rows)
            + f"<p>imbalance ratio (train, largest / smallest class): <b>{_e(train.get('imbalance_ratio'))}</b></p>"
            + chart)


def _step_detail(quality: dict[str, Any], name: str, title: str) -> str:
    step = next((s for s in quality.get("steps", []) if s["step"] == name), None)
    if step is None:
        return ""
    out = f"<h3>{_e(title)}</h3>"
    if step.get("skipped"):
        out += f"<p class='flag'>skipped: {_e(step['skipped'])}</p>"
    counts = step.get("counts", {})
    if counts:
        out += _table(["count", "value"], [[k, v] for k, v in counts.items()])
    else:
        out += "<p class='muted'>none found</p>"
    extra = {k: v for k, v in step.items()
             if k not in ("step", "rows_in", "rows_out", "counts", "examples", "flagged_rows", "conflicts", "skipped")}
    if extra:
        out += _table(["setting", "value"], [[k, v] for k, v in extra.items()])
    if step.get("conflicts"):
        out += "<p>Conflicting duplicates (same input, different labels):</p>" + _table(
            ["rows", "labels"], [[", ".join(c["rows"]), ", ".join(c["labels"])] for c in step["conflicts"]])
    if step.get("examples"):
        keys = sorted({k for e in step["examples"] for k in e})
        out += _table(keys, [[e.get(k, "") for k in keys] for e in step["examples"]])
    if step.get("flagged_rows"):
        keys = [k for k in ("row", "given", "suggested", "given_probability", "text")
                if any(k in e for e in step["flagged_rows"])]
        out += _table(keys, [[e.get(k, "") for k in keys] for e in step["flagged_rows"]])
    return out


def _pii(quality: dict[str, Any]) -> str:
    step = next((s for s in quality.get("steps", []) if s["step"] == "pii"), None)
    if step is None:
        return ""
    by_type = {k.split("/", 1)[1]: v for k, v in step.get("counts", {}).items() if k.startswith("found/")}
    chart = bar_chart(list(by_type), [float(v) for v in by_type.values()], title="personal data found, by type")
    return _step_detail(quality, "pii", "Personal data (PII)") + chart


def _images(quality: dict[str, Any]) -> str:
    read: dict[str, Any] = next((s for s in quality.get("steps", []) if s["step"] == "read"), {})
    sizes = read.get("image_sizes")
    if not sizes:
        return ""
    return "<h3>Image sizes (before resizing)</h3>" + bar_chart(list(sizes), [float(v) for v in sizes.values()],
                                                                  title="images per size (width×height)")


def data_quality_section(quality: dict[str, Any]) -> str:
    """The data-quality report of one prepared dataset as an HTML ``<section>``."""
    if not quality:
        return "<section class='dq'><h2>Data quality</h2><p class='muted'>no quality record</p></section>"
    parts = [_steps(quality), _columns(quality), _balance(quality),
             _step_detail(quality, "validate", "Schema validation"),
             _step_detail(quality, "clean", "Cleaning"),
             _step_detail(quality, "duplicates", "Duplicates"),
             _step_detail(quality, "near_duplicates", "Near-duplicates"),
             _step_detail(quality, "leakage", "Leakage between splits"),
             _pii(quality),
             _step_detail(quality, "label_issues", "Likely label errors"),
             _step_detail(quality, "outliers", "Outliers (train split)"),
             _step_detail(quality, "balance", "Resampling (train split)"),
             _step_detail(quality, "augment", "Augmentation (train split)"),
             _images(quality)]
    return f"<section class='dq'><style>{_CSS}</style><h2>Data quality</h2>" + "".join(parts) + "</section>"


def data_quality_page(quality: dict[str, Any], *, title: str) -> str:
    """A self-contained HTML page holding :func:`data_quality_section`."""
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{_e(title)}</title></head>"
            "<body style='font-family:system-ui,sans-serif;margin:2rem auto;max-width:1000px'>"
            f"<h1>{_e(title)}</h1>{data_quality_section(quality)}</body></html>")

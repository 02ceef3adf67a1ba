"""The evaluation section of the run report: built from ``evaluation.json`` only (no torch)."""

from __future__ import annotations

import html
from typing import Any

from modelyard.report.markup import Markup, esc, grid, img, section
from modelyard.report.plots import confusion_plot, curve_plot, image_plot, line_plot, reliability_plot, slice_plot


def _interval(report: dict[str, Any], name: str) -> str:
    interval = (report.get("intervals") or {}).get(name)
    if not interval:
        return "—"
    return f"[{interval['low']:.4f}, {interval['high']:.4f}]"


def metrics_table(report: dict[str, Any]) -> str:
    """Metric, value, confidence interval, and the reason when undefined."""
    undefined = report.get("undefined") or {}
    first: dict[str, Any] = next(iter((report.get("intervals") or {}).values()), {})
    confidence = first.get("confidence", 0.95)
    rows = [(name, value, _interval(report, name), undefined.get(name, ""))
            for name, value in (report.get("metrics") or {}).items()]
    return grid(["metric", "value", f"{confidence:.0%} CI (bootstrap)", "note"], rows)


def _per_class(report: dict[str, Any]) -> str:
    pc = report.get("per_class")
    if not pc:
        return ""
    rows = [(label, pc["precision"][i], pc["recall"][i], pc["f1"][i], int(pc["support"][i]))
            for i, label in enumerate(report.get("labels", []))]
    return "<h3>Per class</h3>" + grid(["class", "precision", "recall", "F1", "support"], rows)


def _examples(report: dict[str, Any]) -> str:
    examples = report.get("worst_examples") or []
    if not examples:
        return ""
    image = report.get("modality") == "image"
    rows = []
    for e in examples:
        shown: Any = Markup(img(image_plot(e["input"], size=1.0), f"row {e['row']}")) if image else e["input"]
        rows.append((e["row"], shown, e["label"], e["prediction"], e.get("confidence"), e["loss"]))
    return ("<h3>Worst examples</h3><p class='muted'>highest loss first (negative log-likelihood of the true "
            "class, or absolute error)</p>"
            + grid(["row", "input", "label", "prediction", "confidence", "loss"], rows, raw=True))


def _slices(report: dict[str, Any]) -> str:
    parts = []
    for sl in report.get("slices") or []:
        metric = sl["metrics"][0]
        rows = [(r["value"], r["rows"], *[r["metrics"][m] for m in sl["metrics"]],
                 *[r["gap"][m] for m in sl["metrics"]]) for r in sl["rows"]]
        parts.append(f"<h3>Slice: {html.escape(sl['how'])}</h3>"
                     + img(slice_plot(sl["rows"], metric, sl["overall"].get(metric), title=f"{metric} by {sl['name']}"),
                           f"{metric} by {sl['name']}")
                     + grid(["value", "rows", *sl["metrics"], *[f"gap {m}" for m in sl["metrics"]]], rows))
    fairness = report.get("fairness")
    if fairness:
        rows = [(g["group"], g["rows"], g["positive_rate"], g["true_positive_rate"]) for g in fairness["groups"]]
        parts.append(f"<h3>Fairness across {html.escape(fairness['group'])} (positive: "
                     f"{html.escape(fairness['positive'])})</h3>"
                     f"<p>demographic parity difference <b>{esc(fairness['demographic_parity_difference'])}</b>, "
                     f"equal opportunity difference <b>{esc(fairness['equal_opportunity_difference'])}</b></p>"
                     + grid(["group", "rows", "positive rate", "true positive rate"], rows))
    return "".join(parts)


def _comparison(report: dict[str, Any]) -> str:
    comp = report.get("comparison")
    if not comp:
        return ""
    rows = [(name, c.get("candidate"), c.get("baseline"), c.get("delta"),
             f"[{c['low']:.4f}, {c['high']:.4f}]" if c.get("low") is not None else "—", c.get("p_better"))
            for name, c in comp["metrics"].items()]
    return (f"<h3>Against {html.escape(str(comp['against']))} (paired bootstrap, same rows)</h3>"
            + grid(["metric", "this model", "baseline", "Δ", "Δ interval", "P(better)"], rows))


def evaluation_section(report: dict[str, Any]) -> str:
    """Metrics with intervals, threshold, confusion matrix, curves, calibration, slices, robustness, errors."""
    parts = [metrics_table(report)]
    if report.get("threshold"):
        t = report["threshold"]
        parts.append(f"<p>decision threshold <b>{t['threshold']:.4f}</b> chosen on the validation split for "
                     f"{html.escape(t['objective'])}{'' if t.get('target') is None else ' ≥ ' + esc(t['target'])} "
                     f"(valid value {t['valid_value']:.4f})</p>")
    parts.append(_per_class(report))
    plots = []
    if "confusion_matrix" in report:
        plots.append(img(confusion_plot(report["confusion_matrix"], report["labels"]), "confusion matrix"))
    curves = report.get("curves") or {}
    if curves.get("roc"):
        plots.append(img(curve_plot(curves["roc"], x="fpr", y="tpr", title="ROC", diagonal=True), "ROC curve"))
    if curves.get("pr"):
        plots.append(img(curve_plot(curves["pr"], x="recall", y="precision", title="precision-recall"),
                         "precision-recall curve"))
    if report.get("calibration"):
        plots.append(img(reliability_plot(report["calibration"], ece=(report.get("metrics") or {}).get("ece")),
                         "reliability diagram"))
    parts.append("<div class='plots'>" + "".join(plots) + "</div>")
    pairs = report.get("confused_pairs") or []
    if pairs:
        parts.append("<h3>Most confused</h3>" + grid(["true", "predicted", "count", "share of true class"],
                                                     [(p["true"], p["predicted"], p["count"], p["share_of_true"])
                                                      for p in pairs]))
    parts.append(_slices(report))
    rob = report.get("robustness")
    if rob:
        points = [(p["level"], p["value"]) for p in rob["points"]]
        parts.append(f"<h3>Robustness ({html.escape(rob['perturbation'])})</h3>"
                     + img(line_plot({rob["metric"]: points}, title=f"{rob['metric']} under {rob['perturbation']}",
                                     xlabel="perturbation level", ylabel=rob["metric"]), "robustness curve"))
    parts.append(_comparison(report))
    parts.append(_examples(report))
    title = f"Evaluation ({report.get('split', '')}, {report.get('rows')} rows)"
    return section(title, "".join(parts), anchor="evaluation")


__all__ = ["evaluation_section", "metrics_table"]

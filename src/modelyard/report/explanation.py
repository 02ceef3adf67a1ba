"""The explanation section of the run report: built from ``explanation.json`` only (no torch)."""

from __future__ import annotations

import html
from typing import Any

from modelyard.report.markup import grid, img, section
from modelyard.report.plots import bar_plot, heatmap_plot, image_plot


def _feature_bars(names: list[str], values: list[float], title: str, xlabel: str,
                  errors: list[float] | None = None) -> str:
    return img(bar_plot(names, values, title=title, xlabel=xlabel, errors=errors), title)


def highlighted_tokens(tokens: list[str], scores: list[float], *, sep: str = " ", title: str = "") -> str:
    """Tokens as HTML spans shaded by attribution (blue: towards the class, red: against).

    Colour strength is |score| relative to the largest |score| of the text; each span's
    tooltip gives the attribution. ``sep`` joins the spans (``""`` when the tokens carry
    their own spacing); ``title`` heads the paragraph. All text is escaped.
    """
    bound = max((abs(s) for s in scores), default=0.0) or 1.0
    spans = []
    for token, score in zip(tokens, scores):
        alpha = min(abs(score) / bound, 1.0) * 0.8
        colour = f"rgba(46,134,193,{alpha:.2f})" if score >= 0 else f"rgba(192,57,43,{alpha:.2f})"
        spans.append(f"<span class='tok' title='{score:+.4f}' style='background:{colour}'>{html.escape(token)}</span>")
    head = f"<b>{html.escape(title)}</b><br>" if title else ""
    return "<p class='tokens' style='white-space:pre-wrap'>" + head + sep.join(spans) + "</p>"


def _token_label(token: str) -> str:
    return token.replace("$", r"\$")  # matplotlib reads $…$ as mathtext


def _text_integrated_gradients(ig: dict[str, Any], tokens: list[dict[str, Any]]) -> str:
    """Top tokens by mean |attribution| (bars) and each chosen text highlighted by its attributions."""
    parts = []
    top = ig.get("global_tokens") or []
    if top:
        names, seen = [], set()
        for t in top:
            name = _token_label(f"{t['token']} (×{t['count']})")
            name = name if name not in seen else f"{name} #{t['id']}"
            seen.add(name)
            names.append(name)
        parts.append(_feature_bars(names, [t["mean_abs"] for t in top],
                                   f"mean |attribution| per token over {ig.get('explained_rows')} texts",
                                   "mean |IG| (occurrences)"))
    parts.append("<p class='muted'>blue: towards the explained output, red: against; hover a token for its "
                 "attribution</p>")
    for t in tokens:
        parts.append(highlighted_tokens(t["tokens"], t["scores"], sep="",
                                        title=f"{t.get('title', '')} · completeness delta {t['delta']:.2e}"))
    return "".join(parts)


def explanation_section(report: dict[str, Any]) -> str:
    """Global summaries and local attributions for the explained examples."""
    parts = [f"<p class='muted'>methods: {html.escape(', '.join(report.get('methods', [])))}; "
             f"{report.get('rows')} {html.escape(report.get('split', ''))} rows</p>"]
    features = report.get("features") or []
    examples = report.get("examples") or []
    perm = report.get("permutation")
    if perm:
        parts.append("<h3>Permutation importance (global)</h3>" + _feature_bars(
            perm["features"], perm["mean"], f"drop in {perm['metric']} when shuffled", perm["metric"], perm["std"]))
    shap = report.get("shap")
    if shap:
        parts.append("<h3>SHAP (GradientExplainer)</h3>" + _feature_bars(
            shap["features"], shap["global_mean_abs"], f"mean |SHAP| over {shap['rows']} rows", "mean |SHAP value|"))
        for example, values in zip(examples, shap["local"]):
            parts.append(_feature_bars(shap["features"], values,
                                       f"row {example['row']}: {example.get('prediction')} (label {example['label']})",
                                       "SHAP value"))
    ig = report.get("integrated_gradients")
    if ig:
        parts.append(f"<h3>Integrated Gradients</h3><p class='muted'>{ig['steps']} steps, baseline "
                     f"{html.escape(str(ig['baseline']))}, explaining the {html.escape(ig['target'])}; "
                     f"completeness delta mean "
                     f"{ig['mean_delta']:.2e}, max {ig['max_delta']:.2e}</p>")
        if report.get("modality") == "text":
            parts.append(_text_integrated_gradients(ig, report.get("tokens") or []))
        elif report.get("modality") == "image":
            parts.append(img(heatmap_plot(ig["global_mean_abs"], title="mean |attribution|"), "mean attribution"))
            tiles = [img(image_plot(e["image"], overlay=a, title=f"row {e['row']}: {e.get('prediction')} "
                                                                  f"(label {e['label']})", size=1.8),
                         f"attribution for row {e['row']}") for e, a in zip(examples, ig["local"])]
            parts.append("<div class='plots'>" + "".join(tiles) + "</div>")
        else:
            parts.append(_feature_bars(features, ig["global_mean_abs"], "mean |attribution|", "mean |IG|"))
            rows = [(e["row"], e.get("prediction"), e["label"], d) for e, d in zip(examples, ig["local_delta"])]
            parts.append(grid(["row", "prediction", "label", "completeness delta"], rows))
    tokens = report.get("tokens")
    if tokens and report.get("modality") != "text":
        parts.append("<h3>Token attributions</h3>" + "".join(highlighted_tokens(t["tokens"], t["scores"])
                                                            for t in tokens))
    return section("Explanation", "".join(parts), anchor="explanation")


__all__ = ["explanation_section", "highlighted_tokens"]

"""``yard evaluate MODEL DATASET [--against NAME@ALIAS]``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from modelyard.cli.output import console, emit_json, json_option, print_table

if TYPE_CHECKING:
    from modelyard.core.refs import ModelRef
    from modelyard.store.project import Store


@click.command("evaluate")
@click.argument("model")
@click.argument("dataset")
@click.option("--metrics", default="", help="Comma-separated metric names (default: the task's).")
@click.option("--split", type=click.Choice(["train", "valid", "test"]), default="test", show_default=True)
@click.option("--against", default=None, help="Compare with NAME@ALIAS (paired bootstrap on the same rows).")
@click.option("--slice", "slices", multiple=True, help="Column to slice the metrics by (repeatable).")
@click.option("--group", default=None, help="Column for fairness gaps (demographic parity, equal opportunity).")
@click.option("--bootstrap", "samples", default=1000, show_default=True, help="Bootstrap resamples (0: none).")
@click.option("--threshold", type=click.Choice(["f1", "youden"]), default=None,
              help="Binary: pick the decision threshold on the validation split.")
@click.option("--no-robustness", is_flag=True, help="Skip the robustness curve.")
@json_option
def evaluate_command(model: str, dataset: str, metrics: str, split: str, against: str | None,
                     slices: tuple[str, ...], group: str | None, samples: int, threshold: str | None,
                     no_robustness: bool, as_json: bool) -> None:
    """Score MODEL (NAME@ALIAS, NAME@vN or an artifact id) on DATASET (an artifact id)."""
    from modelyard import evaluate as evaluate_stage
    from modelyard.config.evaluate import EvaluateConfig
    from modelyard.core.refs import DatasetRef
    from modelyard.report import render_run_report
    from modelyard.store import open_store
    from modelyard.store.context import stage_run

    settings: dict[str, Any] = {
        "metrics": [m.strip() for m in metrics.split(",") if m.strip()],
        "bootstrap": {"samples": samples}, "slices": [{"column": c} for c in slices],
        "robustness": None if no_robustness else {},
    }
    if group:
        settings["fairness"] = {"group": group}
    if threshold:
        settings["threshold"] = {"objective": threshold}
    cfg = EvaluateConfig.model_validate(settings)
    with open_store() as store:
        model_ref = resolve_model(store, model)
        against_ref = resolve_model(store, against) if against else None
        data_ref = DatasetRef(id=store.artifacts.resolve_prefix(dataset).id)
        with stage_run(store, kind="evaluate", name=model, config=cfg.model_dump()) as ctx:
            report_ref = evaluate_stage.run(cfg, model_ref, data_ref, ctx=ctx, split=split, against=against_ref,
                                            against_name=against)
        report = evaluate_stage.read_report(store, report_ref)
        path = render_run_report(store, ctx.run_id)
    if as_json:
        emit_json({"run": ctx.run_id, "report": report_ref.id, "html": str(path), **report})
        return
    intervals = report.get("intervals", {})
    rows = [(name, "undefined: " + report["undefined"][name] if value is None else f"{value:.4f}",
             f"[{intervals[name]['low']:.4f}, {intervals[name]['high']:.4f}]" if name in intervals else "")
            for name, value in report["metrics"].items()]
    print_table(f"evaluation ({split}, {report['rows']} rows)", ["metric", "value", "95% CI"], rows)
    if "comparison" in report:
        comp = report["comparison"]["metrics"]
        print_table(f"against {against}", ["metric", "Δ", "interval", "P(better)"],
                    [(n, f"{c['delta']:.4f}" if c.get("delta") is not None else "—",
                      f"[{c['low']:.4f}, {c['high']:.4f}]" if c.get("low") is not None else "",
                      f"{c['p_better']:.3f}" if c.get("p_better") is not None else "") for n, c in comp.items()])
    console.print(f"report: {path}")


def resolve_model(store: Store, text: str) -> ModelRef:
    """A registry reference (``name@alias``) or an artifact id prefix → ModelRef."""
    from modelyard.core.refs import ModelRef

    if "@" in text or not all(c in "0123456789abcdef" for c in text.lower()) or len(text) < 6:
        return store.models.resolve(text).ref
    return ModelRef(id=store.artifacts.resolve_prefix(text).id)


COMMANDS = [evaluate_command]

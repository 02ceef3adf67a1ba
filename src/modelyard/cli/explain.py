"""``yard explain MODEL DATASET``."""

from __future__ import annotations

import click

from modelyard.cli.output import console, emit_json, json_option


@click.command("explain")
@click.argument("model")
@click.argument("dataset")
@click.option("--method", "methods", multiple=True,
              type=click.Choice(["auto", "integrated-gradients", "saliency", "permutation", "shap"]),
              help="Attribution method (repeatable; default: auto for the data's modality).")
@click.option("--examples", default=6, show_default=True, help="Test examples given local explanations.")
@click.option("--split", type=click.Choice(["train", "valid", "test"]), default="test", show_default=True)
@json_option
def explain_command(model: str, dataset: str, methods: tuple[str, ...], examples: int, split: str,
                    as_json: bool) -> None:
    """Attributions for MODEL (NAME@ALIAS, NAME@vN or an artifact id) on DATASET (an artifact id)."""
    from modelyard import explain as explain_stage
    from modelyard.cli.evaluate import resolve_model
    from modelyard.config.explain import ExplainConfig
    from modelyard.core.refs import DatasetRef
    from modelyard.report import render_run_report
    from modelyard.store import open_store
    from modelyard.store.context import stage_run

    cfg = ExplainConfig(methods=list(methods) or ["auto"], examples=examples)  # type: ignore[arg-type]
    with open_store() as store:
        model_ref = resolve_model(store, model)
        data_ref = DatasetRef(id=store.artifacts.resolve_prefix(dataset).id)
        with stage_run(store, kind="explain", name=model, config=cfg.model_dump()) as ctx:
            ref = explain_stage.run(cfg, model_ref, data_ref, ctx=ctx, split=split)
        result = explain_stage.read_explanation(store, ref)
        path = render_run_report(store, ctx.run_id)
    if as_json:
        emit_json({"run": ctx.run_id, "report": ref.id, "html": str(path), **result})
        return
    console.print(f"explained {result['rows']} rows with {', '.join(result['methods'])}")
    for key, title in (("permutation", "permutation importance"), ("shap", "mean |SHAP|")):
        block = result.get(key)
        if block:
            values = block["mean"] if key == "permutation" else block["global_mean_abs"]
            top = sorted(zip(block["features"], values), key=lambda p: -abs(p[1]))[:5]
            console.print(f"{title}: " + ", ".join(f"{name} {value:.4f}" for name, value in top))
    if "integrated_gradients" in result:
        console.print(f"integrated gradients: max completeness delta {result['integrated_gradients']['max_delta']:.2e}")
    console.print(f"report: {path}")


COMMANDS = [explain_command]

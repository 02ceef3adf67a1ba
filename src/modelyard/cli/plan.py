"""``yard plan``: predicted memory, FLOPs, time and cost of a recipe, before it trains."""

from __future__ import annotations

from pathlib import Path

import click

from modelyard.cli.options import load, overrides_argument, recipe_argument
from modelyard.cli.output import emit_json, json_option, print_table


@click.command("plan")
@recipe_argument
@overrides_argument
@click.option("--memory", default=None, metavar="SIZE",
              help="Memory budget, e.g. 8GB or 512MB (default: this machine's available memory).")
@click.option("--dataset", "dataset_id", default=None, help="Plan on this prepared dataset id instead of preparing.")
@click.option("--steps", default=5, show_default=True, type=click.IntRange(1, 1000),
              help="Real training steps timed in the calibration.")
@click.option("--no-calibrate", is_flag=True, help="Skip the real steps: analytic time only, faster.")
@json_option
def plan_command(recipe: Path, overrides: tuple[str, ...], memory: str | None, dataset_id: str | None, steps: int,
                 no_calibrate: bool, as_json: bool) -> None:
    """Predict parameters, memory (weights, gradients, optimizer, activations), FLOPs and time of RECIPE.

    Also recommends a batch size, gradient accumulation and precision for the memory budget.
    The plan is stored as a run of kind `plan`; a later `yard train`/`yard run` of the same
    recipe stores its measurements beside these predictions.
    """
    from modelyard import data as data_stage
    from modelyard import plan as plan_stage
    from modelyard.config.loader import recipe_to_dict
    from modelyard.core.refs import DatasetRef
    from modelyard.data.artifact import open_dataset
    from modelyard.plan.memory import parse_bytes
    from modelyard.plan.record import plan_summary
    from modelyard.store import open_store
    from modelyard.store.context import stage_run

    loaded = load(recipe, overrides)
    budget = parse_bytes(memory) if memory is not None else None
    config = recipe_to_dict(loaded)
    with open_store() as store:
        if dataset_id:
            dataset_ref = DatasetRef(id=store.artifacts.resolve_prefix(dataset_id).id)
        else:
            with stage_run(store, kind="data", name=loaded.name, config=config["data"], seed=loaded.seed) as ctx:
                dataset_ref = data_stage.run(loaded, ctx=ctx)
        with stage_run(store, kind="plan", name=loaded.name, config=config, seed=loaded.seed) as ctx:
            store.artifacts.link_input(ctx.run_id, dataset_ref)
            result = plan_stage.make_plan(loaded, open_dataset(store, dataset_ref), budget=budget,
                                          calibrate=not no_calibrate, steps=steps)
            details = {k: v for k, v in result.to_dict().items() if k != "calibration"}
            store.runs.set_summary(ctx.run_id, {**details, **plan_summary(result.predictions(),
                                                                          dataset_id=dataset_ref.id, config=config)})
    if as_json:
        emit_json({"run": ctx.run_id, **result.to_dict()})
        return
    mem = result.memory_mb
    step = (f"{result.step_seconds * 1000:.1f} ms (best of {steps} real steps; other load on this machine adds to it)"
            if result.step_seconds else "—")
    epoch = f"{result.epoch_seconds:.1f} s · {result.train_seconds:.0f} s for {loaded.train.epochs} epochs" \
        if result.epoch_seconds is not None else "—"
    rows = [
        ("model", f"{result.model} · {result.parameters:,} parameters ({result.trainable:,} trainable)"),
        ("device", f"{result.device} · budget {result.budget_mb:,.0f} MB"),
        ("batch", f"{result.batch_size} = {result.micro_batch} × {result.grad_accumulation} accumulation"),
        ("precision", f"{result.precision} ({result.precision_reason})"),
        ("memory (MB)", f"{mem['total']:,.1f} peak = {mem['baseline']:,.1f} process+data + {mem['runtime']:,.1f} "
                        f"runtime + {mem['weights']:,.1f} "
                        f"weights + {mem['gradients']:,.1f} grads + {mem['optimizer']:,.1f} optimizer + "
                        f"{mem['best_copy']:,.1f} best copy + {mem['activations']:,.1f} activations"),
        ("FLOPs / step", f"{result.flops_per_step:.3g} (forward + backward) · analytic "
                         f"{result.analytic_step_seconds * 1000:.3g} ms at the measured matmul rate"),
        ("step time", step),
        ("epoch time", epoch),
        *[("recommend", text) for text in result.recommendations],
        ("run", ctx.run_id),
    ]
    print_table(f"yard plan · {loaded.name}", ["", ""], rows)


COMMANDS = [plan_command]

"""``yard train``: data + train stages of a recipe (no evaluation or registration)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from modelyard.cli.options import load, overrides_argument, recipe_argument
from modelyard.cli.output import print_table


def distributed_options(command: Any) -> Any:
    """``--nproc``, ``--nnodes``, ``--rdzv-endpoint``, ``--rdzv-timeout``: launch training under torchrun."""
    for option in reversed([
        click.option("--nproc", default=1, show_default=True, type=int,
                     help="Training processes on this machine (DDP under torchrun; gloo on CPU, NCCL on CUDA)."),
        click.option("--nnodes", default=1, show_default=True, type=int,
                     help="Machines taking part; each runs the same command (see docs/distributed.md)."),
        click.option("--rdzv-endpoint", default=None, metavar="HOST:PORT",
                     help="torchrun rendezvous on one of the nodes (needed with --nnodes > 1)."),
        click.option("--rdzv-timeout", default=60.0, show_default=True, type=float,
                     help="Seconds to wait for the rendezvous endpoint and the other nodes."),
        click.option("--memory", default=None, metavar="SIZE",
                     help="Memory budget for train.batch_size auto, e.g. 8GB (default: available memory)."),
    ]):
        command = option(command)
    return command


def launch_options(nproc: int, nnodes: int, rdzv_endpoint: str | None, rdzv_timeout: float) -> Any:
    """The checked torchrun options, or None for a plain in-process run."""
    from modelyard.train.distributed import LaunchOptions

    options = LaunchOptions(nproc=nproc, nnodes=nnodes, rdzv_endpoint=rdzv_endpoint, rdzv_timeout_s=rdzv_timeout)
    options = options.checked()
    if options.rdzv_endpoint and options.nnodes > 1:
        from modelyard.train.distributed import probe_endpoint

        probe_endpoint(options.rdzv_endpoint, options.rdzv_timeout_s)  # fail before preparing any data
    return options if (nproc > 1 or nnodes > 1) else None


@click.command("train")
@recipe_argument
@overrides_argument
@click.option("--dataset", "dataset_id", default=None, help="Train on this prepared dataset id instead of preparing.")
@click.option("--resume", "resume", default=None, metavar="RUN|last",
              help="Continue a killed or failed train run from its newest checkpoint, exactly "
                   "('last': the newest unfinished train run of this recipe).")
@distributed_options
def train_command(recipe: Path, overrides: tuple[str, ...], dataset_id: str | None, resume: str | None, nproc: int,
                  nnodes: int, rdzv_endpoint: str | None, rdzv_timeout: float, memory: str | None) -> None:
    """Prepare the data (or take --dataset) and train the recipe's model (or --resume a run).

    With --nproc N (and --nnodes M --rdzv-endpoint HOST:PORT) the same recipe trains with
    DistributedDataParallel under torchrun; only rank 0 writes to the store.
    """
    from modelyard import data as data_stage
    from modelyard import train as train_stage
    from modelyard.config.loader import recipe_to_dict
    from modelyard.core.refs import DatasetRef
    from modelyard.plan import compare_with_plan, resolve_for_training
    from modelyard.plan.memory import parse_bytes
    from modelyard.store import open_store
    from modelyard.store.context import RichProgress, stage_run

    loaded = load(recipe, overrides)
    options = launch_options(nproc, nnodes, rdzv_endpoint, rdzv_timeout)
    budget = parse_bytes(memory) if memory is not None else None
    with open_store() as store:
        if dataset_id:
            dataset = DatasetRef(id=store.artifacts.resolve_prefix(dataset_id).id)
        else:
            with stage_run(store, kind="data", name=loaded.name, config=recipe_to_dict(loaded)["data"],
                           seed=loaded.seed) as ctx:
                dataset = data_stage.run(loaded, ctx=ctx)
        loaded = resolve_for_training(loaded, dataset, store, budget=budget, nproc=nproc)  # batch_size: auto
        config = recipe_to_dict(loaded)
        with stage_run(store, kind="train", name=loaded.name, config=config, progress=RichProgress(),
                       seed=loaded.seed) as ctx:
            if options is not None:
                from modelyard.train.distributed import run_distributed

                model = run_distributed(loaded, dataset, ctx=ctx, options=options, resume=resume)
            else:
                model = train_stage.run(loaded, dataset, ctx=ctx, resume=resume)
        compare_with_plan(store, ctx.run_id)  # a plan of this recipe: predictions beside measurements
        summary = store.runs.get(ctx.run_id)["summary"]
    print_table("trained", ["", ""], [("run", ctx.run_id), ("dataset", dataset.id), ("model", model.id),
                                      *summary.items()])


COMMANDS = [train_command]

"""Loop overhead: modelyard's ``train.loop.fit`` vs a hand-written minimal PyTorch loop.

Same ``transformer-encoder``, same data (random token ids, all positions valid), same batch
size, AdamW + cosine schedule + gradient clipping in both. ``fit`` runs with everything it
does by default: NaN guard (one host sync a step), metrics to a real SQLite store every 10
steps, resource monitoring and the one-off FLOP count; no validation split and no
checkpoints (both would be extra work the minimal loop does not do). The two loops
alternate, ``--repeats`` times each, and the JSON line holds the median wall times and
their ratio (``ours / minimal``: the issue's goal is <= 1.03).

    python benchmarks/train_overhead.py           # d_model 256, 4 layers, seq 128, batch 32, 20 steps
    python benchmarks/train_overhead.py --small   # CI: a tiny encoder, seconds
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from modelyard.config.train import OptimizerConfig, ScheduleConfig
from modelyard.plugins import MODELS, load_builtins
from modelyard.store import open_store
from modelyard.store.context import stage_run
from modelyard.train.loop import LoopSettings, TensorData, fit
from modelyard.train.objectives import build_objective
from modelyard.train.optim import build_optimizer, build_schedule


def build(args: argparse.Namespace, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return MODELS.get("transformer-encoder")(vocab_size=args.vocab, max_length=args.seq, num_outputs=4,
                                             d_model=args.d_model, layers=args.layers, heads=args.heads, dropout=0.1)


def minimal_loop(model: torch.nn.Module, data: TensorData, args: argparse.Namespace) -> float:
    """The baseline: what one would write by hand."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    total = args.steps
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 0.5 * (1 + torch.cos(
        torch.tensor(torch.pi * s / total)).item()))
    ids, mask = data.inputs
    start = time.perf_counter()
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(0))
    for step in range(total):
        index = order[step * args.batch:(step + 1) * args.batch]
        out = model(ids[index], mask[index])
        loss = F.cross_entropy(out, data.targets[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        loss.item()
    return time.perf_counter() - start


def modelyard_loop(model: torch.nn.Module, data: TensorData, args: argparse.Namespace, store: object) -> float:
    optimizer = build_optimizer(model, OptimizerConfig(name="adamw", lr=1e-4))
    settings = LoopSettings(epochs=1, batch_size=args.batch, grad_clip=1.0, log_every_steps=10, seed=0,
                            task="classification")
    empty = TensorData((data.inputs[0][:0], data.inputs[1][:0]), data.targets[:0], mask_index=1)
    start = time.perf_counter()
    with stage_run(store, kind="train", name="bench", config={}) as ctx:  # type: ignore[arg-type]
        fit(model, train=data, valid=empty, objective=build_objective("classification"), optimizer=optimizer,
            make_schedule=lambda t, e: build_schedule(optimizer, ScheduleConfig(name="cosine"), t, e),
            settings=settings, ctx=ctx, device=torch.device("cpu"))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="tiny sizes for CI")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    if args.small:
        args.d_model, args.layers, args.heads, args.seq, args.batch, args.steps, args.vocab = 64, 2, 4, 32, 16, 10, 500
        args.repeats = min(args.repeats, 3)
    else:
        sizes = 256, 4, 4, 128, 32, 20, 8000
        args.d_model, args.layers, args.heads, args.seq, args.batch, args.steps, args.vocab = sizes
    torch.set_num_threads(2)
    load_builtins()
    n = args.batch * args.steps
    g = torch.Generator().manual_seed(0)
    data = TensorData((torch.randint(0, args.vocab, (n, args.seq), generator=g),
                       torch.ones(n, args.seq, dtype=torch.long)), torch.randint(0, 4, (n,), generator=g),
                      mask_index=1)
    ours, minimal = [], []
    with tempfile.TemporaryDirectory() as tmp, open_store(Path(tmp) / "store") as store:
        modelyard_loop(build(args, 0), data, args, store)  # warm-up: first-call costs, peak measurement
        minimal_loop(build(args, 0), data, args)
        for _ in range(args.repeats):
            minimal.append(minimal_loop(build(args, 0), data, args))
            ours.append(modelyard_loop(build(args, 0), data, args, store))
    result = {"benchmark": "train_overhead", "small": args.small, "steps": args.steps, "batch": args.batch,
              "seq": args.seq, "d_model": args.d_model, "layers": args.layers,
              "minimal_s": round(statistics.median(minimal), 4), "modelyard_s": round(statistics.median(ours), 4),
              "ratio_modelyard_over_minimal": round(statistics.median(ours) / statistics.median(minimal), 4),
              "threads": torch.get_num_threads()}
    print(json.dumps(result))


if __name__ == "__main__":
    main()

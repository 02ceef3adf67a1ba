"""Measurements on this machine: matmul FLOP/s per precision, and a few real training steps.

Step times are the best of N steps: on a shared machine other processes only ever add time,
so the minimum is the step's own cost (the median is recorded too). The step calibration
runs in a fresh subprocess (``python -m modelyard.plan.calibrate JOB``)
so that its resident-memory baseline — interpreter, torch, modelyard, the store and the
dataset arrays, before any model exists — is what a ``yard train`` process has too, and so
that nothing the planning process imported or allocated is counted.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time
from typing import Any

import psutil
import torch

from modelyard.core.errors import TrainingError


def matmul_flops(dtypes: dict[str, torch.dtype], device: torch.device, *, size: int = 1024,
                 repeats: int = 7) -> dict[str, float]:
    """Median FLOP/s of a ``size``² matmul per dtype on ``device``.

    The dtypes are timed in alternation (after one warm-up each), so a machine whose load
    drifts during the measurement shifts all of them alike.
    """
    pairs = {name: (torch.randn(size, size, device=device).to(dtype), torch.randn(size, size, device=device).to(dtype))
             for name, dtype in dtypes.items()}
    times: dict[str, list[float]] = {name: [] for name in dtypes}
    for i in range(repeats + 1):
        for name, (a, b) in pairs.items():
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            (a @ b).sum().item()
            if device.type == "cuda":
                torch.cuda.synchronize()
            if i:
                times[name].append(time.perf_counter() - t0)
    return {name: 2 * size**3 / statistics.median(values) for name, values in times.items()}


def run_calibration(job: dict[str, Any], *, timeout_s: float = 600.0) -> dict[str, Any]:
    """Run :func:`calibrate_main` in a fresh process and return what it measured.

    Raises:
        TrainingError: the calibration process failed (its last output lines are in the message).
    """
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run([sys.executable, "-m", "modelyard.plan.calibrate"], input=json.dumps(job), text=True,
                          capture_output=True, env=env, timeout=timeout_s, check=False)
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-6:])
        raise TrainingError(f"the calibration steps failed (exit {proc.returncode}): {tail}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _rss() -> float:
    return float(psutil.Process().memory_info().rss)


def _peak_rss() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024.0  # Linux reports KiB


def calibrate_main(job: dict[str, Any]) -> dict[str, Any]:
    """Inside the fresh process: baseline RSS, a 2-row memory probe, then timed steps.

    ``job``: recipe, dataset id, batch (micro-batch rows), accumulation, steps, precisions.
    """
    from modelyard.config.recipe import Recipe
    from modelyard.core.refs import DatasetRef
    from modelyard.data.artifact import open_dataset
    from modelyard.plan.model import build, stage_inputs
    from modelyard.store import open_store
    from modelyard.train import pick_device
    from modelyard.train.loop import autocast_context, backward_step
    from modelyard.train.optim import build_optimizer

    recipe = Recipe.model_validate(job["recipe"])
    with open_store() as store:
        dataset = open_dataset(store, DatasetRef(id=job["dataset"]))
        splits, inputs, objective = stage_inputs(recipe, dataset)
        baseline = _rss()                                  # everything a train process holds before the model
        device = pick_device(recipe.train.device)
        model = build(recipe, dataset, inputs).to(device)
        objective.to(device)
        optimizer = build_optimizer(model, recipe.train.optimizer)
        batch, accumulation = int(job["batch"]), int(job.get("accumulation", 1))
        precisions = list(job.get("precisions") or ["fp32"])
        times: dict[str, list[float]] = {p: [] for p in precisions}
        cpu: dict[str, list[float]] = {p: [] for p in precisions}
        generator = torch.Generator().manual_seed(recipe.seed)
        train = splits["train"]
        model.train()

        def step(precision: str, rows: int) -> tuple[float, float]:
            t0, c0 = time.perf_counter(), time.process_time()
            index = torch.randint(0, len(train), (rows * accumulation,), generator=generator)
            micro = [train.take(chunk) for chunk in torch.tensor_split(index, accumulation)]
            backward_step(model, micro, objective, optimizer, device=device,
                          autocast=autocast_context(precision, device), grad_clip=recipe.train.grad_clip)
            optimizer.step()
            if device.type == "cuda":
                torch.cuda.synchronize()
            return time.perf_counter() - t0, time.process_time() - c0

        # Memory first, at 2 rows per micro-batch: what running steps adds beyond the tensors the
        # plan counts (kernel code paged in, thread pools, allocator caches), per precision in order.
        probe_rows = min(2, batch)
        peak_after: dict[str, float] = {}
        for precision in precisions:
            step(precision, probe_rows)
            step(precision, probe_rows)
            peak_after[precision] = _peak_rss()
        for i in range(int(job["steps"]) + 1):          # step 0 warms up the allocator and kernels
            for precision in precisions:                 # alternated, so load drift hits all alike
                seconds, cpu_seconds = step(precision, batch)
                if i:
                    times[precision].append(seconds)
                    cpu[precision].append(cpu_seconds)
    return {"baseline_bytes": baseline, "probe_rows": probe_rows, "probe_peak_bytes": peak_after,
            # The best of N: other processes only ever add time, so the minimum is the step's own cost.
            "step_seconds": {p: min(t) for p, t in times.items()},
            "step_median": {p: statistics.median(t) for p, t in times.items()}, "step_times": times,
            # CPU time per step (all threads): what the step costs whatever else runs on the machine.
            "step_cpu_seconds": {p: statistics.median(t) for p, t in cpu.items()},
            "peak_rss_bytes": _peak_rss(), "threads": torch.get_num_threads()}


__all__ = ["calibrate_main", "matmul_flops", "run_calibration"]

if __name__ == "__main__":
    print(json.dumps(calibrate_main(json.loads(sys.stdin.read()))))

"""``yard plan``: memory, FLOPs, time and cost of a recipe before it trains.

Recipe × prepared dataset → :class:`Plan`: parameter count, memory for weights, gradients,
optimizer state and activations (counted from the built model, see ``plan/memory.py``),
FLOPs per step, the precision this machine runs fastest (measured matmul FLOP/s, not a
rule), the largest micro-batch and gradient accumulation that fit a memory budget, and the
step and epoch time measured by a few real steps in a fresh process (``plan/calibrate.py``).
``train.batch_size: auto`` is resolved here (:func:`resolve_for_training`) before the train
stage; after a run, ``plan/record.py`` stores the plan's predictions beside what was measured.

    yard plan recipes/quickstart.yaml --memory 2GB
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from modelyard.config.loader import recipe_to_dict
from modelyard.config.recipe import Recipe
from modelyard.core.errors import ConfigError
from modelyard.core.refs import DatasetRef
from modelyard.data.artifact import Dataset
from modelyard.plan.calibrate import matmul_flops, run_calibration
from modelyard.plan.memory import MB, ModelFootprint, estimate, footprint, free_memory, parse_bytes
from modelyard.plan.model import build, stage_inputs
from modelyard.plan.record import PLAN_KIND, compare_with_plan, plan_summary
from modelyard.store.project import Store
from modelyard.train import pick_device
from modelyard.train.loop import TensorData

AUTO_BATCH_CAP = 512          # batch_size auto never goes above this …
AUTO_MIN_STEPS_PER_EPOCH = 4  # … nor above rows / 4, so an epoch still has several optimizer steps
SPEEDUP_TO_SWITCH = 1.15      # a lower precision must be this much faster in the matmul measurement


@dataclass
class Plan:
    """What ``yard plan`` predicts for one recipe on this machine."""

    model: str
    parameters: int
    trainable: int
    device: str
    budget_mb: float
    precision: str
    precision_reason: str
    matmul_gflops: dict[str, float]
    batch_size: int
    micro_batch: int
    grad_accumulation: int
    memory_mb: dict[str, float]
    peak_bytes: float
    activation_bytes_per_sample: float
    flops_per_step: float
    analytic_step_seconds: float
    step_seconds: float | None
    step_cpu_seconds: float | None
    steps_per_epoch: int
    epoch_seconds: float | None
    train_seconds: float | None
    recommendations: list[str] = field(default_factory=list)
    calibration: dict[str, Any] = field(default_factory=dict)

    def predictions(self) -> dict[str, Any]:
        """The numbers a run is compared against afterwards (stored beside what was measured)."""
        return {"peak_memory_mb": self.memory_mb["total"], "step_seconds": self.step_seconds,
                "micro_batch": self.micro_batch, "grad_accumulation": self.grad_accumulation,
                "precision": self.precision, "budget_mb": self.budget_mb}

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values."""
        return asdict(self)


def choose_precision(device: torch.device) -> tuple[str, str, dict[str, float]]:
    """The fastest precision by measured matmul throughput on ``device`` (fp32 unless another wins clearly)."""
    candidates = {"fp32": torch.float32, "bf16": torch.bfloat16}
    if device.type == "cuda":
        candidates["fp16"] = torch.float16
    gflops = {name: round(value / 1e9, 1) for name, value in matmul_flops(candidates, device).items()}
    best = max(gflops, key=lambda k: gflops[k])
    chosen = best if best != "fp32" and gflops[best] >= SPEEDUP_TO_SWITCH * gflops["fp32"] else "fp32"
    measured = ", ".join(f"{k} {v:g}" for k, v in gflops.items())
    return chosen, f"measured matmul GFLOP/s: {measured}", gflops


def _longest_rows(data: TensorData, n: int) -> torch.Tensor:
    """``n`` row indices, the longest first for token data (activations at the longest batch)."""
    if data.mask_index is None:
        return torch.arange(min(n, len(data)))
    return torch.argsort(data.inputs[data.mask_index].sum(dim=1), descending=True, stable=True)[:n]


def _fits(fp: ModelFootprint, batch: int, baseline: float, budget: float, **kw: Any) -> bool:
    return estimate(fp, batch=batch, baseline=baseline, **kw).total <= budget


def _auto_cap(rows: int) -> int:
    cap = min(AUTO_BATCH_CAP, max(rows // AUTO_MIN_STEPS_PER_EPOCH, 1))
    return 2 ** int(math.log2(cap))


def pick_batch(fp: ModelFootprint, *, requested: int | str, rows: int, baseline: float, budget: float,
               optimizer: str, precision: str, runtime: float = 0.0) -> tuple[int, int, int]:
    """(effective batch, micro-batch, accumulation) within ``budget``.

    An integer ``requested`` batch is kept as the effective batch: the micro-batch is its
    largest divisor that fits and accumulation makes up the rest. ``auto`` takes the largest
    power of two that fits, up to ``AUTO_BATCH_CAP`` and rows / 4.

    Raises:
        ConfigError: not even one sample fits; the message says what would (LoRA, int8, a bigger budget).
    """
    kw = {"optimizer": optimizer, "precision": precision, "runtime": runtime}
    if not _fits(fp, 1, baseline, budget, **kw):
        raise ConfigError(_does_not_fit(fp, baseline + runtime, budget, optimizer), where="--memory")
    if requested == "auto":
        batch = _auto_cap(rows)
        while batch > 1 and not _fits(fp, batch, baseline, budget, **kw):
            batch //= 2
        return batch, batch, 1
    assert isinstance(requested, int)
    micro = max(d for d in range(1, requested + 1)
                if requested % d == 0 and (d == 1 or _fits(fp, d, baseline, budget, **kw)))
    return requested, micro, requested // micro


def _does_not_fit(fp: ModelFootprint, baseline: float, budget: float, optimizer: str) -> str:
    one = estimate(fp, batch=1, baseline=baseline, optimizer=optimizer)
    lora = estimate(fp, batch=1, baseline=baseline, optimizer=optimizer, lora=True)
    weights_mb = fp.parameter_bytes / MB
    parts = [f"the budget {budget / MB:.0f} MB is smaller than one training step at batch 1 "
             f"({one.total / MB:.0f} MB: {baseline / MB:.0f} MB process and data, {weights_mb:.1f} MB weights, "
             f"{(one.gradients + one.optimizer + one.best_copy) / MB:.1f} MB gradients, {optimizer} state and "
             "best-weights copy)"]
    if lora.total <= budget:
        parts.append(f"LoRA adapters instead of full fine-tuning would fit ({lora.total / MB:.0f} MB)")
    else:
        parts.append(f"LoRA would still need {lora.total / MB:.0f} MB")
    parts.append(f"int8 weights for inference only take {fp.parameters / MB:.1f} MB (yard compress)")
    return "; ".join(parts)


def make_plan(recipe: Recipe, dataset: Dataset, *, budget: float | str | None = None,
              calibrate: bool = True, steps: int = 5, baseline: float | None = None,
              keep_precision: bool = False) -> Plan:
    """Count, measure and recommend for ``recipe`` on ``dataset``.

    Args:
        recipe: the validated recipe (``train.batch_size`` may be ``auto``).
        dataset: the prepared dataset (the calibration process opens it again from the store).
        budget: bytes or a size string (``8GB``); default: this machine's available memory.
        calibrate: run ``steps`` real training steps in a fresh process for the step time and
            the process baseline; without it the time is the analytic FLOPs / FLOP/s estimate.
        steps: calibration steps after one warm-up step.
        baseline: resident bytes before the model exists (default: measured by the calibration,
            or this process's RSS without calibration).
        keep_precision: plan for the recipe's ``train.precision`` instead of the fastest measured one.

    Raises:
        ConfigError: the budget is unreadable or too small for even one sample (says what would fit).
    """
    import psutil

    budget_bytes = float(parse_bytes(budget) if isinstance(budget, str) else budget or free_memory())
    device = pick_device(recipe.train.device)
    splits, inputs, objective = stage_inputs(recipe, dataset)
    model = build(recipe, dataset, inputs)
    fp = footprint(model, splits["train"].take(_longest_rows(splits["train"], 4)), objective)
    del model
    if baseline is None:
        # Measured after the footprint's steps, so kernels and pools they paged in are included.
        baseline = float(psutil.Process().memory_info().rss)
    precision, reason, gflops = choose_precision(device)
    if keep_precision:
        precision, reason = recipe.train.precision, f"the recipe's precision (measured matmul GFLOP/s: {gflops})"
    optimizer = recipe.train.optimizer.name
    rows = len(splits["train"])
    pick: dict[str, Any] = {"requested": recipe.train.batch_size, "rows": rows, "budget": budget_bytes,
                            "optimizer": optimizer, "precision": precision}
    batch, micro, accumulation = pick_batch(fp, baseline=baseline, **pick)
    calibration: dict[str, Any] = {}
    step_seconds: float | None = None
    step_cpu: float | None = None
    runtime = 0.0
    if calibrate:
        candidates = [precision] if keep_precision else ["fp32", *[p for p in gflops if p != "fp32"]]
        job = {"recipe": recipe_to_dict(recipe), "dataset": dataset.ref.id, "batch": micro,
               "accumulation": accumulation, "steps": steps, "precisions": candidates}
        calibration = run_calibration(job)
        baseline = float(calibration["baseline_bytes"])
        measured = calibration["step_seconds"]
        # Real steps decide: a lower precision must beat fp32's step time clearly, whatever the matmul said.
        if not keep_precision:
            fastest = min(measured, key=lambda k: measured[k])
            precision = fastest if measured["fp32"] >= SPEEDUP_TO_SWITCH * measured[fastest] else "fp32"
        steps_text = ", ".join(f"{k} {v * 1000:.1f} ms" for k, v in measured.items())
        reason += f"; measured step time: {steps_text}"
        step_seconds = float(measured[precision])
        step_cpu = float(calibration["step_cpu_seconds"][precision])
        counted = estimate(fp, batch=int(calibration["probe_rows"]), baseline=baseline, optimizer=optimizer,
                           precision=precision).total
        runtime = max(float(calibration["probe_peak_bytes"][precision]) - counted, 0.0)
        pick.update(precision=precision, runtime=runtime)
        new_batch, new_micro, new_acc = pick_batch(fp, baseline=baseline, **pick)
        if (new_micro, new_acc) != (micro, accumulation):   # the fresh baseline moved the choice: scale the time
            step_seconds *= (new_micro * new_acc) / (micro * accumulation)
            step_cpu = (step_cpu or 0.0) * (new_micro * new_acc) / (micro * accumulation)
            batch, micro, accumulation = new_batch, new_micro, new_acc
    if precision != recipe.train.precision:
        reason += f" → {precision} is faster here than the recipe's {recipe.train.precision}"
    memory = estimate(fp, batch=micro, baseline=baseline, optimizer=optimizer, precision=precision, runtime=runtime)
    flops_per_step = fp.flops_per_sample * batch
    analytic = flops_per_step / (gflops[precision] * 1e9)
    steps_per_epoch = math.ceil(rows / batch)
    epoch = step_seconds * steps_per_epoch if step_seconds is not None else None
    plan = Plan(model=recipe.model.name, parameters=fp.parameters, trainable=fp.trainable, device=str(device),
                budget_mb=round(budget_bytes / MB, 1), precision=precision, precision_reason=reason,
                matmul_gflops=gflops, batch_size=batch, micro_batch=micro, grad_accumulation=accumulation,
                memory_mb=memory.as_mb(), peak_bytes=memory.total,
                activation_bytes_per_sample=fp.activation_bytes_per_sample, flops_per_step=flops_per_step,
                analytic_step_seconds=analytic,
                step_seconds=step_seconds, step_cpu_seconds=step_cpu, steps_per_epoch=steps_per_epoch,
                epoch_seconds=epoch,
                train_seconds=epoch * recipe.train.epochs if epoch is not None else None, calibration=calibration)
    plan.recommendations = _recommend(plan, fp, recipe, baseline, budget_bytes)
    return plan


def _recommend(plan: Plan, fp: ModelFootprint, recipe: Recipe, baseline: float, budget: float) -> list[str]:
    out = []
    if plan.grad_accumulation > 1:
        out.append(f"batch {plan.batch_size} does not fit {plan.budget_mb:.0f} MB at once: train.batch_size "
                   f"{plan.batch_size} with train.grad_accumulation {plan.grad_accumulation} "
                   f"(micro-batches of {plan.micro_batch}) keeps the effective batch")
    elif recipe.train.batch_size == "auto":
        out.append(f"batch_size auto → {plan.batch_size} (the largest power of two within the budget, "
                   f"at most {AUTO_BATCH_CAP} and rows/{AUTO_MIN_STEPS_PER_EPOCH})")
    if plan.precision != recipe.train.precision:
        out.append(f"train.precision: {plan.precision} ({plan.precision_reason})")
    else:
        out.append(f"keep train.precision {plan.precision} ({plan.precision_reason})")
    act = estimate(fp, batch=plan.micro_batch, baseline=baseline, optimizer=recipe.train.optimizer.name)
    if plan.grad_accumulation > 1 and fp.blocks > 2:
        ckpt = estimate(fp, batch=plan.batch_size, baseline=baseline, optimizer=recipe.train.optimizer.name,
                        checkpointing=True)
        if ckpt.total <= budget:
            out.append(f"activation checkpointing per block would fit batch {plan.batch_size} without "
                       f"accumulation ({ckpt.total / MB:.0f} MB; recomputes the forward pass, ~1.3x step time)")
    if fp.trainable > 10_000_000:
        lora = estimate(fp, batch=plan.micro_batch, baseline=baseline, optimizer=recipe.train.optimizer.name,
                        lora=True)
        out.append(f"LoRA instead of full fine-tuning: {lora.total / MB:.0f} MB instead of {act.total / MB:.0f} MB "
                   f"({fp.lora_trainable:,} trainable parameters)")
    return out


def resolve_for_training(recipe: Recipe, dataset: DatasetRef, store: Store, *, budget: float | str | None = None,
                         nproc: int = 1, parent_run_id: str | None = None) -> Recipe:
    """The recipe with ``train.batch_size: auto`` replaced by the largest batch within ``budget``.

    The plan is counted in this process (no calibration: the process that will train is the
    baseline) and stored as a ``plan`` run, so the train run's measurements land beside it.
    With ``nproc`` processes on this machine each gets ``budget / nproc``; the resolved batch
    is the global one (per-process batch × nproc). A recipe with a number is returned as is.

    Raises:
        ConfigError: not even one sample fits the budget (the message says what would).
    """
    from modelyard.data.artifact import open_dataset
    from modelyard.store.context import stage_run

    if recipe.train.batch_size != "auto":
        return recipe
    total = float(parse_bytes(budget) if isinstance(budget, str) else budget or free_memory())
    with stage_run(store, kind=PLAN_KIND, name=recipe.name, config=recipe_to_dict(recipe),
                   parent_run_id=parent_run_id, seed=recipe.seed) as ctx:
        store.artifacts.link_input(ctx.run_id, dataset)
        plan = make_plan(recipe, open_dataset(store, dataset), budget=total / nproc, calibrate=False,
                         keep_precision=True)
        values = recipe_to_dict(recipe)
        values["train"]["batch_size"] = plan.batch_size * nproc
        values["train"]["grad_accumulation"] = 1
        resolved = Recipe.model_validate(values)
        store.runs.set_summary(ctx.run_id, {**plan_summary(plan.predictions(), dataset_id=dataset.id, config=values),
                                            "batch_size": plan.batch_size * nproc, "memory_mb": plan.memory_mb,
                                            "nproc": nproc})
    return resolved


__all__ = ["Plan", "choose_precision", "compare_with_plan", "make_plan", "pick_batch", "plan_summary",
           "resolve_for_training"]

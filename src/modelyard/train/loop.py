"""The training loop: one function, :func:`fit`, top to bottom.

No Trainer class and no callbacks: the variation points are the arguments (model, data,
objective, optimizer, schedule) and the narrow collaborators of the RunContext (metric
logger, progress, pruning reporter). The pieces other code reuses (distillation, the
distributed wrapper) are plain functions: :func:`epoch_order`, :func:`backward_step`,
:func:`apply_step`, :func:`evaluate_split`, and ``train/checkpoint.py``.

The position in the data is the optimizer step alone: epoch ``e`` visits the rows in
``epoch_order(n, seed, e)``, a permutation that depends on (seed, epoch) only, and step
``s`` takes batch ``s % steps_per_epoch`` of epoch ``s // steps_per_epoch``. So resuming
at step ``s`` jumps straight there (no replaying of skipped batches), and a checkpoint's
data position is one integer.

Online augmentation (``data.augment.mode: online``) follows the same rule: the stage hands
:func:`fit` a :data:`BatchAugment`, called on each training micro-batch with a numpy
generator seeded from (seed, step, micro-batch, rank) alone (:func:`augment_rng`), so every
epoch sees fresh variants of the rows while a resumed run draws exactly the same ones.
Validation never goes through it.
"""

from __future__ import annotations

import logging
import math
import statistics
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from modelyard.config.train import EarlyStoppingConfig, GuardConfig
from modelyard.core.errors import ConfigError, TrainingError
from modelyard.store.context import RunContext
from modelyard.train import distributed
from modelyard.train.checkpoint import list_checkpoints, load_checkpoint, save_checkpoint
from modelyard.train.monitor import ResourceMonitor, count_train_flops, peak_flops_for
from modelyard.train.objectives import Objective
from modelyard.train.optim import Schedule, decay_split

log = logging.getLogger("modelyard.train")

Batch = tuple[tuple[torch.Tensor, ...], torch.Tensor]
# (row indices into the train split, the batch those rows make, a seeded generator) -> augmented batch
BatchAugment = Callable[[torch.Tensor, Batch, np.random.Generator], Batch]


@dataclass
class TensorData:
    """A split as tensors: the model's positional inputs and the targets, row-aligned.

    Args:
        inputs: ``(x,)`` for tabular/image, ``(input_ids, attention_mask)`` for tokens.
        targets: (N,) labels / values, (N, K) multi-label, or (N, T) next-token targets.
        mask_index: position of the attention mask in ``inputs`` (token data); a batch is then
            cut to its longest row, so padding beyond it costs nothing.
    """

    inputs: tuple[torch.Tensor, ...]
    targets: torch.Tensor
    mask_index: int | None = None

    def __len__(self) -> int:
        return int(self.targets.shape[0])

    def take(self, index: torch.Tensor) -> Batch:
        """Rows ``index`` as ``(inputs, targets)``, token batches trimmed to their longest row."""
        inputs = tuple(t[index] for t in self.inputs)
        targets = self.targets[index]
        if self.mask_index is not None and len(index):
            length = max(1, int(inputs[self.mask_index].sum(dim=1).max()))
            inputs = tuple(t[:, :length] for t in inputs)
            if targets.ndim == 2 and targets.shape[1] == self.inputs[0].shape[1]:
                targets = targets[:, :length]  # next-token targets (B, T)
        return inputs, targets

    def tokens(self, inputs: tuple[torch.Tensor, ...]) -> int:
        """Non-padding tokens in a batch's inputs (0 for non-token data)."""
        return 0 if self.mask_index is None else int(inputs[self.mask_index].sum())


@dataclass
class LoopSettings:
    """Plain values the loop needs (taken from the recipe by the stage)."""

    epochs: int
    batch_size: int
    grad_clip: float | None
    log_every_steps: int
    seed: int
    task: str
    grad_accumulation: int = 1
    precision: str = "fp32"
    compile: bool = False
    validate_every_steps: int | None = None
    early_stopping: EarlyStoppingConfig | None = None
    checkpoint_every_steps: int | None = None
    checkpoint_keep: int = 2
    checkpoint_min_interval_s: float = 0.0
    guards: GuardConfig = field(default_factory=GuardConfig)
    l1: float = 0.0
    l2: float = 0.0
    monitor: bool = True
    fingerprint: dict[str, Any] = field(default_factory=dict)


@dataclass
class FitResult:
    """What training produced besides the weights."""

    steps: int
    best_epoch: int
    best_valid: dict[str, float]
    history: list[dict[str, float]] = field(default_factory=list)
    wall_seconds: float = 0.0
    best_step: int = 0
    stopped_early: bool = False
    resumed_from_step: int | None = None
    skipped_steps: int = 0
    rollbacks: int = 0
    loss_spikes: int = 0
    mfu: float | None = None


@dataclass
class StepOutcome:
    """One optimizer step's figures (host floats: the loop syncs once per step for the NaN guard)."""

    loss: float
    grad_norm: float
    samples: int
    tokens: int
    finite: bool


def epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The row order of ``epoch`` (0-based): a permutation depending on (seed, epoch) only."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))


def augment_rng(seed: int, step: int, micro_batch: int) -> np.random.Generator:
    """The generator online augmentation draws from for one micro-batch of optimizer step ``step``.

    It depends on (seed, step, micro-batch, rank) only, so a run resumed at step ``s`` augments
    batch ``s`` exactly as the uninterrupted run did, and ranks draw independent variants.
    """
    return np.random.default_rng([seed % 2**32, step, micro_batch, distributed.world().rank])


def autocast_context(precision: str, device: torch.device) -> Callable[[], AbstractContextManager[Any]]:
    """A factory of the autocast context for ``precision`` on ``device`` (fp32: no autocast).

    Raises:
        ConfigError: fp16 off CUDA (CPU fp16 autocast has no scaler story and is slower still).
    """
    if precision == "fp32":
        return nullcontext
    if precision == "fp16" and device.type != "cuda":
        raise ConfigError("precision fp16 needs a CUDA device; on CPU use bf16 (or fp32)", where="train.precision")
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return lambda: torch.autocast(device.type, dtype=dtype)


def grad_scaler(precision: str, device: torch.device) -> torch.amp.GradScaler | None:
    """A loss scaler for fp16 on CUDA (bf16 has fp32's exponent range and needs none)."""
    return torch.amp.GradScaler("cuda") if precision == "fp16" and device.type == "cuda" else None


def penalty(params: list[nn.Parameter], l1: float, l2: float) -> torch.Tensor | None:
    """``l1 · Σ|w| + l2 · Σw²`` over ``params`` (the weight matrices), or None when both are 0."""
    if not params or (l1 == 0 and l2 == 0):
        return None
    total = params[0].new_zeros(())
    for p in params:
        if l1:
            total = total + l1 * p.abs().sum()
        if l2:
            total = total + l2 * p.pow(2).sum()
    return total


def backward_step(model: nn.Module, micro_batches: list[Batch], objective: Objective,
                  optimizer: torch.optim.Optimizer, *, device: torch.device,
                  autocast: Callable[[], AbstractContextManager[Any]] = nullcontext,
                  scaler: torch.amp.GradScaler | None = None, grad_clip: float | None = None,
                  penalty_fn: Callable[[], torch.Tensor | None] | None = None,
                  count_tokens: Callable[[tuple[torch.Tensor, ...]], int] | None = None) -> StepOutcome:
    """Zero the gradients, then forward + backward every micro-batch of one optimizer step; clip.

    Exact accumulation: the objective's per-sample (per-token) losses are summed and divided
    by the count over *all* micro-batches, so k micro-batches give the gradient of one batch
    holding all of them, padding and short batches included. The optimizer is not stepped.
    """
    total = float(sum(float(objective.count(targets)) for _, targets in micro_batches))
    total = distributed.global_count(total)  # several ranks: the global batch's count / world size
    optimizer.zero_grad(set_to_none=True)
    loss_sum = torch.zeros((), device=device)
    samples = tokens = 0
    for i, (inputs, targets) in enumerate(micro_batches):
        inputs = tuple(t.to(device, non_blocking=True) for t in inputs)
        targets = targets.to(device, non_blocking=True)
        with autocast():
            outputs = model(*inputs)                     # (B, K) | (B, 1) | (B, T, V)
        loss = objective(outputs, targets) / max(total, 1e-12)
        loss_sum += loss.detach()
        extra = penalty_fn() if (penalty_fn is not None and i == 0) else None
        if extra is not None:
            loss = loss + extra  # added once per step: the penalty is not per sample
        (scaler.scale(loss) if scaler is not None else loss).backward()
        samples += int(targets.shape[0])
        tokens += count_tokens(inputs) if count_tokens is not None else 0
    if scaler is not None:
        scaler.unscale_(optimizer)  # clip and measure real gradients
    grad_norm = gradient_norm(model, grad_clip)
    loss_value, norm_value = distributed.mean_across_ranks(float(loss_sum)), float(grad_norm)
    # With a grad scaler, inf gradients are routine (the scaler skips the step and lowers its scale).
    finite = math.isfinite(loss_value) and (scaler is not None or math.isfinite(norm_value))
    return StepOutcome(loss=loss_value, grad_norm=norm_value, samples=samples, tokens=tokens, finite=finite)


def gradient_norm(model: nn.Module, max_norm: float | None) -> torch.Tensor:
    """The global gradient norm before clipping; clip to ``max_norm`` when given."""
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    if not grads:
        return torch.zeros(())
    if max_norm is None:
        return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
    return torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.grad is not None], max_norm)


def apply_step(optimizer: torch.optim.Optimizer, schedule: Schedule, scaler: torch.amp.GradScaler | None) -> None:
    """Step the optimizer (through the scaler when there is one), then the schedule."""
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    schedule.step()


@torch.no_grad()
def evaluate_split(model: nn.Module, data: TensorData, objective: Objective, *, task: str, device: torch.device,
                   autocast: Callable[[], AbstractContextManager[Any]] = nullcontext, prefix: str = "valid",
                   batch_size: int = 256) -> dict[str, float]:
    """Mean loss, plus accuracy (classification) or perplexity (language modeling); {} for an empty split."""
    if len(data) == 0:
        return {}
    was_training = model.training
    model.eval()
    loss_sum, count, correct = 0.0, 0.0, 0
    for start in range(0, len(data), batch_size):
        inputs, targets = data.take(torch.arange(start, min(start + batch_size, len(data))))
        inputs = tuple(t.to(device) for t in inputs)
        targets = targets.to(device)
        with autocast():
            outputs = model(*inputs)
        loss_sum += float(objective(outputs, targets))
        count += float(objective.count(targets))
        if task == "classification":
            correct += int((outputs.argmax(dim=-1) == targets).sum())
    model.train(was_training)
    loss = loss_sum / max(count, 1e-12)
    result = {f"{prefix}/loss": loss}
    if task == "classification":
        result[f"{prefix}/accuracy"] = correct / len(data)
    elif task == "language-modeling":
        result[f"{prefix}/perplexity"] = math.exp(min(loss, 50.0))
    return result


def selection(settings: LoopSettings) -> tuple[str, str, float, int | None]:
    """(metric, min|max, min_delta, patience or None) that picks the best weights and stops early."""
    stop = settings.early_stopping
    metric = stop.metric if stop else ("valid/accuracy" if settings.task == "classification" else "valid/loss")
    mode = stop.mode if stop else "auto"
    if mode == "auto":
        mode = "min" if any(word in metric for word in ("loss", "perplexity", "error", "ece")) else "max"
    return metric, mode, (stop.min_delta if stop else 0.0), (stop.patience if stop else None)


def fit(model: nn.Module, *, train: TensorData, valid: TensorData, objective: Objective,
        optimizer: torch.optim.Optimizer, make_schedule: Callable[[int, int], Schedule], settings: LoopSettings,
        ctx: RunContext, device: torch.device, checkpoint_dir: Path | None = None,
        resume_from: Path | None = None, augment: BatchAugment | None = None) -> FitResult:
    """Train ``model`` in place and leave it holding its best validated weights.

    Args:
        model: the module, already on ``device`` (a DDP wrapper works: it is called, not inspected).
        train: the training split (CPU tensors; batches move to ``device``).
        valid: the validation split (may be empty: then the last weights are kept).
        objective: summed loss + count (see ``train/objectives.py``).
        optimizer: over ``model``'s parameters.
        make_schedule: ``(total_steps, steps_per_epoch) -> Schedule``.
        settings: plain loop settings.
        ctx: run context: metrics go to the store, progress to the screen, pruning to a tuner.
        device: where the batches go.
        checkpoint_dir: where checkpoints go (None: no checkpoints).
        resume_from: a checkpoint folder to continue from, exactly.
        augment: online augmentation, applied to each training micro-batch (never to ``valid``),
            seeded per step by :func:`augment_rng`.

    Raises:
        TrainingError: NaN/Inf with policy ``stop`` (the step is named), or too many rollbacks.
        ConfigError / ArtifactError: a checkpoint of another run, or a corrupt one.
    """
    n = len(train)
    batch_size, accumulation = settings.batch_size, settings.grad_accumulation
    steps_per_epoch = math.ceil(n / batch_size)
    total_steps = steps_per_epoch * settings.epochs
    schedule = make_schedule(total_steps, steps_per_epoch)
    scaler = grad_scaler(settings.precision, device)
    autocast = autocast_context(settings.precision, device)
    guards = settings.guards
    if guards.on_nonfinite == "rollback" and checkpoint_dir is None:
        raise ConfigError("guards.on_nonfinite rollback needs checkpoints", where="train.checkpoint.enabled")
    decay_params, _ = decay_split(model)
    penalty_fn = (lambda: penalty(decay_params, settings.l1, settings.l2)) if (settings.l1 or settings.l2) else None
    forward_model = _maybe_compile(model, settings.compile)
    metric, mode, min_delta, patience = selection(settings)
    monitor = ResourceMonitor(device) if settings.monitor else None
    peak: float | None = None  # measured at the first log, once per process (cached)

    step, validations, bad_validations, rollbacks, skipped, spikes = 0, 0, 0, 0, 0, 0
    best_score: float | None = None
    best_state: dict[str, torch.Tensor] | None = None
    best_valid: dict[str, float] = {}
    best_step, stopped_early = 0, False
    history: list[dict[str, float]] = []
    recent: list[float] = []
    resumed_from: int | None = None

    def loop_state() -> dict[str, Any]:
        return {"fingerprint": settings.fingerprint, "schedule": schedule.state_dict(),
                "scaler": scaler.state_dict() if scaler is not None else None, "validations": validations,
                "bad_validations": bad_validations, "best_score": best_score, "best_step": best_step,
                "best_valid": best_valid, "history": history, "recent": recent, "skipped": skipped,
                "spikes": spikes}

    def restore(path: Path) -> None:
        nonlocal step, validations, bad_validations, best_score, best_step, best_valid, history, recent, skipped
        nonlocal spikes, best_state
        meta, best = load_checkpoint(path, model=model, optimizer=optimizer, fingerprint=settings.fingerprint,
                                     device=device)
        state = meta["loop"]
        step = int(meta["step"])
        schedule.load_state_dict(state["schedule"])
        if scaler is not None and state["scaler"] is not None:
            scaler.load_state_dict(state["scaler"])
        validations, bad_validations = int(state["validations"]), int(state["bad_validations"])
        best_score, best_step, best_valid = state["best_score"], int(state["best_step"]), state["best_valid"]
        history, recent = list(state["history"]), [float(v) for v in state["recent"]]
        skipped, spikes = int(state["skipped"]), int(state["spikes"])
        best_state = best if best_score is not None else None

    last_checkpoint = time.perf_counter()

    consecutive = 0  # rollbacks since the last checkpoint was written

    def checkpoint() -> None:
        nonlocal last_checkpoint, consecutive
        assert checkpoint_dir is not None
        last_checkpoint = time.perf_counter()
        consecutive = 0
        # Under FSDP every rank takes part in gathering the full state onto rank 0 (else: None, None).
        model_state, optimizer_state = distributed.gathered_state(model, optimizer)
        if not distributed.is_main():
            return  # rank 0 writes; every rank reads the same folder on rollback/resume
        save_checkpoint(checkpoint_dir, step, model=model, optimizer=optimizer, best_state=best_state,
                        loop_state=loop_state(), keep=settings.checkpoint_keep, model_state=model_state,
                        optimizer_state=optimizer_state)

    if resume_from is not None:
        restore(resume_from)
        resumed_from = step
        log.info("resumed at step %d of %d from %s", step, total_steps, resume_from)
    elif guards.on_nonfinite == "rollback":
        checkpoint()  # something to roll back to before the first checkpoint interval

    started = time.perf_counter()
    window_start, window_samples, window_tokens, window_steps = started, 0, 0, 0
    flops_per_sample: float | None = None
    mfu: float | None = None
    count_tokens = train.tokens if train.mask_index is not None else None
    order_epoch, order = -1, torch.empty(0, dtype=torch.long)
    model.train()
    ctx.progress.start("train", total_steps)
    if step:
        ctx.progress.advance(step)
    while step < total_steps:
        epoch, position = divmod(step, steps_per_epoch)
        if epoch != order_epoch:
            order_epoch, order = epoch, epoch_order(n, settings.seed, epoch)
        index = order[position * batch_size:(position + 1) * batch_size]
        index = distributed.shard_batch(index)  # this rank's strided share of the global batch
        chunks = [chunk for chunk in torch.tensor_split(index, accumulation) if len(chunk)]
        micro_batches = [train.take(chunk) for chunk in chunks]
        if augment is not None:
            micro_batches = [augment(chunk, batch, augment_rng(settings.seed, step, i))
                             for i, (chunk, batch) in enumerate(zip(chunks, micro_batches, strict=True))]
        if settings.monitor and flops_per_sample is None:
            # Once, on a few rows, outside the timed step (see train/monitor.py for why not the step itself).
            counting = time.perf_counter()
            flops_per_sample = count_train_flops(distributed.unwrap(model), micro_batches[0][0], device=device)
            window_start += time.perf_counter() - counting  # not part of the logged throughput
        t0 = time.perf_counter()
        try:
            outcome = backward_step(forward_model, micro_batches, objective, optimizer, device=device,
                                    autocast=autocast, scaler=scaler, grad_clip=settings.grad_clip,
                                    penalty_fn=penalty_fn, count_tokens=count_tokens)
        except _compile_errors() as exc:
            if forward_model is model:
                raise
            log.warning("torch.compile failed (%s); training eagerly", exc)
            forward_model = model
            outcome = backward_step(model, micro_batches, objective, optimizer, device=device,
                                    autocast=autocast, scaler=scaler, grad_clip=settings.grad_clip,
                                    penalty_fn=penalty_fn, count_tokens=count_tokens)

        if not outcome.finite:
            where = f"step {step + 1} (epoch {epoch + 1}, batch {position + 1})"
            what = f"loss is {outcome.loss}, gradient norm {outcome.grad_norm}"
            if guards.on_nonfinite == "stop":
                raise TrainingError(f"non-finite training at {where}: {what}",
                                    hint="lower train.optimizer.lr, set train.grad_clip, check the data for NaN/Inf, "
                                         "or set train.guards.on_nonfinite to skip or rollback")
            if guards.on_nonfinite == "skip":
                log.warning("skipped %s: %s", where, what)
                optimizer.zero_grad(set_to_none=True)
                schedule.step()  # the LR follows the data position
                step += 1
                skipped += 1
                ctx.metrics.log(step, {"guard/skipped_step": 1.0})
                ctx.progress.advance(1, epoch=epoch + 1, skipped=skipped)
                continue
            rollbacks += 1
            if rollbacks > guards.max_rollbacks:
                raise TrainingError(f"non-finite training at {where} after {guards.max_rollbacks} rollbacks: {what}",
                                    hint="lower train.optimizer.lr or check the data")
            # Failing again before a new checkpoint means the one restored may hold bad weights
            # already: each consecutive rollback goes one checkpoint further back.
            consecutive += 1
            saved = list_checkpoints(checkpoint_dir) if checkpoint_dir is not None else []
            assert saved  # a checkpoint exists from step 0 on (see above)
            target = saved[max(0, len(saved) - consecutive)]
            factor = schedule.guard_factor * guards.rollback_lr_factor
            restore(target)
            schedule.guard_factor = factor
            schedule.scale(1.0)
            log.warning("rolled back from %s to step %d with LR x%.3g: %s", where, step, factor, what)
            ctx.metrics.log(step, {"guard/rollback": float(rollbacks), "guard/lr_factor": factor})
            model.train()
            continue

        apply_step(optimizer, schedule, scaler)
        step += 1
        window_samples += outcome.samples
        window_tokens += outcome.tokens
        window_steps += 1
        if guards.spike_factor is not None:
            if len(recent) >= 5 and outcome.loss > guards.spike_factor * statistics.median(recent):
                spikes += 1
                log.warning("loss spike at step %d: %.4g (recent median %.4g)", step, outcome.loss,
                            statistics.median(recent))
                ctx.metrics.log(step, {"guard/loss_spike": outcome.loss / statistics.median(recent)})
            recent = [*recent, outcome.loss][-guards.spike_window:]

        if step % settings.log_every_steps == 0 or step == total_steps:
            now = time.perf_counter()
            elapsed = max(now - window_start, 1e-9)
            row = {"train/loss": outcome.loss, "train/lr": schedule.get_last_lr()[0],
                   "train/grad_norm": outcome.grad_norm, "train/samples_per_s": window_samples / elapsed,
                   "train/step_time_s": elapsed / max(window_steps, 1), "train/last_step_time_s": now - t0,
                   "train/epoch": epoch + (position + 1) / steps_per_epoch}
            if window_tokens:
                row["train/tokens_per_s"] = window_tokens / elapsed
            if monitor is not None:
                row.update(monitor.sample())
            if flops_per_sample is not None:
                peak = peak or peak_flops_for(device, settings.precision)
                mfu = flops_per_sample * window_samples / elapsed / peak
                row["train/mfu"] = mfu
            ctx.metrics.log(step, row)
            window_start, window_samples, window_tokens, window_steps = now, 0, 0, 0

        end_of_epoch = step % steps_per_epoch == 0
        paused = time.perf_counter()  # validation and checkpoints below are not step time
        every = settings.validate_every_steps
        if (every and step % every == 0) or (not every and end_of_epoch) or step == total_steps:
            validations += 1
            row = {"epoch": step / steps_per_epoch}
            row.update(evaluate_split(forward_model, valid, objective, task=settings.task, device=device,
                                      autocast=autocast))
            ctx.metrics.log(step, row)
            history.append(row)
            if "valid/loss" in row:
                schedule.observe(row["valid/loss"])
            if metric not in row and len(valid):
                raise ConfigError(f"early-stopping metric {metric!r} is not computed (have: {sorted(row)})",
                                  where="train.early_stopping.metric")
            if metric in row:
                value = row[metric]
                score = value if mode == "max" else -value
                if best_score is None or score > best_score + min_delta:
                    best_score, best_step, best_valid, bad_validations = score, step, row, 0
                    best_state = distributed.model_state(model)  # FSDP: gathered on rank 0
                else:
                    bad_validations += 1
                ctx.pruning.report(validations, score)
                if patience is not None and bad_validations >= patience:
                    stopped_early = True
                    log.info("early stop at step %d: %s has not improved for %d validations", step, metric, patience)
                if ctx.pruning.should_stop():
                    stopped_early = True

        ckpt_every = settings.checkpoint_every_steps
        if checkpoint_dir is not None and step < total_steps and not stopped_early and (
                (ckpt_every and step % ckpt_every == 0) or (not ckpt_every and end_of_epoch and time.perf_counter()
                                                            - last_checkpoint >= settings.checkpoint_min_interval_s)):
            checkpoint()
        window_start += time.perf_counter() - paused  # keeps step_time_s / samples_per_s to training steps
        ctx.progress.advance(1, epoch=epoch + 1, loss=outcome.loss)
        if stopped_early:
            break
    ctx.progress.stop()
    if best_state is not None:
        distributed.load_model_state(model, best_state)
    ctx.metrics.flush()
    best_epoch = math.ceil(best_step / steps_per_epoch) if best_step else 0
    return FitResult(steps=step, best_epoch=best_epoch, best_valid=best_valid, history=history,
                     wall_seconds=time.perf_counter() - started, best_step=best_step, stopped_early=stopped_early,
                     resumed_from_step=resumed_from, skipped_steps=skipped, rollbacks=rollbacks, loss_spikes=spikes,
                     mfu=mfu)


def _maybe_compile(model: nn.Module, enabled: bool) -> nn.Module:
    if not enabled:
        return model
    errors: tuple[type[BaseException], ...] = (RuntimeError, *_compile_errors())
    try:
        return torch.compile(model)  # type: ignore[return-value]
    except errors as exc:
        log.warning("torch.compile is unavailable (%s); training eagerly", exc)
        return model


def _compile_errors() -> tuple[type[BaseException], ...]:
    """Errors a failed ``torch.compile`` raises lazily, at the first call."""
    from torch._dynamo.exc import TorchDynamoException

    return (TorchDynamoException,)


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (CPU and CUDA)."""
    import random

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


__all__ = ["Batch", "BatchAugment", "FitResult", "LoopSettings", "StepOutcome", "TensorData", "apply_step",
           "augment_rng", "autocast_context", "backward_step", "epoch_order", "evaluate_split", "fit", "grad_scaler",
           "gradient_norm", "penalty", "seed_everything", "selection"]

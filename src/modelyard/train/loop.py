"""The training loop: one function, top to bottom.

No Trainer class and no callbacks: the variation points are the arguments (model, loss,
optimizer, schedule, batches) and the narrow collaborators of the RunContext (metric
logger, progress, pruning reporter).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from modelyard.core.errors import TrainingError
from modelyard.store.context import RunContext

Batch = tuple[torch.Tensor, torch.Tensor]


@dataclass
class FitResult:
    """What training produced besides the weights."""

    steps: int
    best_epoch: int
    best_valid: dict[str, float]
    history: list[dict[str, float]] = field(default_factory=list)
    wall_seconds: float = 0.0


@dataclass
class LoopSettings:
    """Plain values the loop needs (taken from the recipe by the stage)."""

    epochs: int
    batch_size: int
    grad_clip: float | None
    log_every_steps: int
    seed: int
    task: str


def fit(model: nn.Module, *, train: Batch, valid: Batch, loss_fn: nn.Module,
        optimizer: torch.optim.Optimizer, make_schedule: Callable[[int], torch.optim.lr_scheduler.LRScheduler],
        settings: LoopSettings, ctx: RunContext, device: torch.device) -> FitResult:
    """Train ``model`` in place and leave it holding the weights of its best validation epoch.

    Args:
        model: the module, already on ``device``.
        train: (inputs, targets) tensors of the training split (CPU; moved per batch).
        valid: the same for the validation split (may be empty).
        loss_fn: maps (outputs, targets) to a scalar mean loss.
        optimizer: over ``model``'s parameters.
        make_schedule: builds the LR schedule given the total number of steps.
        settings: epochs, batch size, clipping, logging cadence, seed, task.
        ctx: run context: metrics go to the store, progress to the screen.
        device: where the batches go.

    Raises:
        TrainingError: the loss became NaN or infinite (the step is named).
    """
    x_train, y_train = train
    n = len(x_train)
    steps_per_epoch = math.ceil(n / settings.batch_size)
    total_steps = steps_per_epoch * settings.epochs
    schedule = make_schedule(total_steps)
    # The data order comes from its own generator, so it depends on the seed alone.
    order_rng = torch.Generator().manual_seed(settings.seed)

    best_score, best_state, best_epoch, best_valid = -math.inf, None, 0, {}
    history: list[dict[str, float]] = []
    step = 0
    started = time.perf_counter()
    ctx.progress.start("train", total_steps)
    for epoch in range(1, settings.epochs + 1):
        model.train()
        perm = torch.randperm(n, generator=order_rng)
        epoch_loss, seen = 0.0, 0
        for start in range(0, n, settings.batch_size):
            t0 = time.perf_counter()
            idx = perm[start:start + settings.batch_size]
            xb, yb = x_train[idx].to(device, non_blocking=True), y_train[idx].to(device, non_blocking=True)
            outputs = model(xb)                       # (B, K) logits or (B, 1) values
            loss = loss_fn(outputs, yb)
            if not torch.isfinite(loss):
                raise TrainingError(f"loss is {loss.item()} at step {step + 1} (epoch {epoch})",
                                    hint="lower train.optimizer.lr or check the data for NaN/Inf")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = _clip(model, settings.grad_clip)
            optimizer.step()
            schedule.step()
            step += 1
            epoch_loss += loss.item() * len(idx)
            seen += len(idx)
            if step % settings.log_every_steps == 0 or step == total_steps:
                dt = time.perf_counter() - t0
                ctx.metrics.log(step, {"train/loss": loss.item(), "train/lr": schedule.get_last_lr()[0],
                                       "train/grad_norm": grad_norm, "train/samples_per_s": len(idx) / max(dt, 1e-9)})
            ctx.progress.advance(1, epoch=epoch, loss=loss.item())

        row = {"epoch": float(epoch), "train/epoch_loss": epoch_loss / max(seen, 1)}
        row.update(evaluate_split(model, valid, loss_fn, settings, device, prefix="valid"))
        ctx.metrics.log(step, row)
        history.append(row)
        # Select on validation accuracy for classification (loss breaks ties), valid loss otherwise.
        score = _selection_score(row, settings.task)
        if score > best_score:
            best_score, best_epoch, best_valid = score, epoch, row
            best_state = copy.deepcopy(model.state_dict())
        ctx.pruning.report(epoch, score)
        if ctx.pruning.should_stop():
            break
    ctx.progress.stop()
    if best_state is not None:
        model.load_state_dict(best_state)
    ctx.metrics.flush()
    return FitResult(steps=step, best_epoch=best_epoch, best_valid=best_valid, history=history,
                     wall_seconds=time.perf_counter() - started)


def _clip(model: nn.Module, max_norm: float | None) -> float:
    """Clip the global gradient norm (if asked) and return the norm before clipping."""
    params = [p for p in model.parameters() if p.grad is not None]
    if not params:
        return 0.0
    if max_norm is None:
        return float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in params])))
    return float(torch.nn.utils.clip_grad_norm_(params, max_norm))


def _selection_score(row: dict[str, float], task: str) -> float:
    if "valid/loss" not in row:
        return -row["train/epoch_loss"]
    if task == "classification":
        return row["valid/accuracy"] - 1e-6 * row["valid/loss"]
    return -row["valid/loss"]


@torch.no_grad()
def evaluate_split(model: nn.Module, data: Batch, loss_fn: nn.Module, settings: LoopSettings,
                   device: torch.device, *, prefix: str) -> dict[str, float]:
    """Mean loss (and accuracy for classification) of ``model`` on one split; {} when it is empty."""
    x, y = data
    if len(x) == 0:
        return {}
    was_training = model.training
    model.eval()
    total_loss, correct = 0.0, 0
    for start in range(0, len(x), 512):
        xb, yb = x[start:start + 512].to(device), y[start:start + 512].to(device)
        out = model(xb)
        total_loss += loss_fn(out, yb).item() * len(xb)
        if settings.task == "classification":
            correct += int((out.argmax(dim=-1) == yb).sum())
    model.train(was_training)
    result = {f"{prefix}/loss": total_loss / len(x)}
    if settings.task == "classification":
        result[f"{prefix}/accuracy"] = correct / len(x)
    return result


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (CPU and CUDA)."""
    import random

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)

"""Optimizers and learning-rate schedules built from the recipe's names.

The schedule is one small class instead of torch's ``LRScheduler`` zoo because every
shape here shares a linear warm-up, ``reduce-on-plateau`` must compose with it, the
NaN guard's rollback lowers the LR on top of any shape, and the whole state must go into
a checkpoint as plain JSON numbers.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from modelyard.config.train import OPTIMIZER_NAMES, SCHEDULE_NAMES, OptimizerConfig, ScheduleConfig
from modelyard.core.errors import ConfigError
from modelyard.core.registry import unknown_name_message

_NO_DECAY_TYPES = (nn.LayerNorm, nn.BatchNorm1d, nn.BatchNorm2d, nn.GroupNorm, nn.Embedding)


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Two groups: weights that decay, and biases / norm / embedding parameters that do not."""
    decay, no_decay = decay_split(model)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def decay_split(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """Trainable parameters split into (weight matrices, biases / norms / embeddings); shared ones once."""
    decay, no_decay, seen = [], [], set()
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            if not param.requires_grad or id(param) in seen:
                continue
            seen.add(id(param))
            if name.endswith("bias") or isinstance(module, _NO_DECAY_TYPES) or param.ndim < 2:
                no_decay.append(param)
            else:
                decay.append(param)
    return decay, no_decay


def _optimizer_factories(cfg: OptimizerConfig) -> dict[str, Callable[[list[dict[str, Any]]], torch.optim.Optimizer]]:
    lr = cfg.lr
    return {
        "adamw": lambda g: torch.optim.AdamW(g, lr=lr, betas=cfg.betas, eps=cfg.eps),
        "adam": lambda g: torch.optim.Adam(g, lr=lr, betas=cfg.betas, eps=cfg.eps),
        "sgd": lambda g: torch.optim.SGD(g, lr=lr, momentum=cfg.momentum, nesterov=cfg.nesterov),
        "adagrad": lambda g: torch.optim.Adagrad(g, lr=lr, eps=cfg.eps),
        "rmsprop": lambda g: torch.optim.RMSprop(g, lr=lr, momentum=cfg.momentum, eps=cfg.eps),
    }


def check_optimizer_config(cfg: OptimizerConfig) -> None:
    """Refuse unknown names and settings the optimizer cannot take, before any training."""
    if cfg.name not in OPTIMIZER_NAMES:
        raise ConfigError(unknown_name_message("optimizer", cfg.name, list(OPTIMIZER_NAMES)),
                          where="train.optimizer.name")
    if cfg.nesterov and (cfg.name != "sgd" or cfg.momentum == 0):
        raise ConfigError("nesterov needs optimizer sgd with momentum > 0", where="train.optimizer.nesterov")


def build_optimizer(model: nn.Module, cfg: OptimizerConfig) -> torch.optim.Optimizer:
    """The optimizer named in ``cfg`` over ``model``'s trainable parameters (no decay on norms/biases)."""
    check_optimizer_config(cfg)
    groups = [g for g in parameter_groups(model, cfg.weight_decay) if g["params"]]
    if not groups:
        raise ConfigError("the model has no trainable parameters", where="model")
    return _optimizer_factories(cfg)[cfg.name](groups)


def check_schedule_config(cfg: ScheduleConfig) -> None:
    """Refuse unknown schedule names (did-you-mean)."""
    if cfg.name not in SCHEDULE_NAMES:
        raise ConfigError(unknown_name_message("schedule", cfg.name, list(SCHEDULE_NAMES)),
                          where="train.schedule.name")


class Schedule:
    """LR = peak · warm-up · shape(step) · plateau factor · guard factor, set on every param group.

    ``step()`` after each optimizer step; ``observe(value)`` after each validation (used by
    ``plateau`` only; lower is better); ``scale(f)`` multiplies the LR for good (rollback).

    Args:
        optimizer: whose groups' ``lr`` this sets (their initial ``lr`` is the peak).
        cfg: the recipe's schedule.
        total_steps: optimizer steps of the whole run.
        steps_per_epoch: optimizer steps per epoch (``exponential`` and ``step`` count epochs).
    """

    def __init__(self, optimizer: torch.optim.Optimizer, cfg: ScheduleConfig, total_steps: int,
                 steps_per_epoch: int) -> None:
        check_schedule_config(cfg)
        self.optimizer = optimizer
        self.cfg = cfg
        self.total_steps = max(1, total_steps)
        self.steps_per_epoch = max(1, steps_per_epoch)
        self.warmup = round(cfg.warmup * self.total_steps)
        self.peaks = [float(g.get("initial_lr", g["lr"])) for g in optimizer.param_groups]
        for group, peak in zip(optimizer.param_groups, self.peaks):
            group["initial_lr"] = peak
        self.step_count = 0
        self.plateau_factor = 1.0
        self.guard_factor = 1.0
        self.best: float | None = None
        self.bad_validations = 0
        self._apply()

    def factor(self, step: int) -> float:
        """The LR multiplier at optimizer step ``step`` (0-based) before plateau and guard factors."""
        if self.warmup and step < self.warmup:
            return (step + 1) / self.warmup
        after = step - self.warmup
        progress = min(1.0, after / max(1, self.total_steps - self.warmup))
        floor = self.cfg.min_lr_ratio
        name = self.cfg.name
        if name == "cosine":
            return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))
        if name == "linear":
            return floor + (1.0 - floor) * (1.0 - progress)
        if name == "exponential":
            return float(self.cfg.gamma ** (after / self.steps_per_epoch))
        if name == "step":
            return float(self.cfg.gamma ** (after // (self.steps_per_epoch * self.cfg.step_epochs)))
        return 1.0  # constant, plateau

    def _apply(self) -> None:
        f = self.factor(self.step_count) * self.plateau_factor * self.guard_factor
        for group, peak in zip(self.optimizer.param_groups, self.peaks):
            group["lr"] = peak * f

    def step(self) -> None:
        """Advance one optimizer step."""
        self.step_count += 1
        self._apply()

    def observe(self, value: float) -> None:
        """A validation loss (lower is better): ``plateau`` lowers the LR after ``patience`` stalls."""
        if self.cfg.name != "plateau" or not math.isfinite(value):
            return
        if self.best is None or value < self.best:
            self.best, self.bad_validations = value, 0
            return
        self.bad_validations += 1
        if self.bad_validations > self.cfg.patience:
            self.plateau_factor = max(self.cfg.min_lr_ratio, self.plateau_factor * self.cfg.gamma)
            self.bad_validations = 0
            self._apply()

    def scale(self, factor: float) -> None:
        """Multiply the LR from now on (the NaN guard's rollback)."""
        self.guard_factor *= factor
        self._apply()

    def get_last_lr(self) -> list[float]:
        """Current LR of each param group (torch ``LRScheduler`` spelling)."""
        return [float(g["lr"]) for g in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        """Plain JSON numbers."""
        return {"step_count": self.step_count, "plateau_factor": self.plateau_factor,
                "guard_factor": self.guard_factor, "best": self.best, "bad_validations": self.bad_validations}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` gave."""
        self.step_count = int(state["step_count"])
        self.plateau_factor = float(state["plateau_factor"])
        self.guard_factor = float(state["guard_factor"])
        self.best = None if state["best"] is None else float(state["best"])
        self.bad_validations = int(state["bad_validations"])
        self._apply()


def build_schedule(optimizer: torch.optim.Optimizer, cfg: ScheduleConfig, total_steps: int,
                   steps_per_epoch: int | None = None) -> Schedule:
    """Linear warm-up over ``warmup`` of the steps, then the named shape (see :class:`Schedule`)."""
    return Schedule(optimizer, cfg, total_steps, steps_per_epoch or total_steps)


__all__ = ["Schedule", "build_optimizer", "build_schedule", "check_optimizer_config", "check_schedule_config",
           "decay_split", "parameter_groups"]

"""Optimizers and learning-rate schedules built from the recipe's names."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from modelyard.config.train import OptimizerConfig, ScheduleConfig
from modelyard.core.errors import ConfigError
from modelyard.core.registry import unknown_name_message

_NO_DECAY_TYPES = (nn.LayerNorm, nn.BatchNorm1d, nn.BatchNorm2d, nn.GroupNorm, nn.Embedding)


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict[str, object]]:
    """Two groups: weights that decay, and biases / norm / embedding parameters that do not."""
    decay, no_decay = [], []
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            if not param.requires_grad:
                continue
            if name.endswith("bias") or isinstance(module, _NO_DECAY_TYPES) or param.ndim < 2:
                no_decay.append(param)
            else:
                decay.append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "adamw": lambda groups, lr: torch.optim.AdamW(groups, lr=lr),
    "adam": lambda groups, lr: torch.optim.Adam(groups, lr=lr),
    "sgd": lambda groups, lr: torch.optim.SGD(groups, lr=lr, momentum=0.9),
}


def build_optimizer(model: nn.Module, cfg: OptimizerConfig) -> torch.optim.Optimizer:
    """The optimizer named in ``cfg`` over ``model``'s trainable parameters."""
    if cfg.name not in OPTIMIZERS:
        raise ConfigError(unknown_name_message("optimizer", cfg.name, sorted(OPTIMIZERS)), where="train.optimizer.name")
    return OPTIMIZERS[cfg.name](parameter_groups(model, cfg.weight_decay), cfg.lr)


def _shape(name: str) -> Callable[[float], float]:
    """The decay shape after warm-up, as a function of progress in [0, 1]."""
    shapes: dict[str, Callable[[float], float]] = {
        "cosine": lambda p: 0.5 * (1.0 + math.cos(math.pi * p)),
        "linear": lambda p: 1.0 - p,
        "constant": lambda p: 1.0,
    }
    if name not in shapes:
        raise ConfigError(unknown_name_message("schedule", name, sorted(shapes)), where="train.schedule.name")
    return shapes[name]


def build_schedule(optimizer: torch.optim.Optimizer, cfg: ScheduleConfig,
                   total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over ``warmup`` of the steps, then the named decay to zero (or constant)."""
    shape = _shape(cfg.name)
    warmup = round(cfg.warmup * total_steps)

    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        return max(0.0, shape(min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)

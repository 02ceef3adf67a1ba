"""The recipe's ``train:`` section (stage 2, fit)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from modelyard.config.base import Section


class OptimizerConfig(Section):
    """The optimizer and its main hyperparameters."""

    name: str = Field(default="adamw", description="Optimizer name: adamw, adam, sgd.")
    lr: float = Field(default=1e-3, gt=0.0, description="Peak learning rate.")
    weight_decay: float = Field(default=0.01, ge=0.0, description="Decoupled weight decay (not on norms/biases).")


class ScheduleConfig(Section):
    """The learning-rate schedule."""

    name: str = Field(default="cosine", description="Schedule name: cosine, linear, constant.")
    warmup: float = Field(default=0.0, ge=0.0, lt=1.0, description="Fraction of steps spent warming up linearly.")


class TrainConfig(Section):
    """Stage 2: fit a model on the train split, validating on the valid split."""

    epochs: int = Field(default=10, ge=1, description="Passes over the training split.")
    batch_size: int = Field(default=64, ge=1, description="Samples per optimizer step.")
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig, description="Optimizer.")
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig, description="LR schedule.")
    grad_clip: float | None = Field(default=1.0, gt=0.0, description="Clip the gradient norm to this (null: off).")
    device: Literal["auto", "cpu", "cuda"] = Field(default="auto", description="Where to train; auto picks CUDA if present.")
    log_every_steps: int = Field(default=10, ge=1, description="Write training metrics every N steps.")

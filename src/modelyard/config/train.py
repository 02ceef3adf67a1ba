"""The recipe's ``train:`` section (stage 2, fit)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from modelyard.config.base import Section

OPTIMIZER_NAMES = ("adamw", "adam", "sgd", "adagrad", "rmsprop")
SCHEDULE_NAMES = ("constant", "linear", "cosine", "exponential", "step", "plateau")


class OptimizerConfig(Section):
    """The optimizer and its main hyperparameters."""

    name: str = Field(default="adamw", description=f"Optimizer name: {', '.join(OPTIMIZER_NAMES)}.")
    lr: float = Field(default=1e-3, gt=0.0, description="Peak learning rate.")
    weight_decay: float = Field(
        default=0.01, ge=0.0,
        description="Weight decay on weight matrices only (never on norms, biases, embeddings); decoupled for adamw.")
    momentum: float = Field(default=0.9, ge=0.0, lt=1.0, description="Momentum (sgd, rmsprop).")
    nesterov: bool = Field(default=False, description="Nesterov momentum (sgd).")
    betas: tuple[float, float] = Field(default=(0.9, 0.999),
                                       description="Adam/AdamW moment decay rates (beta1, beta2).")
    eps: float = Field(default=1e-8, gt=0.0, description="Denominator epsilon (adam, adamw, adagrad, rmsprop).")


class ScheduleConfig(Section):
    """The learning-rate schedule: a linear warm-up, then a decay shape (all stepped per optimizer step)."""

    name: str = Field(default="cosine", description=f"Schedule name: {', '.join(SCHEDULE_NAMES)}.")
    warmup: float = Field(default=0.0, ge=0.0, lt=1.0, description="Fraction of steps spent warming up linearly.")
    gamma: float = Field(default=0.5, gt=0.0, le=1.0,
                         description="exponential: LR factor per epoch; step: factor every step_epochs; "
                                     "plateau: factor when the metric stalls.")
    step_epochs: int = Field(default=1, ge=1, description="step: epochs between LR drops.")
    patience: int = Field(default=2, ge=0, description="plateau: validations without improvement before a drop.")
    min_lr_ratio: float = Field(default=0.0, ge=0.0, le=1.0,
                                description="Floor of the LR as a fraction of the peak (cosine, linear, plateau).")


class RegularizationConfig(Section):
    """Penalties and smoothing added to the loss (dropout is a model parameter)."""

    l1: float = Field(default=0.0, ge=0.0, description="L1 penalty coefficient on weight matrices.")
    l2: float = Field(default=0.0, ge=0.0, description="L2 penalty coefficient (sum of squares) on weight matrices.")
    label_smoothing: float = Field(default=0.0, ge=0.0, lt=1.0, description="Label smoothing (classification).")


class ValidationConfig(Section):
    """When the validation split is scored."""

    every_steps: int | None = Field(default=None, ge=1,
                                    description="Validate every N optimizer steps (null: each epoch).")


class EarlyStoppingConfig(Section):
    """Stop when a validation metric stops improving; the best checkpoint is kept either way."""

    metric: str = Field(default="valid/loss", description="Metric to watch, e.g. valid/loss or valid/accuracy.")
    mode: Literal["auto", "min", "max"] = Field(
        default="auto", description="min or max; auto: max for accuracy-like metrics, min for losses.")
    patience: int = Field(default=3, ge=1, description="Validations without improvement before stopping.")
    min_delta: float = Field(default=0.0, ge=0.0, description="Smallest change that counts as an improvement.")


class CheckpointConfig(Section):
    """Atomic checkpoints for exact resume (model, optimizer, schedule, scaler, RNG, data position)."""

    enabled: bool = Field(default=True, description="Write checkpoints (needed for --resume and for rollback).")
    every_steps: int | None = Field(default=None, ge=1,
                                    description="Checkpoint every N steps (null: each epoch's end).")
    keep: int = Field(default=2, ge=1, description="How many recent checkpoints to keep (the best one is kept apart).")
    min_interval_s: float = Field(
        default=30.0, ge=0.0,
        description="Epoch-end checkpoints only after this many seconds since the last one (tiny runs skip them); "
                    "every_steps ignores it.")


class GuardConfig(Section):
    """What happens when the loss or a gradient goes NaN/Inf, or the loss spikes."""

    on_nonfinite: Literal["stop", "skip", "rollback"] = Field(
        default="stop",
        description="stop with the step named; skip the batch; or roll back to the last checkpoint with a lower LR.")
    rollback_lr_factor: float = Field(default=0.5, gt=0.0, lt=1.0, description="LR factor applied on each rollback.")
    max_rollbacks: int = Field(default=3, ge=1, description="Give up (stop) after this many rollbacks.")
    spike_factor: float | None = Field(
        default=10.0, gt=1.0,
        description="A loss above this many times the recent median is logged as a spike (null: off).")
    spike_window: int = Field(default=50, ge=5, description="Steps in the recent-loss window of spike detection.")


class TrainConfig(Section):
    """Stage 2: fit a model on the train split, validating on the valid split."""

    epochs: int = Field(default=10, ge=1, description="Passes over the training split.")
    batch_size: Annotated[int, Field(ge=1)] | Literal["auto"] = Field(
        default=64,
        description="Samples per optimizer step (all accumulated micro-batches); auto: the largest that fits the "
                    "memory budget, chosen by `yard plan` before training (see docs/distributed.md).")
    grad_accumulation: int = Field(
        default=1, ge=1, description="Micro-batches per optimizer step (batch_size must be divisible by it).")
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig, description="Optimizer.")
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig, description="LR schedule.")
    regularization: RegularizationConfig = Field(default_factory=RegularizationConfig,
                                                 description="L1/L2 penalties and label smoothing.")
    grad_clip: float | None = Field(default=1.0, gt=0.0, description="Clip the gradient norm to this (null: off).")
    precision: Literal["fp32", "bf16", "fp16"] = Field(
        default="fp32", description="fp32; bf16 autocast (CPU or CUDA); fp16 autocast + grad scaler (CUDA only).")
    compile: bool = Field(default=False, description="torch.compile the model (falls back to eager if it fails).")
    parallel: Literal["ddp", "fsdp"] = Field(
        default="ddp",
        description="Under torchrun (--nproc > 1): ddp replicates the model on every rank; fsdp shards weights, "
                    "gradients and optimizer state across ranks, for models whose training state does not fit one "
                    "device (see docs/distributed.md). Ignored in one process.")
    deterministic: bool = Field(default=False, description="Deterministic kernels: CPU runs repeat bit for bit.")
    device: Literal["auto", "cpu", "cuda"] = Field(default="auto",
                                                   description="Where to train; auto picks CUDA if present.")
    log_every_steps: int = Field(default=10, ge=1, description="Write training metrics every N steps.")
    validation: ValidationConfig = Field(default_factory=ValidationConfig, description="Validation cadence.")
    early_stopping: EarlyStoppingConfig | None = Field(default=None, description="Early stopping (null: off).")
    checkpoint: CheckpointConfig = Field(default_factory=CheckpointConfig, description="Checkpoints for resume.")
    guards: GuardConfig = Field(default_factory=GuardConfig, description="NaN/Inf and loss-spike guards.")

    @model_validator(mode="after")
    def _accumulation_divides_batch(self) -> TrainConfig:
        if isinstance(self.batch_size, int) and self.batch_size % self.grad_accumulation:
            raise ValueError(f"batch_size {self.batch_size} is not divisible by grad_accumulation "
                             f"{self.grad_accumulation}")
        return self

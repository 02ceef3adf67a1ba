"""What a training step holds in memory, counted from the built model (no training).

The model is built on CPU exactly as the train stage builds it, then one forward and
backward pass at two tiny batch sizes runs under ``saved_tensors_hooks`` (every tensor
autograd keeps for backward, deduplicated by storage, parameters excluded) and
``FlopCounterMode``. The difference between the two batch sizes gives the per-sample
activation bytes and FLOPs; what does not scale with the batch is kept apart.

Bytes per element and state per parameter, by precision and optimizer:

- weights: fp32 master weights always (autocast computes in bf16/fp16 but keeps fp32
  parameters), plus a half-precision copy of the weights cached during an autocast forward;
- gradients: one fp32 value per trainable parameter (LoRA: only the adapters are trainable);
- optimizer state: adam/adamw 2, sgd/rmsprop 1 (with momentum), adagrad 1 fp32 value per
  trainable parameter;
- the loop keeps a copy of the best epoch's weights (one more fp32 copy of every parameter);
- activations: the saved tensors, halved under bf16/fp16 autocast; with activation
  checkpointing only block inputs are kept plus one block being recomputed (estimated as
  ``2 / blocks`` of the full amount).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import psutil
import torch
from torch import nn

from modelyard.core.errors import ConfigError
from modelyard.train.loop import Batch
from modelyard.train.objectives import Objective

MB = 1024 * 1024
_STATE_PER_PARAM = {"adamw": 2, "adam": 2, "sgd": 1, "rmsprop": 1, "adagrad": 1}


@dataclass(frozen=True)
class ModelFootprint:
    """Counts taken from one built model."""

    parameters: int
    trainable: int
    parameter_bytes: int
    activation_bytes_per_sample: float
    activation_bytes_fixed: float
    flops_per_sample: float          # forward + backward, one sample
    blocks: int                      # top-level children with parameters (checkpointing granularity)
    lora_trainable: int              # trainable parameters if every Linear got a rank-8 LoRA adapter


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes of one training process at a batch size, by part."""

    baseline: float       # interpreter, torch, modelyard, the dataset in memory (measured)
    weights: float
    gradients: float
    optimizer: float
    best_copy: float
    activations: float
    runtime: float = 0.0  # kernels paged in, thread pools, allocator caches of running steps (measured)

    @property
    def total(self) -> float:
        """Predicted peak resident memory."""
        return (self.baseline + self.runtime + self.weights + self.gradients + self.optimizer + self.best_copy
                + self.activations)

    def as_mb(self) -> dict[str, float]:
        """Every part in MiB, rounded (for tables and the store)."""
        parts = {"baseline": self.baseline, "runtime": self.runtime, "weights": self.weights,
                 "gradients": self.gradients,
                 "optimizer": self.optimizer, "best_copy": self.best_copy, "activations": self.activations,
                 "total": self.total}
        return {k: round(v / MB, 1) for k, v in parts.items()}


def footprint(model: nn.Module, batch: Batch, objective: Objective) -> ModelFootprint:
    """Measure saved-activation bytes and FLOPs of one step at 2 and 4 rows of ``batch``.

    Args:
        model: the built model on CPU (left in train mode, gradients cleared).
        batch: at least 4 rows as ``(inputs, targets)`` (``TensorData.take``).
        objective: the stage's objective (summed loss + count).
    """
    from torch.utils.flop_counter import FlopCounterMode

    params = list(model.parameters())
    param_storages = {p.untyped_storage().data_ptr() for p in params}
    measured: dict[int, tuple[float, float]] = {}
    inputs, targets = batch
    model.train()
    for rows in (2, 4):
        saved: dict[int, int] = {}

        def pack(t: torch.Tensor, saved: dict[int, int] = saved) -> torch.Tensor:
            storage = t.untyped_storage()
            if storage.data_ptr() not in param_storages:
                saved[storage.data_ptr()] = storage.nbytes()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), FlopCounterMode(display=False) as flops:
            outputs = model(*(t[:rows] for t in inputs))
            (objective(outputs, targets[:rows]) / objective.count(targets[:rows])).backward()
        measured[rows] = (float(sum(saved.values())), float(flops.get_total_flops()))
    model.zero_grad(set_to_none=True)
    per_sample_act = max((measured[4][0] - measured[2][0]) / 2, 0.0)
    per_sample_flops = max((measured[4][1] - measured[2][1]) / 2, 0.0)
    trainable = sum(p.numel() for p in params if p.requires_grad)
    lora = sum(8 * (m.in_features + m.out_features) for m in model.modules() if isinstance(m, nn.Linear))
    blocks = sum(1 for child in model.children() if any(True for _ in child.parameters()))
    return ModelFootprint(parameters=sum(p.numel() for p in params), trainable=trainable,
                          parameter_bytes=sum(p.numel() * p.element_size() for p in params),
                          activation_bytes_per_sample=per_sample_act,
                          activation_bytes_fixed=max(measured[2][0] - 2 * per_sample_act, 0.0),
                          flops_per_sample=per_sample_flops, blocks=max(blocks, 1), lora_trainable=lora)


def estimate(fp: ModelFootprint, *, batch: int, baseline: float, optimizer: str = "adamw",
             precision: str = "fp32", checkpointing: bool = False, lora: bool = False,
             runtime: float = 0.0) -> MemoryEstimate:
    """Predicted peak memory of a training process (see the module docstring for the rules).

    Args:
        fp: the model's footprint.
        batch: samples per forward pass (the micro-batch under gradient accumulation).
        baseline: measured resident bytes of a process that has loaded the data and built nothing.
        optimizer: the recipe's optimizer name.
        precision: fp32, bf16 or fp16.
        checkpointing: activation checkpointing per top-level block.
        lora: train rank-8 adapters on every Linear instead of all parameters.
        runtime: measured bytes that running steps adds beyond the counted tensors (calibration).
    """
    trainable = fp.lora_trainable if lora else fp.trainable
    weights = float(fp.parameter_bytes) + (4.0 * fp.lora_trainable if lora else 0.0)
    if precision != "fp32":
        weights += fp.parameter_bytes / 2          # half-precision weight copies cached by autocast
    activations = fp.activation_bytes_fixed + fp.activation_bytes_per_sample * batch
    if precision != "fp32":
        activations /= 2
    if checkpointing and fp.blocks > 2:
        activations *= 2 / fp.blocks
    return MemoryEstimate(baseline=baseline, weights=weights, gradients=4.0 * trainable,
                          optimizer=4.0 * trainable * _STATE_PER_PARAM.get(optimizer, 2),
                          best_copy=4.0 * trainable, activations=activations, runtime=runtime)


def parse_bytes(text: str) -> int:
    """``8GB``, ``512MiB``, ``1.5G``, ``1000000`` → bytes (GB and GiB are both powers of 1024).

    Raises:
        ConfigError: not a positive size with a known unit.
    """
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kmgt]?)(i?b)?\s*", text, flags=re.IGNORECASE)
    if not match or float(match.group(1)) <= 0:
        raise ConfigError(f"--memory must be a size like 8GB or 512MB (got {text!r})", where="--memory")
    power = " kmgt".index((match.group(2) or " ").lower())
    return int(float(match.group(1)) * 1024**power)


def free_memory() -> int:
    """Bytes this machine can give a new process now (psutil's ``available``)."""
    return int(psutil.virtual_memory().available)

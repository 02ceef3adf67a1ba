"""Losses as (sum, count) pairs, so gradient accumulation is exact.

A mean loss per micro-batch, averaged over micro-batches, weighs a short (or padded)
micro-batch as much as a full one. Instead each objective returns the *sum* of the
per-sample (per-token) losses, and :meth:`Objective.count` says what the sum is divided by,
computed from the targets alone. The loop adds the counts of all micro-batches of a step
first, then backpropagates ``sum_i / total`` for each: exactly the gradient of one batch
holding all of them.

| task               | outputs       | targets             | count                       |
|--------------------|---------------|---------------------|-----------------------------|
| classification     | (B, K) logits | (B,) long           | B, or Σ class weights       |
| multi-label        | (B, K) logits | (B, K) 0/1 float    | B · K (as BCE's mean)       |
| regression         | (B, 1)        | (B,) float          | B                           |
| language-modeling  | (B, T, V)     | (B, T) long, -100 = ignore | tokens that are not ignored |
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

IGNORE_INDEX = -100


class Objective(nn.Module):
    """Base: ``forward(outputs, targets) -> summed loss``; ``count(targets) -> divisor``."""

    def count(self, targets: torch.Tensor) -> torch.Tensor:
        """What the summed loss of ``targets`` is divided by (a 0-dim float tensor)."""
        return torch.tensor(float(targets.shape[0]))

    def mean(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The mean loss of one batch (for evaluation)."""
        return self(outputs, targets) / self.count(targets).clamp(min=1e-12).to(outputs.device)


class ClassificationObjective(Objective):
    """Cross-entropy with optional class weights and label smoothing (as ``nn.CrossEntropyLoss``'s mean)."""

    def __init__(self, class_weights: list[float] | None = None, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.weight: torch.Tensor | None
        weight = None if class_weights is None else torch.tensor(class_weights, dtype=torch.float32)
        self.register_buffer("weight", weight, persistent=False)
        self.label_smoothing = label_smoothing

    def forward(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(outputs.float(), targets, weight=self.weight, reduction="sum",
                               label_smoothing=self.label_smoothing)

    def count(self, targets: torch.Tensor) -> torch.Tensor:
        if self.weight is None:
            return torch.tensor(float(targets.shape[0]))
        return self.weight.to(targets.device)[targets].sum().float().cpu()


class MultiLabelObjective(Objective):
    """Binary cross-entropy over K independent labels."""

    def forward(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(outputs.float(), targets.float(), reduction="sum")

    def count(self, targets: torch.Tensor) -> torch.Tensor:
        return torch.tensor(float(targets.numel()))


class RegressionObjective(Objective):
    """Squared error between (B, 1) outputs and (B,) targets."""

    def forward(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(outputs.float().squeeze(-1), targets.float(), reduction="sum")


class LanguageModelObjective(Objective):
    """Next-token cross-entropy: the targets are the inputs shifted left, padding set to ``-100``."""

    def __init__(self, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.label_smoothing = label_smoothing

    def forward(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        vocab = outputs.shape[-1]
        return F.cross_entropy(outputs.float().reshape(-1, vocab), targets.reshape(-1), ignore_index=IGNORE_INDEX,
                               reduction="sum", label_smoothing=self.label_smoothing)

    def count(self, targets: torch.Tensor) -> torch.Tensor:
        return (targets != IGNORE_INDEX).sum().float().cpu()


def next_token_targets(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Targets (B, T) for a causal LM: ``targets[:, t] = input_ids[:, t + 1]``; the last and padded ones ignored."""
    targets = torch.full_like(input_ids, IGNORE_INDEX)
    targets[:, :-1] = input_ids[:, 1:].masked_fill(attention_mask[:, 1:] == 0, IGNORE_INDEX)
    return targets


def build_objective(task: str, *, class_weights: list[float] | None = None, label_smoothing: float = 0.0) -> Objective:
    """The objective of ``task`` (classification, multi-label, regression, language-modeling)."""
    if task == "classification":
        return ClassificationObjective(class_weights, label_smoothing)
    if task == "multi-label":
        return MultiLabelObjective()
    if task == "language-modeling":
        return LanguageModelObjective(label_smoothing)
    return RegressionObjective()


__all__ = ["IGNORE_INDEX", "ClassificationObjective", "LanguageModelObjective", "MultiLabelObjective", "Objective",
           "RegressionObjective", "build_objective", "next_token_targets"]

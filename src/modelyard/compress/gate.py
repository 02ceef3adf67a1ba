"""The accuracy budget: score a model on held-out rows, compare with its parent, accept or reject."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from modelyard.core.errors import DataError
from modelyard.plugins import METRICS, load_builtins
from modelyard.plugins.metrics import info
from modelyard.runtime.predict import probabilities
from modelyard.train.loop import TensorData


@torch.inference_mode()
def outputs_of(module: nn.Module, data: TensorData, *, batch_size: int = 256) -> np.ndarray:
    """The module's outputs for every row of ``data``, on CPU as float32 (any backend: torch, int8, ONNX)."""
    module.eval()
    outs = []
    for start in range(0, len(data), batch_size):
        inputs, _ = data.take(torch.arange(start, min(start + batch_size, len(data))))
        outs.append(module(*inputs).float().cpu().numpy())
    return np.concatenate(outs)


def score(module: nn.Module, data: TensorData, *, task: str, metrics: Sequence[str]) -> dict[str, float]:
    """The named metrics of ``module`` on ``data`` (classification: from softmax probabilities).

    Raises:
        DataError: the split is empty.
    """
    if len(data) == 0:
        raise DataError("the held-out split is empty: a compressed variant cannot be checked against its budget")
    load_builtins()
    out = outputs_of(module, data)
    y = data.targets.numpy()
    if task == "classification":
        prob = probabilities(out)
        return {m: float(METRICS.get(m)(y_true=y, y_pred=prob.argmax(axis=1), y_prob=prob)) for m in metrics}
    pred = out.squeeze(-1)
    return {m: float(METRICS.get(m)(y_true=y, y_pred=pred)) for m in metrics}


def metric_drop(parent: float, variant: float, *, metric: str) -> float:
    """How much worse ``variant`` is than ``parent``, in points (hundredths of the metric); negative = better."""
    sign = 1.0 if info(metric).higher_is_better else -1.0
    return round(sign * (parent - variant) * 100.0, 6)


def within_budget(drop: float, max_drop: float) -> bool:
    """True when a drop (points) is inside the budget (a tiny float tolerance keeps exact ties inside)."""
    return drop <= max_drop + 1e-9


__all__ = ["metric_drop", "outputs_of", "score", "within_budget"]

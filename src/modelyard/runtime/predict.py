"""Batched inference over numpy inputs with a loaded model."""

from __future__ import annotations

import numpy as np
import torch

from modelyard.runtime.package import LoadedModel


@torch.inference_mode()
def predict_outputs(model: LoadedModel, inputs: np.ndarray, *, batch_size: int = 256) -> np.ndarray:
    """Raw outputs (logits, or values for regression) for ``inputs``, batch by batch, as float32."""
    # int8 and ONNX Runtime variants have no torch parameters: they take CPU tensors.
    first = next(iter(model.module.parameters()), None)
    device = first.device if first is not None else torch.device("cpu")
    outs = []
    for start in range(0, len(inputs), batch_size):
        batch = torch.as_tensor(inputs[start:start + batch_size], device=device)
        outs.append(model.module(batch).float().cpu().numpy())
    if not outs:
        return np.zeros((0, max(1, len(model.spec.get("label_names", [])))), dtype=np.float32)
    return np.concatenate(outs)


def probabilities(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, numerically stable."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)

"""Gradient attributions with Captum: Integrated Gradients, saliency, and token IG on embeddings.

Integrated Gradients (Sundararajan et al., 2017) satisfies completeness: the attributions
of one input sum to ``f(x) − f(baseline)`` for the explained output. The gap, Captum's
convergence delta, measures the integral's error and is reported; more ``steps`` shrink it.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def _targets(target: np.ndarray | None, n: int) -> torch.Tensor | None:
    return None if target is None else torch.as_tensor(np.asarray(target, dtype=np.int64)).reshape(n)




def integrated_gradients(module: nn.Module, x: np.ndarray, target: np.ndarray | None, *,
                         baseline: float | np.ndarray = 0.0, steps: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """IG attributions (same shape as ``x``) and the per-row completeness delta.

    Args:
        module: the model (eval mode); outputs (B, K).
        x: inputs (N, …) float32.
        target: the output index explained per row (None: output 0, e.g. regression).
        baseline: the reference input (a constant or an array broadcastable to ``x``).
        steps: Riemann steps of the path integral (Gauss-Legendre in Captum).
    """
    from captum.attr import IntegratedGradients

    inputs = torch.as_tensor(np.ascontiguousarray(x, dtype=np.float32))
    base = torch.as_tensor(np.broadcast_to(np.asarray(baseline, dtype=np.float32), inputs.shape).copy())
    explainer = IntegratedGradients(module)
    tgt = _targets(target, len(x))
    attributions, delta = explainer.attribute(inputs, baselines=base, target=tgt if tgt is not None else 0,
                                              n_steps=steps, return_convergence_delta=True,
                                              internal_batch_size=max(1, min(len(x) * steps, 512)))
    return attributions.detach().numpy(), delta.detach().abs().numpy()


def saliency(module: nn.Module, x: np.ndarray, target: np.ndarray | None) -> np.ndarray:
    """|∂ output / ∂ input| per input value (Simonyan et al., 2014)."""
    from captum.attr import Saliency

    inputs = torch.as_tensor(np.ascontiguousarray(x, dtype=np.float32)).requires_grad_()
    tgt = _targets(target, len(x))
    return Saliency(module).attribute(inputs, target=tgt if tgt is not None else 0).detach().numpy()  # type: ignore[no-any-return]


def token_embedding(module: nn.Module, vocab_size: int | None = None) -> nn.Embedding:
    """The module's token embedding.

    A Hugging Face backbone's documented ``get_input_embeddings()`` (found on the module or
    any submodule, e.g. ``PretrainedClassifier.backbone``, LoRA-wrapped or not) comes first;
    otherwise the first ``nn.Embedding`` (with ``vocab_size`` rows when given), which is the
    token table of the built-in models (``tok_emb`` before ``pos_emb``, ``embedding``).

    Raises:
        ValueError: the model has no such layer.
    """
    for child in module.modules():
        getter = getattr(child, "get_input_embeddings", None)
        if callable(getter):
            try:
                layer = getter()
            except (NotImplementedError, AttributeError):
                continue
            if isinstance(layer, nn.Embedding) and (vocab_size is None or layer.num_embeddings >= vocab_size):
                return layer
    for child in module.modules():
        if isinstance(child, nn.Embedding) and (vocab_size is None or child.num_embeddings == vocab_size):
            return child
    raise ValueError("the model has no token embedding layer to attribute to")


def token_integrated_gradients(module: nn.Module, input_ids: np.ndarray, attention_mask: np.ndarray,
                               target: np.ndarray | None, *, pad_id: int = 0, steps: int = 32,
                               embedding: nn.Embedding | None = None,
                               internal_batch_size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """IG on the token embeddings: one attribution per token (summed over the embedding), and the delta.

    The baseline replaces every token by ``pad_id`` and keeps the attention mask, so the
    path runs from "all padding" to the text. Padding positions get zero attribution (they
    are padding at both ends of the path). The delta is ``|Σ attributions − (F(x) − F(baseline))|``.
    """
    from captum.attr import LayerIntegratedGradients

    layer = embedding or token_embedding(module)
    ids = torch.as_tensor(np.asarray(input_ids, dtype=np.int64))
    mask = torch.as_tensor(np.asarray(attention_mask, dtype=np.int64))
    base = torch.full_like(ids, pad_id)
    explainer = LayerIntegratedGradients(module, layer)
    tgt = _targets(target, len(ids))
    attributions, delta = explainer.attribute(ids, baselines=base, additional_forward_args=(mask,),
                                              target=tgt if tgt is not None else 0, n_steps=steps,
                                              return_convergence_delta=True,
                                              internal_batch_size=internal_batch_size)
    return attributions.sum(dim=-1).detach().numpy(), delta.detach().abs().numpy()


def model_outputs(module: nn.Module, x: np.ndarray) -> np.ndarray:
    """Forward pass on numpy inputs without gradients."""
    with torch.inference_mode():
        return module(torch.as_tensor(np.ascontiguousarray(x, dtype=np.float32))).float().numpy()  # type: ignore[no-any-return]


__all__ = ["integrated_gradients", "model_outputs", "saliency", "token_embedding", "token_integrated_gradients"]

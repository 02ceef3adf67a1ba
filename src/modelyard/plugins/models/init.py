"""Weight initialisation schemes for models trained from scratch.

``init_weights(model, "xavier")`` re-initialises every linear, convolution, embedding and
recurrent layer of ``model`` in place. ``"default"`` leaves PyTorch's (or the plugin's own)
initialisation alone, so a recipe can always name a scheme.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
from torch import nn

InitScheme = Literal["default", "xavier", "kaiming", "normal"]
INIT_SCHEMES: tuple[str, ...] = get_args(InitScheme)

# GPT-2 / BERT use N(0, 0.02) for every weight matrix; we use the same for "normal".
NORMAL_STD = 0.02


def init_weights(module: nn.Module, scheme: InitScheme = "default") -> nn.Module:
    """Re-initialise the weights of ``module`` and its children in place.

    - ``default``: no change (PyTorch's per-layer defaults or the plugin's own choice).
    - ``xavier``: Glorot-uniform weight matrices, orthogonal recurrent (hidden-to-hidden) matrices.
    - ``kaiming``: He-normal (fan-in, ReLU gain) weight matrices, orthogonal recurrent matrices.
    - ``normal``: N(0, 0.02) for every weight matrix (GPT-2/BERT style).

    In every scheme but ``default``: biases are zero, embeddings are N(0, 0.02) with the
    padding row zeroed, LayerNorm/BatchNorm are weight 1 / bias 0. A parameter shared by
    two modules (tied embeddings) is initialised once, by the first module that owns it.

    Args:
        module: the model (or any sub-module).
        scheme: one of ``default``, ``xavier``, ``kaiming``, ``normal``.

    Returns:
        ``module`` itself, for chaining.

    Raises:
        ValueError: unknown scheme.
    """
    if scheme not in INIT_SCHEMES:
        raise ValueError(f"unknown init scheme {scheme!r} (known: {', '.join(INIT_SCHEMES)})")
    if scheme == "default":
        return module
    seen: set[int] = set()

    def fresh(param: torch.Tensor | None) -> bool:
        # Tied weights (GPT's embedding == output projection) must not be initialised twice.
        if param is None or id(param) in seen:
            return False
        seen.add(id(param))
        return True

    with torch.no_grad():
        for sub in module.modules():
            if isinstance(sub, nn.Embedding):
                if fresh(sub.weight):
                    nn.init.normal_(sub.weight, std=NORMAL_STD)
                    if sub.padding_idx is not None:
                        sub.weight[sub.padding_idx].zero_()
            elif isinstance(sub, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)):
                if fresh(sub.weight):
                    _init_matrix(sub.weight, scheme)
                if sub.bias is not None and fresh(sub.bias):
                    nn.init.zeros_(sub.bias)
            elif isinstance(sub, nn.RNNBase):
                for name, param in sub.named_parameters(recurse=False):
                    if not fresh(param):
                        continue
                    if name.startswith("bias"):
                        nn.init.zeros_(param)
                    elif name.startswith("weight_hh") and scheme != "normal":
                        # Orthogonal recurrent matrices keep the hidden state's norm through time
                        # (Saxe et al. 2014); each gate's block gets its own orthogonal matrix.
                        rows, cols = param.shape
                        blocks = param.chunk(rows // cols, dim=0) if rows % cols == 0 else (param,)
                        for block in blocks:
                            nn.init.orthogonal_(block)
                    else:
                        _init_matrix(param, scheme)
            elif isinstance(sub, (nn.LayerNorm, nn.modules.batchnorm._NormBase, nn.GroupNorm)):
                if sub.weight is not None and fresh(sub.weight):
                    nn.init.ones_(sub.weight)
                if sub.bias is not None and fresh(sub.bias):
                    nn.init.zeros_(sub.bias)
    return module


def _init_matrix(weight: torch.Tensor, scheme: str) -> None:
    if scheme == "xavier":
        nn.init.xavier_uniform_(weight)
    elif scheme == "kaiming":
        nn.init.kaiming_normal_(weight, nonlinearity="relu")
    else:
        nn.init.normal_(weight, std=NORMAL_STD)


__all__ = ["INIT_SCHEMES", "NORMAL_STD", "InitScheme", "init_weights"]

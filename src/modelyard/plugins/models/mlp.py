"""``mlp``: a multi-layer perceptron for tabular features."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from modelyard.plugins.models import register_model
from modelyard.plugins.models.init import InitScheme, init_weights


@register_model("mlp", modality="tabular")
def mlp(*, num_features: int, num_outputs: int, hidden: Sequence[int] = (128, 64), dropout: float = 0.1,
        batch_norm: bool = False, init: InitScheme = "default") -> nn.Module:
    """Linear → (BatchNorm) → GELU → Dropout blocks, then a linear head.

    Args:
        num_features: input width F.
        num_outputs: classes (or 1 for regression).
        hidden: widths of the hidden layers.
        dropout: dropout after each hidden layer.
        batch_norm: add BatchNorm1d after each hidden linear layer.
        init: weight initialisation (``default`` keeps PyTorch's; xavier, kaiming, normal).
    """
    layers: list[nn.Module] = []
    width = num_features
    for size in hidden:
        layers.append(nn.Linear(width, int(size)))
        if batch_norm:
            layers.append(nn.BatchNorm1d(int(size)))
        layers += [nn.GELU(), nn.Dropout(dropout)]
        width = int(size)
    layers.append(nn.Linear(width, num_outputs))
    return init_weights(nn.Sequential(*layers), init)

"""``mlp``: a multi-layer perceptron for tabular features; ``image-mlp``: the same over flattened pixels."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from modelyard.plugins.models import register_model
from modelyard.plugins.models.init import InitScheme, init_weights


def _layers(width: int, num_outputs: int, hidden: Sequence[int], dropout: float, batch_norm: bool) -> list[nn.Module]:
    """Linear → (BatchNorm1d) → GELU → Dropout per hidden width, then the head Linear."""
    layers: list[nn.Module] = []
    for size in hidden:
        layers.append(nn.Linear(width, int(size)))
        if batch_norm:
            layers.append(nn.BatchNorm1d(int(size)))
        layers += [nn.GELU(), nn.Dropout(dropout)]
        width = int(size)
    layers.append(nn.Linear(width, num_outputs))
    return layers


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
    return init_weights(nn.Sequential(*_layers(num_features, num_outputs, hidden, dropout, batch_norm)), init)


@register_model("image-mlp", modality="image")
def image_mlp(*, in_channels: int, image_size: Sequence[int], num_outputs: int, hidden: Sequence[int] = (128,),
              dropout: float = 0.1, batch_norm: bool = False, init: InitScheme = "default") -> nn.Module:
    """An MLP over the flattened (C, H, W) pixels: a fast student for small images of one fixed size.

    The layout is ``mlp``'s behind an ``nn.Flatten`` (so structured pruning treats both alike). A few
    matrix products instead of a stack of convolutions: on 8×8 digits it answers in a few
    hundredths of the CNN's time, and distilled from the CNN it keeps most of its accuracy.

    Args:
        in_channels: C of the (B, C, H, W) input.
        image_size: (H, W); every input must have exactly this size.
        num_outputs: classes (or 1 for regression).
        hidden: widths of the hidden layers.
        dropout: dropout after each hidden layer.
        batch_norm: add BatchNorm1d after each hidden linear layer.
        init: weight initialisation (``default`` keeps PyTorch's; xavier, kaiming, normal).
    """
    if len(image_size) != 2:
        raise ValueError(f"image_size must be (H, W), got {list(image_size)}")
    height, width = (int(side) for side in image_size)
    layers = _layers(in_channels * height * width, num_outputs, hidden, dropout, batch_norm)
    return init_weights(nn.Sequential(nn.Flatten(), *layers), init)

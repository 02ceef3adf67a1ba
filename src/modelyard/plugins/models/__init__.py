"""Model architectures.

A model plugin is a factory registered with :func:`register_model`. It takes keyword-only
arguments: the *input description* the trainer derives from the dataset, plus the
recipe's ``model.params``:

| modality | input kwargs                                    | ``forward``                         |
|----------|-------------------------------------------------|-------------------------------------|
| tabular  | ``num_features: int``                           | ``forward(x: (B, F) float)``        |
| image    | ``in_channels: int, image_size: tuple[int,int]``| ``forward(x: (B, C, H, W) float)``  |
| tokens   | ``vocab_size: int, max_length: int``            | ``forward(input_ids: (B, T) long, attention_mask)`` |

Every factory also takes ``num_outputs: int`` and returns a ``torch.nn.Module`` whose
output is logits ``(B, num_outputs)`` (regression: ``num_outputs=1``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from modelyard.plugins import MODELS

Modality = Literal["tabular", "image", "tokens"]


def register_model(name: str, *, modality: Modality) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a model factory under ``name`` for inputs of ``modality``."""

    def decorate(factory: Callable[..., Any]) -> Callable[..., Any]:
        factory.modality = modality  # type: ignore[attr-defined]
        return MODELS.register(name)(factory)

    return decorate


def modality_of(name: str) -> Modality:
    """The input modality of the registered model ``name``."""
    return MODELS.get(name).modality  # type: ignore[no-any-return]

"""Data augmentations, registered by name in :data:`~modelyard.plugins.AUGMENTATIONS`.

An augmentation plugin is a factory with keyword-only parameters (always ``p``, the
probability of changing each sample) that returns a function applied to a batch:

    augment = AUGMENTATIONS.get("rotate")(p=0.5, degrees=15)
    x, y = augment(x, y, rng)       # rng: numpy.random.Generator

| modality | ``x``                                              | ``y``                         |
|----------|----------------------------------------------------|-------------------------------|
| image    | (N, C, H, W) float32 numpy array or torch tensor   | (N,) labels or None            |
| text     | list of N strings                                  | (N,) labels or None            |
| tabular  | (N, F) float32 numpy array (preprocessed features) | (N,) labels or None            |

The output has the input's type, shape and dtype; the input is never modified; the same
``rng`` state gives the same output; ``p=0`` returns the batch unchanged. Class labels are
never changed (mixup keeps the label of the dominant sample; regression targets are
mixed). The conformance test (``tests/plugins/test_augmentations.py``) checks all of this
for every registered augmentation.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import numpy as np

from modelyard.plugins import AUGMENTATIONS

Augment = Callable[[Any, "np.ndarray | None", np.random.Generator], tuple[Any, "np.ndarray | None"]]
MODALITIES = ("image", "text", "tabular")
BUILTIN_AUGMENTATION_MODULES = (
    "modelyard.plugins.augmentations.image",
    "modelyard.plugins.augmentations.text",
    "modelyard.plugins.augmentations.arrays",
)


def register_augmentation(name: str, *, modalities: tuple[str, ...]) -> Callable[[Callable[..., Augment]],
                                                                              Callable[..., Augment]]:
    """Register an augmentation factory under ``name`` for batches of ``modalities``."""
    unknown = [m for m in modalities if m not in MODALITIES]
    if unknown:
        raise ValueError(f"unknown modality {unknown[0]!r} (known: {', '.join(MODALITIES)})")

    def decorate(factory: Callable[..., Augment]) -> Callable[..., Augment]:
        factory.modalities = modalities  # type: ignore[attr-defined]
        return AUGMENTATIONS.register(name)(factory)

    return decorate


def load_augmentations() -> None:
    """Import the built-in augmentation modules (cheap: torch is imported when an image batch is augmented)."""
    for module in BUILTIN_AUGMENTATION_MODULES:
        importlib.import_module(module)


def modalities_of(name: str) -> tuple[str, ...]:
    """The modalities the registered augmentation ``name`` accepts."""
    return tuple(getattr(AUGMENTATIONS.get(name), "modalities", ()))


def selected(n: int, p: float, rng: np.random.Generator) -> np.ndarray:
    """(N,) bool: which samples of a batch an augmentation changes."""
    return rng.random(n) < p


__all__ = ["BUILTIN_AUGMENTATION_MODULES", "MODALITIES", "Augment", "load_augmentations", "modalities_of",
           "register_augmentation", "selected"]

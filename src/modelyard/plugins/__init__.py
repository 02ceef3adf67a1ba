"""Pluggable parts, registered by name: models, metrics, augmentations, tokenizers.

The registries live here and import no torch; :func:`load_builtins` imports the
built-in plugin modules (which do). Plugins take plain keyword arguments, never a
config object.
"""

from __future__ import annotations

import importlib

from modelyard.core.registry import Registry

MODELS: Registry = Registry("model")
METRICS: Registry = Registry("metric")
AUGMENTATIONS: Registry = Registry("augmentation")
TOKENIZERS: Registry = Registry("tokenizer")

# Modules whose import registers the built-in plugins (each one is torch-importing).
BUILTIN_MODULES = (
    "modelyard.plugins.models.mlp",
    "modelyard.plugins.models.cnn",
    "modelyard.plugins.models.rnn",
    "modelyard.plugins.models.transformer",
    "modelyard.plugins.models.gpt",
    "modelyard.plugins.models.hf",
    "modelyard.plugins.tokenizers.char",
    "modelyard.plugins.tokenizers.trained",
    "modelyard.plugins.tokenizers.pretrained",
    "modelyard.plugins.metrics.classification",
    "modelyard.plugins.metrics.regression",
    "modelyard.plugins.metrics.language",
    "modelyard.plugins.augmentations.image",
    "modelyard.plugins.augmentations.text",
    "modelyard.plugins.augmentations.arrays",
)


def load_builtins() -> None:
    """Import every built-in plugin module so its ``@register`` decorators run (idempotent)."""
    for name in BUILTIN_MODULES:
        importlib.import_module(name)


__all__ = ["AUGMENTATIONS", "BUILTIN_MODULES", "METRICS", "MODELS", "TOKENIZERS", "load_builtins"]

"""int8 variants: which layers a method applies to, and the quantized module with its spec.

The transforms and the pickle-free file format live in ``runtime/quantized.py`` (loading a
variant re-applies them); this module checks applicability first, so a method that does
not fit the architecture fails with the offending layer named instead of a stack trace
from deep inside ``torch.ao``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from modelyard.config.compress import Int8DynamicVariant, Int8StaticVariant
from modelyard.core.errors import ConfigError, DataError
from modelyard.runtime.quantized import (
    DYNAMIC_LAYERS,
    INT8_DYNAMIC,
    INT8_STATIC,
    describe_example,
    quantize_dynamic_module,
    quantize_static_module,
)

# Leaf layers FX static quantization turns into int8 kernels or passes through unchanged.
STATIC_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Linear, nn.BatchNorm1d, nn.BatchNorm2d, nn.ReLU, nn.ReLU6, nn.GELU,
                 nn.Dropout, nn.Flatten, nn.Identity, nn.AdaptiveAvgPool2d, nn.AvgPool2d, nn.MaxPool2d,
                 nn.Sequential, nn.ModuleList)


def check_static(module: nn.Module, skip: Iterable[str] = ()) -> None:
    """Refuse models with a layer static int8 does not support, naming the first one.

    Raises:
        ConfigError: e.g. ``layer 'blocks.0.ln1' (LayerNorm)`` with a hint to use int8-dynamic.
    """
    skipped = tuple(skip)
    for name, child in module.named_modules():
        if not name or any(name == s or name.startswith(s + ".") for s in skipped):
            continue
        leaf = not any(True for _ in child.children())
        if leaf and not isinstance(child, STATIC_LAYERS):
            raise ConfigError(f"static int8 quantization does not support layer {name!r} ({type(child).__name__})",
                              where="compress.variants[].method",
                              hint="use int8-dynamic (Linear/LSTM/GRU weights) or onnx-int8 for this model, "
                                   "or keep the layer in fp32 with `skip`")


def check_dynamic(module: nn.Module, layers: Iterable[str]) -> None:
    """Refuse a dynamic quantization that would change nothing (no layer of the chosen kinds).

    Raises:
        ConfigError: naming the kinds asked for and the model's class.
    """
    kinds = tuple(DYNAMIC_LAYERS[name] for name in layers)
    if not any(isinstance(m, kinds) for m in module.modules()):
        raise ConfigError(f"dynamic int8 found no {'/'.join(layers)} layer in {type(module).__name__}: "
                          "nothing to quantize", where="compress.variants[].layers",
                          hint="int8-static quantizes convolutions")


def dynamic_variant(module: nn.Module, spec: dict[str, Any], cfg: Int8DynamicVariant
                    ) -> tuple[nn.Module, dict[str, Any]]:
    """The dynamic int8 module and its spec (format + how to rebuild it)."""
    check_dynamic(module, cfg.layers)
    quantized = quantize_dynamic_module(module, layers=cfg.layers, per_channel=cfg.per_channel, skip=cfg.skip)
    return quantized, {**spec, "format": INT8_DYNAMIC,
                       "quantization": {"format": INT8_DYNAMIC, "layers": list(cfg.layers),
                                        "per_channel": cfg.per_channel, "skip": list(cfg.skip)}}


def static_variant(module: nn.Module, spec: dict[str, Any], cfg: Int8StaticVariant,
                   calibration: tuple[torch.Tensor, ...], *, batch_size: int = 64) -> tuple[nn.Module, dict[str, Any]]:
    """The static int8 module, calibrated on ``calibration`` (a tuple of input tensors), and its spec.

    Raises:
        DataError: an empty calibration set.
        ConfigError: a layer static quantization does not support (named).
    """
    rows = int(calibration[0].shape[0]) if calibration else 0
    if rows == 0:
        raise DataError("the calibration set is empty: static int8 needs rows to fix activation ranges",
                        where="compress.variants[].calibration_rows", hint="the train split must have rows")
    check_static(module, cfg.skip)
    example = tuple(t[:1] for t in calibration)
    batches = [tuple(t[i:i + batch_size] for t in calibration) for i in range(0, rows, batch_size)]
    quantized = quantize_static_module(module, example=example, calibration=batches, per_channel=cfg.per_channel,
                                       skip=cfg.skip)
    return quantized, {**spec, "format": INT8_STATIC,
                       "quantization": {"format": INT8_STATIC, "per_channel": cfg.per_channel,
                                        "skip": list(cfg.skip), "example": describe_example(example),
                                        "calibration_rows": rows}}


__all__ = ["STATIC_LAYERS", "check_dynamic", "check_static", "dynamic_variant", "static_variant"]

"""One inference interface over every model variant: torch fp32, torch int8, ONNX Runtime.

``spec.json`` says which one an artifact is (``format``; absent means ``torch``, the
plain fp32 model of ``runtime/package.py``). Every backend yields an ``nn.Module`` called
as ``module(*inputs) -> outputs`` in eval mode, so :func:`~modelyard.runtime.predict.predict_outputs`,
evaluation and serving treat all variants alike.

| format                | files                                  | rebuilt by |
|-----------------------|----------------------------------------|------------|
| ``torch``             | weights.safetensors (fp32)             | package.py |
| ``torch-int8-dynamic``| weights.safetensors (int8 + layout)    | quantized.py |
| ``torch-int8-static`` | weights.safetensors (int8 + layout)    | quantized.py |
| ``onnx``              | model.onnx (fp32 or ORT int8)          | onnx.py |
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from modelyard.core.errors import ArtifactError, ConfigError
from modelyard.runtime.onnx import FORMAT_ONNX, load_onnx
from modelyard.runtime.quantized import INT8_DYNAMIC, INT8_STATIC, load_quantized

TORCH = "torch"
FORMATS = (TORCH, INT8_DYNAMIC, INT8_STATIC, FORMAT_ONNX)


def format_of(spec: dict[str, Any]) -> str:
    """The variant format recorded in a spec (``torch`` when absent)."""
    return str(spec.get("format", TORCH))


def load_variant_module(path: Path, spec: dict[str, Any], *, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the module of a compressed variant (int8 torch or ONNX) from its artifact folder.

    Raises:
        ArtifactError: an unknown format or unreadable files.
        ConfigError: int8 torch variants asked to run on CUDA (their kernels are CPU-only).
    """
    from modelyard.runtime.package import build_from_spec

    kind = format_of(spec)
    if kind in (INT8_DYNAMIC, INT8_STATIC):
        if torch.device(device).type != "cpu":
            raise ConfigError(f"{kind} models run on CPU only (PyTorch has no CUDA int8 kernels for them)",
                              hint="serve the fp32 or ONNX variant on GPU")
        return load_quantized(path, spec, build_from_spec)
    if kind == FORMAT_ONNX:
        return load_onnx(path, spec, device=device)
    raise ArtifactError(f"unknown model format {kind!r} in spec.json (known: {', '.join(FORMATS)})", where=str(path))


__all__ = ["FORMATS", "TORCH", "format_of", "load_variant_module"]

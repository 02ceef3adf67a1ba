"""Size and speed figures of a model variant (the stage records them; the benchmark reports more)."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import torch
from torch import nn

from modelyard.core.manifest import MANIFEST_NAME
from modelyard.train import HF_DIR


def folder_bytes(folder: Path) -> int:
    """Bytes of the files an artifact runs from: the manifest, the spec and the Hugging Face-format
    copy of a pretrained backbone (``hf/``, an export for other tools the runtime never loads) excluded."""
    return sum(p.stat().st_size for p in folder.rglob("*")
               if p.is_file() and p.name not in (MANIFEST_NAME, "spec.json")
               and p.relative_to(folder).parts[0] != HF_DIR)


def parameter_count(module: nn.Module) -> int | None:
    """Parameters of a torch fp32 module (None for int8 / ONNX modules, whose weights are not parameters)."""
    count = sum(p.numel() for p in module.parameters())
    return count or None


@torch.inference_mode()
def latencies_ms(module: nn.Module, inputs: tuple[torch.Tensor, ...], *, repeats: int = 20,
                 warmup: int = 3) -> list[float]:
    """Wall times (ms) of ``repeats`` calls on ``inputs`` after ``warmup`` calls."""
    module.eval()
    for _ in range(warmup):
        module(*inputs)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        module(*inputs)
        times.append((time.perf_counter() - start) * 1000.0)
    return times


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100) by linear interpolation."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    position = (len(ordered) - 1) * q / 100.0
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def median_ms(module: nn.Module, inputs: tuple[torch.Tensor, ...], *, repeats: int = 10) -> float:
    """Median latency (ms) of ``module`` on ``inputs``."""
    return statistics.median(latencies_ms(module, inputs, repeats=repeats, warmup=2))


__all__ = ["folder_bytes", "latencies_ms", "median_ms", "parameter_count", "percentile"]

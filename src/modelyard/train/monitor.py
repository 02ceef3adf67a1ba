"""Resource and efficiency figures for the training metrics: RSS, CPU, GPU memory, FLOPs, MFU.

- peak RSS: ``getrusage(RUSAGE_SELF).ru_maxrss`` (the OS's own high-water mark);
- CPU utilisation: process CPU seconds over wall seconds since the last sample, as a
  percentage of the cores torch may use (100 = every intra-op thread busy);
- GPU memory: ``torch.cuda.max_memory_allocated`` when on CUDA;
- model FLOPs: counted once, before the first training step, on a few rows of the first batch
  with ``torch.utils.flop_counter.FlopCounterMode`` (:func:`count_train_flops`). Counting the
  whole first step under the counter made that step ~40% slower (its dispatch mode sits on
  every forward and backward op): the loop-overhead budget of issue 4. In eval mode, so no
  dropout draw moves the RNG (exact resume) and no BatchNorm statistic changes; when every
  parameter trains, a no-grad forward × 3 (the usual MFU convention, backward = 2 × forward: it
  also counts the first layer's input gradient the step skips — exact for token models, which
  start with an embedding, up to ~15% high for a small MLP on raw features); otherwise (frozen
  parameters, e.g. LoRA) forward + ``torch.autograd.grad`` to the trainable parameters, exact
  but ~7× dearer (``.grad`` untouched);
  MFU = counted FLOPs per sample × samples/s ÷ the measured matmul peak of this machine
  (:func:`matmul_peak_flops`, an fp32 or bf16 GEMM, best of several, cached per process).
"""

from __future__ import annotations

import resource
import sys
import time
from functools import lru_cache

import torch
from torch import nn


@lru_cache(maxsize=4)
def matmul_peak_flops(dtype_name: str = "float32", size: int = 1024, repeats: int = 8) -> float:
    """Best measured GEMM rate (FLOP/s) of ``size``² matrices of ``dtype_name`` on the CPU (cached)."""
    dtype = getattr(torch, dtype_name)
    a, b = torch.randn(size, size, generator=torch.Generator().manual_seed(0)).to(dtype), torch.ones(size, size,
                                                                                                      dtype=dtype)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / max(best, 1e-9)


@lru_cache(maxsize=2)
def cuda_peak_flops(dtype_name: str = "float32", size: int = 4096, repeats: int = 8) -> float:  # pragma: no cover
    """Best measured GEMM rate on the current CUDA device (cached)."""
    dtype = getattr(torch, dtype_name)
    a = torch.randn(size, size, device="cuda", dtype=dtype)
    torch.mm(a, a)
    torch.cuda.synchronize()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, a)
        torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def peak_rss_mb() -> float:
    """The process's peak resident set size in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


class ResourceMonitor:
    """Samples CPU utilisation (since the previous sample), peak RSS and GPU memory."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self._wall = time.perf_counter()
        self._cpu = time.process_time()

    def sample(self) -> dict[str, float]:
        """``train/peak_memory_mb`` (peak RSS), ``system/cpu_percent``, (CUDA) ``system/cuda_memory_mb``.

        The names are the ones the HTML report's memory plot reads.
        """
        wall, cpu = time.perf_counter(), time.process_time()
        threads = max(1, torch.get_num_threads())
        out = {"train/peak_memory_mb": peak_rss_mb(),
               "system/cpu_percent": 100.0 * (cpu - self._cpu) / max(wall - self._wall, 1e-9) / threads}
        self._wall, self._cpu = wall, cpu
        if self.device.type == "cuda":  # pragma: no cover - no GPU here
            out["system/cuda_memory_mb"] = torch.cuda.max_memory_allocated(self.device) / 2**20
        return out


def count_train_flops(model: nn.Module, inputs: tuple[torch.Tensor, ...], *, device: torch.device,
                      rows: int = 4) -> float:
    """Training FLOPs (forward + backward) per sample of ``model`` on the first ``rows`` of ``inputs``.

    ``model`` is the plain module (not a DDP wrapper); its mode is restored and its ``.grad`` untouched.
    """
    from torch.utils.flop_counter import FlopCounterMode

    sample = tuple(t[:rows].to(device) for t in inputs)
    n = max(int(sample[0].shape[0]), 1)
    trainable = [p for p in model.parameters() if p.requires_grad]
    frozen = any(not p.requires_grad for p in model.parameters())
    was_training = model.training
    model.eval()
    try:
        counter = FlopCounterMode(display=False)
        if trainable and not frozen:
            with torch.no_grad(), counter:
                model(*sample)
            return 3.0 * counter.get_total_flops() / n
        with counter:
            out = model(*sample)
            if trainable and out.requires_grad:
                torch.autograd.grad(out.float().sum(), trainable, allow_unused=True)
        return float(counter.get_total_flops()) / n
    finally:
        model.train(was_training)


def peak_flops_for(device: torch.device, precision: str) -> float:
    """The MFU denominator: measured GEMM peak for the device and compute dtype."""
    dtype_name = {"bf16": "bfloat16", "fp16": "float16"}.get(precision, "float32")
    if device.type == "cuda":  # pragma: no cover
        return cuda_peak_flops(dtype_name)
    # fp16 does not train on CPU here; bf16 on a CPU without native bf16 is emulated: its peak is measured too.
    return matmul_peak_flops(dtype_name)


__all__ = ["ResourceMonitor", "count_train_flops", "cuda_peak_flops", "matmul_peak_flops", "peak_flops_for",
           "peak_rss_mb"]

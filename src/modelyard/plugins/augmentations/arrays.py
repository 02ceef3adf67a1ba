"""Augmentations of float arrays, for tabular rows (N, F) and images (N, C, H, W) alike."""

from __future__ import annotations

from typing import Any

import numpy as np

from modelyard.plugins.augmentations import Augment, register_augmentation, selected


def _array(x: Any) -> tuple[np.ndarray, Any]:
    """(a numpy copy of ``x``, the torch tensor it came from or None)."""
    if isinstance(x, np.ndarray):
        if not np.issubdtype(x.dtype, np.floating):
            raise ValueError(f"array augmentations take float arrays, got {x.dtype}")
        return np.array(x, copy=True), None
    return x.detach().cpu().numpy().copy(), x


def _back(out: np.ndarray, tensor: Any) -> Any:
    if tensor is None:
        return out
    import torch

    return torch.from_numpy(out).to(device=tensor.device, dtype=tensor.dtype)


@register_augmentation("gaussian-noise", modalities=("image", "tabular"))
def gaussian_noise(*, p: float = 0.5, std: float = 0.05, clip: tuple[float, float] | None = None) -> Augment:
    """Add N(0, std²) noise to every value of a selected sample (tabular features are standardised, so
    ``std`` is in standard deviations); optionally clip to ``clip`` (e.g. [0, 1] for images)."""

    def apply(x: Any, y: np.ndarray | None, rng: np.random.Generator) -> tuple[Any, np.ndarray | None]:
        out, tensor = _array(x)
        mask = selected(len(out), p, rng)
        noise = rng.normal(0.0, std, size=(int(mask.sum()), *out.shape[1:])).astype(out.dtype)
        out[mask] = out[mask] + noise
        if clip is not None:
            np.clip(out, clip[0], clip[1], out=out)
        return _back(out, tensor), y

    return apply


@register_augmentation("mixup", modalities=("image", "tabular"))
def mixup(*, p: float = 0.5, alpha: float = 0.2) -> Augment:
    """Blend a selected sample with a random partner: ``λ·x_i + (1-λ)·x_j``, ``λ ~ Beta(α, α)`` folded to
    ``λ ≥ 0.5`` so the sample dominates and keeps its class label (regression targets are blended)."""

    def apply(x: Any, y: np.ndarray | None, rng: np.random.Generator) -> tuple[Any, np.ndarray | None]:
        out, tensor = _array(x)
        n = len(out)
        mask = selected(n, p, rng)
        rows = np.flatnonzero(mask)
        partners = rng.integers(0, max(n, 1), size=len(rows))
        lam = rng.beta(alpha, alpha, size=len(rows))
        lam = np.maximum(lam, 1.0 - lam)
        shape = (len(rows),) + (1,) * (out.ndim - 1)
        source = out.copy()
        out[rows] = (lam.reshape(shape) * source[rows] + (1 - lam.reshape(shape)) * source[partners]).astype(out.dtype)
        y_out = y
        if y is not None and len(rows) and np.issubdtype(np.asarray(y).dtype, np.floating):
            y_out = np.array(y, copy=True)
            y_out[rows] = lam * y[rows] + (1 - lam) * y[partners]
        return _back(out, tensor), y_out

    return apply

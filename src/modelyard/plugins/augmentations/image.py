"""Image augmentations as tensor ops (torchvision is not importable beside the pinned CPU torch).

Batches are (N, C, H, W) float tensors or numpy arrays with values in [0, 1]. Geometric
transforms use ``affine_grid`` + ``grid_sample`` (bilinear), so they run on the batch's
device, CPU or CUDA. Random parameters are drawn from the numpy ``rng`` on the CPU, which
makes a batch's result depend only on the rng state, whatever the device.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from modelyard.plugins.augmentations import Augment, register_augmentation, selected


def _tensor(x: Any) -> tuple[Any, bool]:
    """(a float tensor copy of ``x``, whether ``x`` was numpy)."""
    import torch

    if isinstance(x, np.ndarray):
        if not np.issubdtype(x.dtype, np.floating):
            raise ValueError(f"image augmentations take float batches in [0, 1], got {x.dtype}")
        return torch.from_numpy(np.array(x, copy=True)), True
    if not x.is_floating_point():
        raise ValueError(f"image augmentations take float batches in [0, 1], got {x.dtype}")
    return x.clone(), False


def _back(x: Any, was_numpy: bool) -> Any:
    return x.numpy() if was_numpy else x


def _check(x: Any) -> None:
    if x.ndim != 4:
        raise ValueError(f"image augmentations take (N, C, H, W) batches, got shape {tuple(x.shape)}")


def _affine(x: Any, theta: np.ndarray, mask: np.ndarray) -> Any:
    """Resample the ``mask``-ed images of ``x`` through the (n, 2, 3) affine maps ``theta``."""
    import torch
    from torch.nn import functional

    index = torch.from_numpy(np.flatnonzero(mask)).to(x.device)
    if not len(index):
        return x
    part = x.index_select(0, index)
    grid = functional.affine_grid(torch.as_tensor(theta, dtype=part.dtype, device=x.device), list(part.shape),
                                  align_corners=False)
    x[index] = functional.grid_sample(part, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return x


@register_augmentation("flip", modalities=("image",))
def flip(*, p: float = 0.5, horizontal: bool = True, vertical: bool = False) -> Augment:
    """Mirror images left-right (and/or top-bottom)."""
    dims = [d for d, on in ((-1, horizontal), (-2, vertical)) if on]

    def apply(x: Any, y: np.ndarray | None, rng: np.random.Generator) -> tuple[Any, np.ndarray | None]:
        _check(x)
        out, was_numpy = _tensor(x)
        mask = selected(len(out), p, rng)
        if mask.any() and dims:
            import torch

            index = torch.from_numpy(np.flatnonzero(mask)).to(out.device)
            out[index] = out.index_select(0, index).flip(dims)
        return _back(out, was_numpy), y

    return apply


@register_augmentation("rotate", modalities=("image",))
def rotate(*, p: float = 0.5, degrees: float = 15.0) -> Augment:
    """Rotate by an angle drawn uniformly from [-degrees, degrees] (edges repeat the border)."""

    def apply(x: Any, y: np.ndarray | None, rng: np.random.Generator) -> tuple[Any, np.ndarray | None]:
        _check(x)
        out, was_numpy = _tensor(x)
        mask = selected(len(out), p, rng)
        angles = np.deg2rad(rng.uniform(-degrees, degrees, size=int(mask.sum())))
        cos, sin = np.cos(angles), np.sin(angles)
        zeros = np.zeros_like(cos)
        theta = np.stack([np.stack([cos, -sin, zeros], -1), np.stack([sin, cos, zeros], -1)], 1)  # (n, 2, 3)
        return _back(_affine(out, theta, mask), was_numpy), y

    return apply


@register_augmentation("crop-resize", modalities=("image",))
def crop_resize(*, p: float = 0.5, scale: tuple[float, float] = (0.6, 1.0),
                ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> Augment:
    """Crop a random window (area share in ``scale``, aspect in ``ratio``) and resize it to the full size."""
    if not 0 < scale[0] <= scale[1] <= 1:
        raise ValueError(f"scale must satisfy 0 < low <= high <= 1, got {scale}")

    def apply(x: Any, y: np.ndarray | None, rng: np.random.Generator) -> tuple[Any, np.ndarray | None]:
        _check(x)
        out, was_numpy = _tensor(x)
        mask = selected(len(out), p, rng)
        n = int(mask.sum())
        area = rng.uniform(scale[0], scale[1], size=n)
        aspect = np.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1]), size=n))
        # Window width / height as shares of the image (the affine map's scale), at most the whole image.
        w = np.minimum(np.sqrt(area * aspect), 1.0)
        h = np.minimum(np.sqrt(area / aspect), 1.0)
        tx = rng.uniform(-1, 1, size=n) * (1 - w)
        ty = rng.uniform(-1, 1, size=n) * (1 - h)
        zeros = np.zeros(n)
        theta = np.stack([np.stack([w, zeros, tx], -1), np.stack([zeros, h, ty], -1)], 1)
        return _back(_affine(out, theta, mask), was_numpy), y

    return apply


@register_augmentation("color-jitter", modalities=("image",))
def color_jitter(*, p: float = 0.5, brightness: float = 0.2, contrast: float = 0.2,
                 saturation: float = 0.2) -> Augment:
    """Scale brightness, contrast and (RGB) saturation by factors in [1 - s, 1 + s]; clamp to [0, 1]."""

    def apply(x: Any, y: np.ndarray | None, rng: np.random.Generator) -> tuple[Any, np.ndarray | None]:
        import torch

        _check(x)
        out, was_numpy = _tensor(x)
        mask = selected(len(out), p, rng)
        n = int(mask.sum())
        factors = [rng.uniform(1 - s, 1 + s, size=n) for s in (brightness, contrast, saturation)]
        if n:
            index = torch.from_numpy(np.flatnonzero(mask)).to(out.device)
            part = out.index_select(0, index)

            def per_sample(values: np.ndarray) -> Any:
                return torch.as_tensor(values, dtype=part.dtype, device=part.device).view(-1, 1, 1, 1)

            part = part * per_sample(factors[0])
            mean = part.mean(dim=(1, 2, 3), keepdim=True)
            part = mean + (part - mean) * per_sample(factors[1])
            if part.shape[1] == 3:
                grey = (part * torch.tensor([0.299, 0.587, 0.114], dtype=part.dtype,
                                            device=part.device).view(1, 3, 1, 1)).sum(1, keepdim=True)
                part = grey + (part - grey) * per_sample(factors[2])
            out[index] = part.clamp(0.0, 1.0)
        return _back(out, was_numpy), y

    return apply

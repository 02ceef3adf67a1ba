"""Small building blocks shared by the token models (``rnn``, ``transformer``, ``gpt``, ``hf``)."""

from __future__ import annotations

import torch
from torch import nn


class Dropout(nn.Dropout):
    """``nn.Dropout`` with a faster CPU training path; identical behaviour elsewhere.

    On CPU, ``torch``'s dropout draws its mask with ``bernoulli_``, which is about twice as
    slow as drawing a uniform tensor and comparing it with ``p``; with ten dropout sites in
    a 4-layer encoder that is ~5% of a training step. The result has the same distribution
    (keep with probability ``1 - p``, scale kept values by ``1 / (1 - p)``), only another
    random stream. On CUDA (and other devices) the fused kernel of ``nn.Dropout`` is used.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if x.device.type != "cpu" or self.inplace:
            return super().forward(x)
        if self.p >= 1.0:
            return x * 0.0
        keep = torch.rand_like(x) >= self.p  # bool, same shape as x: the only tensor kept for backward
        return torch.where(keep, x, 0.0) * (1.0 / (1.0 - self.p))


def masked_mean(hidden: torch.Tensor, keep: torch.Tensor | None) -> torch.Tensor:
    """Mean of ``hidden`` (B, T, C) over the positions where ``keep`` (B, T) is true → (B, C).

    ``keep=None`` averages over every position. A row without any valid position gives
    zeros, not NaN.
    """
    if keep is None:
        return hidden.mean(dim=1)
    weights = keep.to(hidden.dtype).unsqueeze(-1)  # (B, T, 1)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


__all__ = ["Dropout", "masked_mean"]

"""Dynamic int8 linear layers for the ``torch-int8`` runtime, on torch's own int8 matmul.

Weights are quantized once, symmetric per output channel; each forward pass quantizes its
activations symmetric per row, multiplies int8 × int8 into int32 (``torch._int_mm``) and
scales back to float. This is what ``torch.ao.quantization.quantize_dynamic`` does for
``nn.Linear``, without that API (deprecated, as are torch's quantized tensors) or a new
dependency (torchao).
"""

from __future__ import annotations

import torch
from torch import nn

_QMAX = 127.0


class Int8Linear(nn.Module):
    """``nn.Linear`` with int8 weights and dynamically quantized int8 activations (CPU)."""

    weight_t: torch.Tensor
    weight_scale: torch.Tensor
    bias: torch.Tensor | None

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        weight = linear.weight.detach().float()                                     # (out, in)
        scale = weight.abs().amax(dim=1).clamp(min=1e-12) / _QMAX                   # (out,)
        quantized = torch.round(weight / scale[:, None]).clamp(-_QMAX, _QMAX).to(torch.int8)
        self.register_buffer("weight_t", quantized.t().contiguous())                # (in, out) int8
        self.register_buffer("weight_scale", scale)
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach().float().clone())
        self.in_features, self.out_features = linear.in_features, linear.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        rows = x.reshape(-1, self.in_features).float()                              # (R, in)
        row_scale = rows.abs().amax(dim=1, keepdim=True).clamp(min=1e-12) / _QMAX   # (R, 1)
        quantized = torch.round(rows / row_scale).clamp(-_QMAX, _QMAX).to(torch.int8)
        out = torch._int_mm(quantized, self.weight_t).float() * row_scale * self.weight_scale  # (R, out)
        if self.bias is not None:
            out = out + self.bias
        return out.reshape(*shape[:-1], self.out_features)


def quantize_linear_layers(module: nn.Module) -> int:
    """Replace every ``nn.Linear`` inside ``module`` by an :class:`Int8Linear`; returns how many."""
    count = 0
    for name, child in module.named_children():
        # Exactly nn.Linear: subclasses such as attention's out_proj are read as weights by their parent.
        if type(child) is nn.Linear:
            setattr(module, name, Int8Linear(child))
            count += 1
        else:
            count += quantize_linear_layers(child)
    return count


__all__ = ["Int8Linear", "quantize_linear_layers"]

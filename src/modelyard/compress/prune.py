"""Pruning: unstructured magnitude pruning, and structured pruning that really shrinks tensors.

*Magnitude* pruning zeroes the ``sparsity`` fraction of smallest-magnitude weights over
all Linear / Conv layers at once (global L1, ``torch.nn.utils.prune``), then makes the
zeros permanent. The tensors keep their shapes: dense kernels run at the same speed and
the file has the same size; it is the starting point for sparse kernels, not a speed-up.

*Structured* pruning removes whole units and rebuilds the model **from its plugin with
smaller arguments**, so the result is an ordinary fp32 model artifact (``spec.kwargs``
changed) that any runtime loads:

| plugin                | unit removed                                  | argument changed |
|-----------------------|-----------------------------------------------|------------------|
| ``mlp``               | hidden neurons (L2 norm of in × out weights)   | ``hidden``       |
| ``cnn``               | channels of every stage, inner and outer (BN γ) | ``channels``   |
| ``transformer-encoder`` | feed-forward units of every block (‖W₁ row‖·‖W₂ col‖) | ``d_ff`` |
| ``transformer-encoder`` | attention heads of every block (``head_sparsity``) | ``heads``, ``head_dim`` |

Heads: every block keeps the same number of heads (the plugin has one ``heads`` value), but
each block keeps its own most important ones, scored by ‖W_v rows of the head‖·‖W_o
columns of the head‖ (the path the head's output takes into the residual stream). Head
width ``head_dim`` is kept, so the attention width ``heads × head_dim`` shrinks below
``d_model`` while the residual width stays. A pruned model computes exactly what the
parent computes with those heads' outputs zeroed (tested). Other plugins raise a clear error.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import pairwise
from typing import Any

import torch
from torch import nn

from modelyard.core.errors import ConfigError

PRUNABLE = (nn.Linear, nn.Conv1d, nn.Conv2d)


def magnitude_prune(module: nn.Module, sparsity: float, *, permanent: bool = True) -> nn.Module:
    """Zero the globally smallest ``sparsity`` fraction of Linear/Conv weights in place.

    Args:
        module: the model (modified in place and returned).
        sparsity: fraction in [0, 1).
        permanent: fold the masks into the weights now; ``False`` keeps the masks (for fine-tuning,
            so pruned weights stay zero), then call :func:`make_permanent`.

    Raises:
        ConfigError: a sparsity outside [0, 1), or no layer to prune.
    """
    import torch.nn.utils.prune as prune

    check_sparsity(sparsity)
    targets = [(m, "weight") for m in module.modules() if isinstance(m, PRUNABLE)]
    if not targets:
        raise ConfigError(f"magnitude pruning found no Linear/Conv layer in {type(module).__name__}")
    prune.global_unstructured(targets, pruning_method=prune.L1Unstructured, amount=float(sparsity))
    if permanent:
        make_permanent(module)
    return module


def make_permanent(module: nn.Module) -> nn.Module:
    """Fold pruning masks into the weights (``weight_orig * weight_mask`` → ``weight``)."""
    import torch.nn.utils.prune as prune

    for m in module.modules():
        if isinstance(m, PRUNABLE) and prune.is_pruned(m):
            prune.remove(m, "weight")
    return module


def weight_sparsity(module: nn.Module) -> float:
    """Fraction of exactly-zero weights over the Linear/Conv layers."""
    zeros = total = 0
    for m in module.modules():
        if isinstance(m, PRUNABLE):
            zeros += int((m.weight == 0).sum())
            total += m.weight.numel()
    return zeros / max(total, 1)


def check_sparsity(sparsity: float) -> None:
    """Refuse a sparsity outside [0, 1)."""
    if not 0.0 <= sparsity < 1.0:
        raise ConfigError(f"sparsity must be in [0, 1), got {sparsity}", where="compress.variants[].sparsity")


def _keep(count: int, sparsity: float) -> int:
    return max(1, round(count * (1.0 - sparsity)))


def _top(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the ``k`` largest scores, in their original order (keeps the layout stable)."""
    return torch.sort(torch.topk(scores, k).indices).values


def _structured_mlp(state: dict[str, torch.Tensor], kwargs: dict[str, Any], sparsity: float
                    ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    # nn.Sequential: ([Flatten] for image-mlp), Linear, [BatchNorm1d], GELU, Dropout per hidden layer, then the
    # head Linear; the layer numbers are read off the state's keys, so the Flatten's offset does not matter.
    linears = sorted({int(k.split(".")[0]) for k in state if k.endswith(".weight") and state[k].ndim == 2})
    state = dict(state)
    widths = []
    for layer, nxt in pairwise(linears):
        w_in, w_out = state[f"{layer}.weight"], state[f"{nxt}.weight"]   # (H, F), (H', H)
        scores = w_in.norm(dim=1) * w_out.norm(dim=0)                     # (H,)
        keep = _top(scores, _keep(len(scores), sparsity))
        state[f"{layer}.weight"], state[f"{layer}.bias"] = w_in[keep], state[f"{layer}.bias"][keep]
        norm = layer + 1  # a BatchNorm1d right after the Linear, when the model has one
        for name in ("weight", "bias", "running_mean", "running_var"):
            if f"{norm}.{name}" in state and state[f"{norm}.{name}"].ndim == 1:
                state[f"{norm}.{name}"] = state[f"{norm}.{name}"][keep]
        state[f"{nxt}.weight"] = w_out[:, keep]
        widths.append(len(keep))
    return state, {**kwargs, "hidden": widths}


def _slice_bn(state: dict[str, torch.Tensor], prefix: str, keep: torch.Tensor) -> None:
    for name in ("weight", "bias", "running_mean", "running_var"):
        state[f"{prefix}.{name}"] = state[f"{prefix}.{name}"][keep]


def _structured_cnn(state: dict[str, torch.Tensor], kwargs: dict[str, Any], sparsity: float
                    ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    # SmallResNet: stem conv+bn (width = channels[0]), blocks.i.{conv1,bn1,conv2,bn2,[shortcut.0/1]}, head.2.
    # Each stage has an *inner* channel set (conv1's outputs) and an *outer* one (the block's output,
    # shared by conv2, the shortcut and — through the identity shortcut of block 0 — the stem).
    state = dict(state)
    stages = len(kwargs.get("channels", (32, 64)))
    widths = []
    previous: torch.Tensor | None = None  # outer channels of the previous stage
    for i in range(stages):
        block = f"blocks.{i}"
        outer_score = state[f"{block}.bn2.weight"].abs().clone()
        if f"{block}.shortcut.1.weight" in state:
            outer_score += state[f"{block}.shortcut.1.weight"].abs()
        if i == 0:
            outer_score += state["stem.1.weight"].abs()
        k = _keep(len(outer_score), sparsity)
        outer = _top(outer_score, k)
        inner = _top(state[f"{block}.bn1.weight"].abs() * state[f"{block}.conv1.weight"].flatten(1).norm(dim=1), k)
        if i == 0:
            state["stem.0.weight"] = state["stem.0.weight"][outer]
            _slice_bn(state, "stem.1", outer)
            previous = outer
        assert previous is not None
        state[f"{block}.conv1.weight"] = state[f"{block}.conv1.weight"][inner][:, previous]
        _slice_bn(state, f"{block}.bn1", inner)
        state[f"{block}.conv2.weight"] = state[f"{block}.conv2.weight"][outer][:, inner]
        _slice_bn(state, f"{block}.bn2", outer)
        if f"{block}.shortcut.0.weight" in state:
            state[f"{block}.shortcut.0.weight"] = state[f"{block}.shortcut.0.weight"][outer][:, previous]
            _slice_bn(state, f"{block}.shortcut.1", outer)
        previous = outer
        widths.append(k)
    assert previous is not None
    state["head.2.weight"] = state["head.2.weight"][:, previous]
    return state, {**kwargs, "channels": widths}


def _encoder_heads(state: dict[str, torch.Tensor], kwargs: dict[str, Any], head_sparsity: float
                   ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    # blocks.j.attn.qkv: Linear(C, 3A) rows [q | k | v], each H heads of Dh; blocks.j.attn.proj: Linear(A, C).
    state = dict(state)
    blocks = sorted({int(k.split(".")[1]) for k in state if k.startswith("blocks.") and ".attn.qkv.weight" in k})
    heads = int(kwargs.get("heads", 4))
    inner = state[f"blocks.{blocks[0]}.attn.proj.weight"].shape[1]
    head_dim = inner // heads
    k = _keep(heads, head_sparsity)
    for j in blocks:
        qkv_w, qkv_b = state[f"blocks.{j}.attn.qkv.weight"], state[f"blocks.{j}.attn.qkv.bias"]  # (3A, C), (3A,)
        proj = state[f"blocks.{j}.attn.proj.weight"]                                             # (C, A)
        v_rows = qkv_w[2 * inner:].reshape(heads, head_dim, -1)
        out_cols = proj.reshape(proj.shape[0], heads, head_dim)
        score = v_rows.flatten(1).norm(dim=1) * out_cols.transpose(0, 1).flatten(1).norm(dim=1)  # (H,)
        kept = _top(score, k)
        units = (kept[:, None] * head_dim + torch.arange(head_dim)).flatten()                     # (k * Dh,)
        rows = torch.cat([units + part * inner for part in range(3)])
        state[f"blocks.{j}.attn.qkv.weight"] = qkv_w[rows]
        state[f"blocks.{j}.attn.qkv.bias"] = qkv_b[rows]
        state[f"blocks.{j}.attn.proj.weight"] = proj[:, units]
    return state, {**kwargs, "heads": k, "head_dim": head_dim}


def _structured_encoder(state: dict[str, torch.Tensor], kwargs: dict[str, Any], sparsity: float
                        ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    # blocks.j.mlp.0: Linear(C, d_ff); blocks.j.mlp.2: Linear(d_ff, C). One d_ff for every block.
    state = dict(state)
    blocks = sorted({int(k.split(".")[1]) for k in state if k.startswith("blocks.") and ".mlp.0.weight" in k})
    d_ff = state[f"blocks.{blocks[0]}.mlp.0.weight"].shape[0]
    k = _keep(d_ff, sparsity)
    for j in blocks:
        up, down = state[f"blocks.{j}.mlp.0.weight"], state[f"blocks.{j}.mlp.2.weight"]  # (F, C), (C, F)
        keep = _top(up.norm(dim=1) * down.norm(dim=0), k)
        state[f"blocks.{j}.mlp.0.weight"] = up[keep]
        state[f"blocks.{j}.mlp.0.bias"] = state[f"blocks.{j}.mlp.0.bias"][keep]
        state[f"blocks.{j}.mlp.2.weight"] = down[:, keep]
    return state, {**kwargs, "d_ff": k}


STRUCTURED: dict[str, Callable[[dict[str, torch.Tensor], dict[str, Any], float],
                               tuple[dict[str, torch.Tensor], dict[str, Any]]]] = {
    "mlp": _structured_mlp,
    "image-mlp": _structured_mlp,
    "cnn": _structured_cnn,
    "transformer-encoder": _structured_encoder,
}
HEADS = frozenset({"transformer-encoder"})


def check_structured(plugin: str, head_sparsity: float = 0.0) -> None:
    """Refuse a plugin that structured pruning (or head pruning) does not support.

    Raises:
        ConfigError: names the plugin and what is supported.
    """
    if plugin not in STRUCTURED:
        raise ConfigError(f"structured pruning does not support model {plugin!r} (supported: "
                          f"{', '.join(sorted(STRUCTURED))})", where="compress.variants[].method",
                          hint="use prune-magnitude or distill for this model")
    if head_sparsity and plugin not in HEADS:
        raise ConfigError(f"head pruning needs attention heads; model {plugin!r} has none "
                          f"(supported: {', '.join(sorted(HEADS))})", where="compress.variants[].head_sparsity")


def structured_prune(module: nn.Module, spec: dict[str, Any], sparsity: float,
                     build: Callable[[dict[str, Any]], nn.Module], *, head_sparsity: float = 0.0
                     ) -> tuple[nn.Module, dict[str, Any]]:
    """A smaller model of the same plugin holding the most important ``1 - sparsity`` of each layer's units.

    Args:
        module: the fp32 parent (not modified).
        spec: its spec (``plugin``, ``kwargs``).
        sparsity: fraction of units removed, in [0, 1).
        build: builds a module from a spec (``runtime.build_from_spec``).
        head_sparsity: fraction of each block's attention heads removed, in [0, 1)
            (``transformer-encoder`` only; at least one head stays).

    Returns:
        (the pruned module, its spec with the smaller ``kwargs``).

    Raises:
        ConfigError: the plugin has no structured pruning, or a bad sparsity.
    """
    check_sparsity(sparsity)
    check_sparsity(head_sparsity)
    plugin = spec["plugin"]
    check_structured(plugin, head_sparsity)
    state = {k: v.detach().clone() for k, v in module.state_dict().items()}
    new_state, new_kwargs = STRUCTURED[plugin](state, dict(spec["kwargs"]), sparsity)
    if head_sparsity:
        new_state, new_kwargs = _encoder_heads(new_state, new_kwargs, head_sparsity)
    new_spec = {**spec, "kwargs": new_kwargs}
    pruned = build(new_spec)
    pruned.load_state_dict(new_state, strict=True)
    return pruned.eval(), new_spec


__all__ = ["HEADS", "STRUCTURED", "check_sparsity", "check_structured", "magnitude_prune", "make_permanent",
           "structured_prune", "weight_sparsity"]

"""Fully sharded data parallel (``train.parallel: fsdp``): parameters, gradients and optimizer state sharded.

DDP keeps a full copy of the weights, gradients and optimizer state on every rank; FSDP
(PyTorch's ``fully_shard``, "FSDP2") keeps ``1/world`` of each on each rank and gathers a
layer's weights only while it runs, so a model whose training state does not fit one device
can still train. The loop is unchanged: the sampler, the loss scaling (FSDP averages
gradients over ranks as DDP does), the guards and the metrics are the DDP ones
(:mod:`modelyard.train.distributed`).

What differs is how state leaves and enters the sharded model, and it is all here:

- :func:`shard` applies ``fully_shard`` to every repeated block (the entries of each
  ``nn.ModuleList``: transformer blocks, ResNet stages) and then to the root, the layout
  the PyTorch docs recommend (one all-gather per block, overlapped with compute);
- :func:`full_model_state` / :func:`full_optimizer_state` gather the *full* state onto
  rank 0's CPU (every rank must call them: they are collectives; the other ranks get ``{}``),
  so checkpoints and the published model are the same safetensors files as without FSDP,
  and :func:`load_full_model_state` / :func:`load_full_optimizer_state` shard a full state
  back (every rank passing the state read from a checkpoint, or rank 0 broadcasting it).

The optimizer state of a sharded model is keyed by parameter name (``blocks.0.mlp.0.weight``)
rather than by position; a checkpoint records which, and resuming under another strategy is
refused by the fingerprint (``train.parallel`` is part of the recipe).

On CPU the collectives run over gloo; FSDP is useful on GPUs, and the CPU path exists so
that the same code is tested here (``tests/distributed/test_fsdp.py``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def _api() -> Any:
    from torch.distributed import fsdp

    return fsdp


def shard(model: nn.Module) -> nn.Module:
    """Shard ``model`` in place across the process group (blocks first, then the root); returns it."""
    fsdp = _api()
    for module in list(model.modules()):
        if isinstance(module, nn.ModuleList):
            for block in module:
                if any(True for _ in block.parameters()):
                    fsdp.fully_shard(block)
    fsdp.fully_shard(model)
    return model


def is_sharded(model: nn.Module) -> bool:
    """True when ``model`` was sharded by :func:`shard`.

    Without a process group nothing can be sharded: one-process runs answer without
    importing ``torch.distributed.fsdp``.
    """
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return False
    return isinstance(model, _api().FSDPModule)


def _resharded(model: nn.Module) -> nn.Module:
    """``model`` with every FSDP unit back in its sharded form.

    The root unit keeps its weights gathered after a forward (FSDP2's default for the root:
    the backward needs them next), so after a validation pass its parameters are plain
    tensors; state-dict calls expect the sharded (DTensor) ones.
    """
    fsdp = _api()
    for module in model.modules():
        if isinstance(module, fsdp.FSDPModule):
            module.reshard()
    return model


def _options(*, load: bool = False, broadcast: bool = False) -> Any:
    """Full (unsharded) states; gathered onto rank 0's CPU when read, sharded back when loaded."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    # cpu_offload on a load would leave the broadcast values as plain CPU tensors, which
    # ``load_state_dict`` cannot copy into the sharded (DTensor) parameters.
    return StateDictOptions(full_state_dict=True, cpu_offload=not load, broadcast_from_rank0=broadcast)


def full_model_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The full weights on rank 0's CPU (``{}`` on the other ranks). A collective: every rank calls it."""
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    state = get_model_state_dict(_resharded(model), options=_options())
    # Independent, contiguous CPU tensors (tied weights come back sharing storage; safetensors refuses that).
    return {k: v.detach().to("cpu").clone().contiguous() for k, v in state.items() if isinstance(v, torch.Tensor)}


def load_full_model_state(model: nn.Module, state: dict[str, torch.Tensor], *, from_rank0: bool = False) -> None:
    """Shard a full state into ``model``. A collective.

    ``from_rank0``: only rank 0 holds ``state`` (the others pass ``{}``) and broadcasts it;
    otherwise every rank passes the same full state (read from a checkpoint file).
    """
    from torch.distributed.checkpoint.state_dict import set_model_state_dict

    set_model_state_dict(_resharded(model), dict(state), options=_options(load=True, broadcast=from_rank0))


def full_optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """The optimizer's full state, keyed by parameter name, on rank 0's CPU (``{}`` elsewhere). A collective."""
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

    return dict(get_optimizer_state_dict(_resharded(model), optimizer, options=_options()))


def load_full_optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """Shard a full optimizer state (as :func:`full_optimizer_state` gave) into ``optimizer``. A collective."""
    from torch.distributed.checkpoint.state_dict import set_optimizer_state_dict

    set_optimizer_state_dict(_resharded(model), optimizer, state, options=_options(load=True))


__all__ = ["full_model_state", "full_optimizer_state", "is_sharded", "load_full_model_state",
           "load_full_optimizer_state", "shard"]

"""``train/fsdp.py`` in one process: a one-rank gloo group shows what is sharded and the state round trip."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from modelyard.plugins import MODELS, load_builtins
from modelyard.train import fsdp
from modelyard.train.checkpoint import load_checkpoint, save_checkpoint

load_builtins()


@pytest.fixture
def one_rank(tmp_path: Path) -> Iterator[None]:
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1)
    try:
        yield
    finally:
        dist.destroy_process_group()


def _encoder() -> torch.nn.Module:
    torch.manual_seed(0)
    return MODELS.get("transformer-encoder")(vocab_size=40, max_length=8, num_outputs=3, d_model=16, layers=2,
                                             heads=2, dropout=0.0)


def test_blocks_and_root_are_sharded_and_the_full_state_round_trips(one_rank: None, tmp_path: Path) -> None:
    plain = _encoder()
    reference = {k: v.clone() for k, v in plain.state_dict().items()}
    model = fsdp.shard(_encoder())
    assert fsdp.is_sharded(model) and not fsdp.is_sharded(plain)
    assert all(fsdp.is_sharded(block) for block in model.blocks)  # one all-gather unit per transformer block
    ids = torch.randint(0, 40, (4, 8))
    torch.testing.assert_close(model(ids), plain(ids))  # forward leaves the root gathered ...
    state = fsdp.full_model_state(model)                # ... and reading the state reshards it first
    assert state.keys() == reference.keys()
    for name, value in reference.items():
        assert torch.equal(state[name], value), name

    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    model(ids).sum().backward()
    optimizer.step()
    trained = fsdp.full_model_state(model)
    opt_state = fsdp.full_optimizer_state(model, optimizer)
    assert "blocks.0.attn.qkv.weight" in opt_state["state"]  # keyed by name, not position
    path = save_checkpoint(tmp_path / "ckpt", 1, model=model, optimizer=optimizer, best_state=None, loop_state={},
                           model_state=trained, optimizer_state=opt_state)

    fresh = fsdp.shard(_encoder())
    fresh_optimizer = torch.optim.AdamW(fresh.parameters(), lr=0.1)
    load_checkpoint(path, model=fresh, optimizer=fresh_optimizer, restore_rng=False)
    for name, value in fsdp.full_model_state(fresh).items():
        assert torch.equal(value, trained[name]), name
    restored = fsdp.full_optimizer_state(fresh, fresh_optimizer)["state"]["blocks.1.mlp.0.weight"]
    assert torch.equal(restored["exp_avg"], opt_state["state"]["blocks.1.mlp.0.weight"]["exp_avg"])

"""Head pruning of the transformer encoder: fewer heads of the same width, exactly the parent minus those heads."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
from pydantic import ValidationError
from safetensors.torch import load_file

from modelyard.compress.prune import structured_prune
from modelyard.config.compress import PruneVariant
from modelyard.core.errors import ConfigError
from modelyard.runtime.package import WEIGHTS, build_from_spec, save_model

SPEC = {"plugin": "transformer-encoder", "task": "classification",
        "kwargs": {"vocab_size": 40, "max_length": 12, "num_outputs": 4, "d_model": 32, "layers": 2, "heads": 4,
                   "d_ff": 96, "dropout": 0.0}}
WEAK = {0: [1, 3], 1: [0, 1]}  # per block: the heads made least important below
DH = 8                         # 32 / 4


def _inputs() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    mask = torch.ones(5, 12, dtype=torch.long)
    mask[1, 6:] = 0
    return torch.randint(0, 40, (5, 12), generator=g), mask


def _parent() -> torch.nn.Module:
    torch.manual_seed(0)
    parent = build_from_spec(SPEC).eval()
    with torch.no_grad():  # shrink the chosen heads' value rows so the importance score picks them
        for j, heads in WEAK.items():
            qkv = parent.blocks[j].attn.qkv.weight  # (3 * 32, 32): [q | k | v]
            for h in heads:
                qkv[64 + h * DH:64 + (h + 1) * DH] *= 0.01
    return parent


def test_pruned_model_is_the_parent_without_those_heads(tmp_path: Path) -> None:
    parent = _parent()
    pruned, spec = structured_prune(parent, SPEC, 0.0, build_from_spec, head_sparsity=0.5)
    assert spec["kwargs"]["heads"] == 2 and spec["kwargs"]["head_dim"] == DH and spec["kwargs"]["d_model"] == 32
    attention = 2 * (32 * 96 + 96 + 32 * 32)   # per block: qkv weight + bias, proj weight columns
    assert sum(p.numel() for p in parent.parameters()) - sum(p.numel() for p in pruned.parameters()) == attention // 2
    # Reference: the parent with the weak heads' outputs cut where they enter the output projection.
    reference = copy.deepcopy(parent)
    with torch.no_grad():
        for j, heads in WEAK.items():
            for h in heads:
                reference.blocks[j].attn.proj.weight[:, h * DH:(h + 1) * DH] = 0
    with torch.inference_mode():
        torch.testing.assert_close(pruned(*_inputs()), reference(*_inputs()), atol=1e-6, rtol=1e-5)
        assert not torch.allclose(pruned(*_inputs()), parent(*_inputs()), atol=1e-6)  # the heads did matter
    save_model(tmp_path, pruned, spec)  # an ordinary artifact: rebuilt from its kwargs and reloaded
    reloaded = build_from_spec(json.loads((tmp_path / "spec.json").read_text("utf-8"))).eval()
    reloaded.load_state_dict(load_file(str(tmp_path / WEIGHTS)))
    with torch.inference_mode():
        torch.testing.assert_close(reloaded(*_inputs()), pruned(*_inputs()))


def test_heads_and_feed_forward_units_together() -> None:
    pruned, spec = structured_prune(_parent(), SPEC, 0.5, build_from_spec, head_sparsity=0.75)
    assert (spec["kwargs"]["heads"], spec["kwargs"]["d_ff"]) == (1, 48)
    attention = pruned.blocks[0].attn
    assert attention.qkv.weight.shape == (3 * DH, 32) and attention.proj.weight.shape == (32, DH)
    with torch.inference_mode():
        assert pruned(*_inputs()).shape == (5, 4)


def test_head_pruning_needs_heads_and_a_sparsity_in_range() -> None:
    cnn = {"plugin": "cnn", "task": "classification",
           "kwargs": {"in_channels": 1, "image_size": [8, 8], "num_outputs": 10, "channels": [8]}}
    with pytest.raises(ConfigError, match="head pruning needs attention heads; model 'cnn' has none"):
        structured_prune(build_from_spec(cnn), cnn, 0.5, build_from_spec, head_sparsity=0.5)
    with pytest.raises(ValidationError, match=r"head_sparsity must be in \[0, 1\)"):
        PruneVariant(method="prune-structured", head_sparsity=1.0)
    with pytest.raises(ValidationError, match="head_sparsity applies to prune-structured only"):
        PruneVariant(method="prune-magnitude", head_sparsity=0.5)

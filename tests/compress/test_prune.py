"""Pruning: magnitude sparsity is exact and permanent; structured pruning rebuilds smaller tensors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from modelyard.compress.prune import magnitude_prune, structured_prune, weight_sparsity
from modelyard.core.errors import ConfigError
from modelyard.runtime.package import build_from_spec, save_model

SPECS = {
    "mlp": {"plugin": "mlp", "task": "classification",
            "kwargs": {"num_features": 12, "num_outputs": 3, "hidden": [64, 32], "batch_norm": True}},
    "image-mlp": {"plugin": "image-mlp", "task": "classification",
                  "kwargs": {"in_channels": 1, "image_size": [8, 8], "num_outputs": 10, "hidden": [64, 32],
                             "batch_norm": True}},
    "cnn": {"plugin": "cnn", "task": "classification",
            "kwargs": {"in_channels": 1, "image_size": [8, 8], "num_outputs": 10, "channels": [16, 32, 64]}},
    "transformer-encoder": {"plugin": "transformer-encoder", "task": "classification",
                            "kwargs": {"vocab_size": 40, "max_length": 12, "num_outputs": 4, "d_model": 32,
                                       "layers": 2, "heads": 4, "d_ff": 96}},
}


def _inputs(plugin: str) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(0)
    if plugin == "mlp":
        return (torch.randn(5, 12, generator=g),)
    if plugin in ("cnn", "image-mlp"):
        return (torch.rand(5, 1, 8, 8, generator=g),)
    mask = torch.ones(5, 12, dtype=torch.long)
    mask[1, 6:] = 0
    return torch.randint(0, 40, (5, 12), generator=g), mask


def _params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("plugin", sorted(SPECS))
def test_structured_pruning_shrinks_tensors_and_reloads(plugin: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    parent = build_from_spec(SPECS[plugin]).eval()
    pruned, spec = structured_prune(parent, SPECS[plugin], 0.5, build_from_spec)
    if plugin == "transformer-encoder":
        # Only feed-forward units go: 2 blocks x (32x96 up + 96 bias + 96x32 down) / 2 = 6,240 parameters.
        assert _params(parent) - _params(pruned) == 6240
    else:  # half the units: ~1/4 of the weights between pruned layers, 1/2 at the edges
        assert _params(pruned) < 0.62 * _params(parent)
    with torch.inference_mode():
        assert pruned(*_inputs(plugin)).shape == parent(*_inputs(plugin)).shape
    save_model(tmp_path, pruned, spec)  # an ordinary fp32 artifact of the same plugin, smaller arguments
    reloaded = build_from_spec(spec).eval()
    reloaded.load_state_dict(pruned.state_dict())
    with torch.inference_mode():
        torch.testing.assert_close(reloaded(*_inputs(plugin)), pruned(*_inputs(plugin)))


@pytest.mark.parametrize("plugin", sorted(SPECS))
def test_structured_pruning_at_zero_sparsity_is_the_identity(plugin: str) -> None:
    torch.manual_seed(1)
    parent = build_from_spec(SPECS[plugin]).eval()
    if plugin != "transformer-encoder":  # give batch norms non-trivial statistics
        parent.train()
        with torch.no_grad():
            parent(*_inputs(plugin))
        parent.eval()
    pruned, spec = structured_prune(parent, SPECS[plugin], 0.0, build_from_spec)
    assert spec["kwargs"] == {**SPECS[plugin]["kwargs"], **{k: v for k, v in spec["kwargs"].items()
                                                           if k in ("hidden", "channels", "d_ff")}}
    with torch.inference_mode():
        torch.testing.assert_close(pruned(*_inputs(plugin)), parent(*_inputs(plugin)))


def test_structured_kwargs_record_the_new_widths() -> None:
    parent = build_from_spec(SPECS["cnn"]).eval()
    _, spec = structured_prune(parent, SPECS["cnn"], 0.5, build_from_spec)
    assert spec["kwargs"]["channels"] == [8, 16, 32]
    _, spec = structured_prune(build_from_spec(SPECS["transformer-encoder"]), SPECS["transformer-encoder"], 0.25,
                               build_from_spec)
    assert spec["kwargs"]["d_ff"] == 72


def test_structured_pruning_refuses_other_plugins() -> None:
    spec = {"plugin": "gpt", "task": "language-modeling", "kwargs": {"vocab_size": 20, "max_length": 8}}
    with pytest.raises(ConfigError, match="structured pruning does not support model 'gpt'"):
        structured_prune(torch.nn.Linear(2, 2), spec, 0.5, build_from_spec)


def test_magnitude_pruning_hits_the_sparsity_and_is_permanent() -> None:
    torch.manual_seed(2)
    model = build_from_spec(SPECS["mlp"])
    magnitude_prune(model, 0.7)
    assert weight_sparsity(model) == pytest.approx(0.7, abs=1e-3)
    assert not any("weight_orig" in k or "mask" in k for k in model.state_dict())  # masks folded in


@pytest.mark.parametrize("sparsity", [-0.1, 1.0, 1.5])
def test_sparsity_outside_unit_interval_is_refused(sparsity: float) -> None:
    with pytest.raises(ConfigError, match=r"sparsity must be in \[0, 1\)"):
        magnitude_prune(build_from_spec(SPECS["mlp"]), sparsity)
    with pytest.raises(ConfigError, match=r"sparsity must be in \[0, 1\)"):
        structured_prune(build_from_spec(SPECS["mlp"]), SPECS["mlp"], sparsity, build_from_spec)

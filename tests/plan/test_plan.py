"""`yard plan`: counting, memory rules, batch choice, precision choice, auto batch, plan vs measured."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from modelyard import plan as plan_stage
from modelyard.config.loader import load_recipe
from modelyard.core.errors import ConfigError
from modelyard.plan.memory import MB, ModelFootprint, estimate, footprint, parse_bytes
from modelyard.plugins.models.mlp import mlp
from modelyard.store import open_store
from modelyard.store.context import stage_run
from modelyard.train.objectives import build_objective

TINY = Path(__file__).parents[1] / "distributed" / "tiny.yaml"   # wine (178 rows) + an MLP 13→32→16→3
YARD = [sys.executable, "-m", "modelyard.cli.__main__"]


@pytest.mark.parametrize("text, expected", [("8GB", 8 * 1024**3), ("8gib", 8 * 1024**3), ("512MB", 512 * MB),
                                            ("1.5G", int(1.5 * 1024**3)), ("1000", 1000), (" 2 kb ", 2048)])
def test_parse_bytes(text: str, expected: int) -> None:
    assert parse_bytes(text) == expected


@pytest.mark.parametrize("text", ["", "banana", "-1GB", "0", "8XB", "GB"])
def test_parse_bytes_refuses(text: str) -> None:
    with pytest.raises(ConfigError, match="--memory must be a size"):
        parse_bytes(text)


def _tiny_footprint(dropout: float = 0.0) -> ModelFootprint:
    torch.manual_seed(0)
    model = mlp(num_features=13, num_outputs=3, hidden=[32, 16], dropout=dropout)
    x, y = torch.randn(8, 13), torch.randint(0, 3, (8,))
    return footprint(model, ((x,), y), build_objective("classification"))


def test_footprint_counts_an_mlp_exactly() -> None:
    fp = _tiny_footprint()
    # 13·32+32 + 32·16+16 + 16·3+3 parameters.
    assert fp.parameters == fp.trainable == 1027 and fp.parameter_bytes == 4 * 1027
    # Saved for backward per row, fp32: GELU-1 input and Linear-2 input (32 each), GELU-2 input and
    # Linear-3 input (16 each), log-softmax output (3): (32+32+16+16+3)·4 = 396 bytes. The input
    # rows and targets are views of the data tensors: counted once, in the fixed part.
    assert fp.activation_bytes_per_sample == 396.0
    # FLOPs per row: forward 2·(13·32+32·16+16·3) = 1952, weight gradients 1952, input gradients of
    # layers 2 and 3 only (the data needs none) 2·(32·16+16·3) = 1120 → 5024.
    assert fp.flops_per_sample == 5024.0
    assert fp.blocks == 3 and fp.lora_trainable == 8 * ((13 + 32) + (32 + 16) + (16 + 3))
    # Dropout keeps a (B, 32) and a (B, 16) mask: 48 more values per row.
    assert _tiny_footprint(dropout=0.1).activation_bytes_per_sample == 396.0 + 48 * 4


def test_memory_rules_per_optimizer_precision_checkpointing_and_lora() -> None:
    fp = ModelFootprint(parameters=1000, trainable=1000, parameter_bytes=4000, activation_bytes_per_sample=100.0,
                        activation_bytes_fixed=50.0, flops_per_sample=1.0, blocks=4, lora_trainable=10)
    adamw = estimate(fp, batch=8, baseline=1e6, runtime=1e5)
    assert (adamw.weights, adamw.gradients, adamw.optimizer, adamw.best_copy) == (4000, 4000, 8000, 4000)
    assert adamw.activations == 50 + 800
    assert adamw.total == 1e6 + 1e5 + 4000 * 5 + 850
    assert estimate(fp, batch=8, baseline=0, optimizer="sgd").optimizer == 4000
    bf16 = estimate(fp, batch=8, baseline=0, precision="bf16")
    assert bf16.weights == 4000 + 2000 and bf16.activations == 850 / 2   # fp32 master + bf16 copies
    assert estimate(fp, batch=8, baseline=0, checkpointing=True).activations == 850 * 2 / 4
    lora = estimate(fp, batch=8, baseline=0, lora=True)
    assert (lora.gradients, lora.optimizer, lora.weights) == (40, 80, 4000 + 40)


def test_pick_batch_keeps_the_effective_batch_with_accumulation() -> None:
    fp = ModelFootprint(parameters=1000, trainable=1000, parameter_bytes=4000, activation_bytes_per_sample=1000.0,
                        activation_bytes_fixed=0.0, flops_per_sample=1.0, blocks=2, lora_trainable=10)
    fixed = 20_000.0  # weights + grads + adamw + best copy
    # Room for 20 rows of activations: 64 = 16 × 4 (the largest divisor of 64 that fits).
    assert plan_stage.pick_batch(fp, requested=64, rows=1000, baseline=0, budget=fixed + 20_000,
                                 optimizer="adamw", precision="fp32") == (64, 16, 4)
    assert plan_stage.pick_batch(fp, requested=64, rows=1000, baseline=0, budget=1e9, optimizer="adamw",
                                 precision="fp32") == (64, 64, 1)
    # auto: the largest power of two that fits, at most rows/4.
    assert plan_stage.pick_batch(fp, requested="auto", rows=1000, baseline=0, budget=fixed + 100_000,
                                 optimizer="adamw", precision="fp32") == (64, 64, 1)
    assert plan_stage.pick_batch(fp, requested="auto", rows=1000, baseline=0, budget=1e12, optimizer="adamw",
                                 precision="fp32") == (128, 128, 1)   # 1000 rows / 4 → 128


def test_a_budget_below_the_weights_says_what_would_fit() -> None:
    fp = ModelFootprint(parameters=10_000_000, trainable=10_000_000, parameter_bytes=40_000_000,
                        activation_bytes_per_sample=1000.0, activation_bytes_fixed=0.0, flops_per_sample=1.0,
                        blocks=2, lora_trainable=100_000)
    with pytest.raises(ConfigError) as err:
        plan_stage.pick_batch(fp, requested=32, rows=1000, baseline=100 * MB, budget=150 * MB, optimizer="adamw",
                              precision="fp32")
    text = str(err.value)
    assert err.value.where == "--memory"
    assert "smaller than one training step at batch 1" in text and "38.1 MB weights" in text
    assert "LoRA adapters instead of full fine-tuning would fit" in text and "int8 weights" in text


def test_precision_follows_the_measurement(monkeypatch: pytest.MonkeyPatch) -> None:
    measured = {"fp32": 122e9, "bf16": 44e9}   # a CPU without native bf16 (the numbers)
    monkeypatch.setattr(plan_stage, "matmul_flops", lambda dtypes, device: dict(measured))
    assert plan_stage.choose_precision(torch.device("cpu"))[0] == "fp32"
    measured.update(fp32=40e9, bf16=80e9)      # native bf16: twice as fast
    chosen, reason, gflops = plan_stage.choose_precision(torch.device("cpu"))
    assert chosen == "bf16" and gflops == {"fp32": 40.0, "bf16": 80.0} and "bf16 80" in reason
    measured.update(fp32=40e9, bf16=42e9)      # within the noise: stay with fp32
    assert plan_stage.choose_precision(torch.device("cpu"))[0] == "fp32"


@pytest.fixture
def wine(tmp_path: Path):  # type: ignore[no-untyped-def]
    from modelyard import data as data_stage

    recipe = load_recipe(TINY, ["train.batch_size=auto"])
    with open_store() as store:
        with stage_run(store, kind="data", name=recipe.name, config={}) as ctx:
            ref = data_stage.run(recipe, ctx=ctx)
        yield recipe, store, ref


def test_auto_batch_never_exceeds_the_budget(wine) -> None:  # type: ignore[no-untyped-def]
    from modelyard.data.artifact import open_dataset

    recipe, store, ref = wine
    dataset = open_dataset(store, ref)
    baseline = 300.0 * MB   # fixed, so only the budget changes between plans
    plan = {"calibrate": False, "baseline": baseline, "keep_precision": True}   # fp32, as the recipe says
    base = plan_stage.make_plan(recipe, dataset, budget=64 * 1024**3, **plan)
    assert base.batch_size == 16          # 106 train rows / 4 → 26 → the power of two below
    per_row = base.activation_bytes_per_sample
    assert per_row == 396.0   # the same MLP as in test_footprint_counts_an_mlp_exactly
    fixed = base.peak_bytes - 16 * per_row
    chosen = []
    for rows_room in (1, 3, 5, 9, 17):   # budgets with room for this many rows of activations
        budget = fixed + rows_room * per_row + 1.0   # one byte of slack for float summation order
        planned = plan_stage.make_plan(recipe, dataset, budget=budget, **plan)
        assert planned.peak_bytes <= budget
        assert planned.grad_accumulation == 1
        chosen.append(planned.batch_size)
    assert chosen == [1, 2, 4, 8, 16]


def test_resolved_auto_batch_trains_and_lands_beside_the_plan(wine) -> None:  # type: ignore[no-untyped-def]
    from modelyard import train as train_stage
    from modelyard.config.loader import recipe_to_dict

    recipe, store, ref = wine
    resolved = plan_stage.resolve_for_training(recipe, ref, store, budget="64GB")
    assert resolved.train.batch_size == 16 and resolved.train.grad_accumulation == 1
    assert plan_stage.resolve_for_training(resolved, ref, store) is resolved   # a number stays
    with stage_run(store, kind="train", name=resolved.name, config=recipe_to_dict(resolved)) as ctx:
        train_stage.run(resolved, ref, ctx=ctx)
    compared = plan_stage.compare_with_plan(store, ctx.run_id)
    assert compared is not None
    stored = store.runs.get(ctx.run_id)["summary"]["plan_vs_measured"]
    assert stored["predicted"]["peak_memory_mb"] > 100          # the process, not just the tensors
    assert stored["measured"]["peak_memory_mb"] > 100 and stored["measured"]["step_seconds"] > 0
    assert stored["measured_over_predicted"]["peak_memory_mb"] > 0


def test_train_stage_refuses_an_unresolved_auto_batch(wine) -> None:  # type: ignore[no-untyped-def]
    from modelyard import train as train_stage

    recipe, store, ref = wine
    with pytest.raises(ConfigError, match="auto is resolved before the train stage"):
        with stage_run(store, kind="train", name=recipe.name, config={}) as ctx:
            train_stage.run(recipe, ref, ctx=ctx)


@pytest.mark.slow  # a subprocess that prepares data and builds the model
def test_yard_plan_with_a_budget_below_the_process(cli_env: dict[str, str], tmp_path: Path) -> None:
    result = subprocess.run([*YARD, "plan", str(TINY), "--memory", "64MB", "--no-calibrate"], capture_output=True,
                            text=True, env=cli_env, cwd=tmp_path, timeout=300)
    assert result.returncode == 2, result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert "--memory" in line and "budget 64 MB is smaller than one training step" in line and "LoRA" in line


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_plan_for_cuda_without_a_gpu_is_refused(wine) -> None:  # type: ignore[no-untyped-def]
    from modelyard.data.artifact import open_dataset

    _, store, ref = wine
    on_cuda = load_recipe(TINY, ["train.device=cuda"])
    with pytest.raises(ConfigError, match="no CUDA device is available"):
        plan_stage.make_plan(on_cuda, open_dataset(store, ref), calibrate=False)
    with pytest.raises(ConfigError, match="train.device"):
        load_recipe(TINY, ["train.device=tpu"])

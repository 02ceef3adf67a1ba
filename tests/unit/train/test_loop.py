"""The training loop's pieces: exact accumulation, exact in-process resume, guards, schedules, optimizers."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from modelyard.config.train import EarlyStoppingConfig, GuardConfig, OptimizerConfig, ScheduleConfig
from modelyard.core.errors import ArtifactError, ConfigError, TrainingError
from modelyard.plugins import MODELS, load_builtins
from modelyard.store.context import stage_run
from modelyard.train.checkpoint import latest_checkpoint, list_checkpoints
from modelyard.train.loop import LoopSettings, TensorData, backward_step, fit, seed_everything
from modelyard.train.objectives import build_objective, next_token_targets
from modelyard.train.optim import Schedule, build_optimizer, build_schedule

load_builtins()


def _tokens(n: int, length: int, vocab: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random right-padded token rows with lengths 1..length."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, vocab, (n, length), generator=g)
    lengths = torch.randint(1, length + 1, (n,), generator=g)
    mask = (torch.arange(length)[None, :] < lengths[:, None]).long()
    return ids.masked_fill(mask == 0, 0), mask


def _grads(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("task", ["classification", "language-modeling"])
def test_accumulation_equals_one_big_batch_with_padding(task: str) -> None:
    # 4 micro-batches of 6 padded rows (each trimmed to its own longest row) vs one batch of 24.
    ids, mask = _tokens(24, 12, 50, seed=0)
    if task == "classification":
        model = MODELS.get("transformer-encoder")(vocab_size=50, max_length=12, num_outputs=3, d_model=32, layers=2,
                                                  heads=4, dropout=0.0)
        data = TensorData((ids, mask), torch.arange(24) % 3, mask_index=1)
    else:
        model = MODELS.get("gpt")(vocab_size=50, max_length=12, d_model=32, layers=2, heads=4, dropout=0.0)
        data = TensorData((ids, mask), next_token_targets(ids, mask), mask_index=1)
    objective = build_objective(task)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    index = torch.arange(24)
    one = backward_step(model, [data.take(index)], objective, optimizer, device=torch.device("cpu"))
    big = _grads(model)
    micro = [data.take(chunk) for chunk in torch.tensor_split(index, 4)]
    assert len({b[0][0].shape[1] for b in micro}) > 1  # the micro-batches really are padded differently
    four = backward_step(model, micro, objective, optimizer, device=torch.device("cpu"))
    assert four.loss == pytest.approx(one.loss, rel=1e-5)
    for name, grad in _grads(model).items():
        torch.testing.assert_close(grad, big[name], rtol=1e-4, atol=1e-6, msg=name)


def test_mean_of_micro_batch_means_would_be_wrong() -> None:
    # The point of (sum, count): rows with 1 and 11 tokens in separate micro-batches weigh by tokens.
    ids, _ = _tokens(8, 12, 50, seed=1)
    mask = torch.ones(8, 12, dtype=torch.long)
    mask[:4, 2:] = 0  # the first four rows hold 2 tokens (1 target each), the others 12 (11 targets)
    targets = next_token_targets(ids, mask)
    objective = build_objective("language-modeling")
    logits = torch.randn(8, 12, 50, generator=torch.Generator().manual_seed(2))
    logits[:4] *= 10  # the short rows get a much higher loss
    exact = objective(logits, targets) / objective.count(targets)
    halves = [objective.mean(logits[i:i + 4], targets[i:i + 4]) for i in (0, 4)]
    torch.testing.assert_close(exact, torch.nn.functional.cross_entropy(logits.reshape(-1, 50), targets.reshape(-1)))
    assert abs(float(sum(halves) / 2 - exact)) > 0.05


class _Stop(Exception):
    pass


class _StopAt:
    """Progress sink that interrupts training after ``step`` steps (an in-process kill)."""

    def __init__(self, step: int) -> None:
        self.step, self.done = step, 0

    def start(self, description: str, total: int | None) -> None:
        pass

    def advance(self, n: int = 1, **fields: Any) -> None:
        self.done += n
        if self.step and self.done >= self.step:
            raise _Stop

    def stop(self) -> None:
        pass


def _tabular(n: int, seed: int) -> TensorData:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, generator=g)
    return TensorData((x,), (x[:, 0] + 0.5 * x[:, 1] > 0).long())


def _run(store: Any, tmp_path: Path, *, stop_at: int = 0, resume: Path | None = None, **overrides: Any
         ) -> tuple[nn.Module, Any]:
    seed_everything(5)
    model = MODELS.get("mlp")(num_features=6, num_outputs=2, hidden=[16], dropout=0.3, batch_norm=True)
    optimizer = build_optimizer(model, OptimizerConfig(name="adamw", lr=0.01))
    settings = LoopSettings(**{"epochs": 3, "batch_size": 16, "grad_clip": 1.0, "log_every_steps": 2, "seed": 5,
                               "task": "classification", "checkpoint_every_steps": 3, "grad_accumulation": 2,
                               "fingerprint": {"recipe": "a"}, **overrides})
    with stage_run(store, kind="train", name="t", config={}, progress=_StopAt(stop_at)) as ctx:
        result = fit(model, train=_tabular(100, 0), valid=_tabular(40, 1), objective=build_objective("classification"),
                     optimizer=optimizer, settings=settings, ctx=ctx, device=torch.device("cpu"),
                     make_schedule=lambda t, e: build_schedule(optimizer, ScheduleConfig(name="cosine", warmup=0.2),
                                                               t, e),
                     checkpoint_dir=tmp_path / "ckpt", resume_from=resume)
    return model, result


def test_interrupted_then_resumed_equals_uninterrupted_bit_for_bit(store: Any, tmp_path: Path) -> None:
    straight, result = _run(store, tmp_path / "a")
    assert result.steps == 21  # ceil(100 / 16) = 7 steps an epoch, 3 epochs
    with pytest.raises(_Stop):
        _run(store, tmp_path / "b", stop_at=8)
    found = latest_checkpoint(tmp_path / "b" / "ckpt")
    assert found is not None and found.name == "step-000000006"
    assert len(list_checkpoints(tmp_path / "b" / "ckpt")) == 2  # keep: 2
    resumed, again = _run(store, tmp_path / "b", resume=found)
    assert again.resumed_from_step == 6 and again.steps == 21
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name


def test_resume_refuses_another_fingerprint_and_corrupt_files(store: Any, tmp_path: Path) -> None:
    with pytest.raises(_Stop):
        _run(store, tmp_path, stop_at=4)
    found = latest_checkpoint(tmp_path / "ckpt")
    assert found is not None
    with pytest.raises(ConfigError, match=r"checkpoint was made with recipe = 'a', this run has 'b'"):
        _run(store, tmp_path, resume=found, fingerprint={"recipe": "b"})
    raw = bytearray((found / "model.safetensors").read_bytes())
    raw[-3] ^= 0x01
    (found / "model.safetensors").write_bytes(bytes(raw))
    with pytest.raises(ArtifactError, match=r"checkpoint file model.safetensors is corrupt: sha256"):
        _run(store, tmp_path, resume=found)


def _nan_data() -> TensorData:
    data = _tabular(64, 0)
    data.inputs[0][37, 2] = float("nan")  # one poisoned row
    return data


def _guarded(store: Any, tmp_path: Path, policy: str, train: TensorData, lr: float = 0.01,
             task: str = "classification", epochs: int = 2) -> Any:
    seed_everything(0)
    model = (MODELS.get("mlp")(num_features=6, num_outputs=2, hidden=[8], dropout=0.0) if task == "classification"
             else nn.Linear(6, 1))
    optimizer = build_optimizer(model, OptimizerConfig(name="sgd", lr=lr, momentum=0.0, weight_decay=0.0))
    settings = LoopSettings(epochs=epochs, batch_size=16, grad_clip=None, log_every_steps=1, seed=0, task=task,
                            checkpoint_every_steps=2, guards=GuardConfig(on_nonfinite=policy, rollback_lr_factor=0.01))
    with stage_run(store, kind="train", name="g", config={}) as ctx:
        return fit(model, train=train, valid=_tabular(0, 1), objective=build_objective(task), optimizer=optimizer,
                   make_schedule=lambda t, e: build_schedule(optimizer, ScheduleConfig(name="constant"), t, e),
                   settings=settings, ctx=ctx, device=torch.device("cpu"), checkpoint_dir=tmp_path / policy), model


def test_nan_guard_stop_names_the_step(store: Any, tmp_path: Path) -> None:
    order = torch.randperm(64, generator=torch.Generator().manual_seed(0))  # epoch 0's order (seed 0)
    step = int((order == 37).nonzero()) // 16 + 1
    with pytest.raises(TrainingError, match=rf"non-finite training at step {step} \(epoch 1, batch {step}\): "
                                            r"loss is nan"):
        _guarded(store, tmp_path, "stop", _nan_data())


def test_nan_guard_skip_drops_the_batch_and_goes_on(store: Any, tmp_path: Path) -> None:
    result, model = _guarded(store, tmp_path, "skip", _nan_data())
    assert result.skipped_steps == 2 and result.steps == 8  # the poisoned row, once per epoch
    assert all(bool(torch.isfinite(p).all()) for p in model.parameters())


def test_nan_guard_rollback_lowers_the_lr(store: Any, tmp_path: Path) -> None:
    # Linear regression with SGD at lr 1.5, above 2 / (largest Hessian eigenvalue ~3): the error grows
    # ~3.5x a step until its square overflows float32 (~step 35); the last checkpoint (every 2 steps)
    # is finite, and from there (or the one before: a repeated failure steps one further back) a
    # lower LR is stable.
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 6, generator=g)
    data = TensorData((x,), x.sum(dim=1))
    result, model = _guarded(store, tmp_path, "rollback", data, lr=1.5, task="regression", epochs=20)
    assert 1 <= result.rollbacks <= 2 and result.steps == 80  # the first restored checkpoint may be too far gone
    assert all(bool(torch.isfinite(p).all()) for p in model.parameters())


def test_early_stopping_keeps_the_best_weights(store: Any, tmp_path: Path) -> None:
    _, result = _run(store, tmp_path, epochs=30, validate_every_steps=7, checkpoint_every_steps=None,
                         early_stopping=EarlyStoppingConfig(metric="valid/loss", patience=2, min_delta=0.5))
    # min_delta 0.5 on a loss below 0.7: only the first validation can count as an improvement.
    assert result.stopped_early and result.best_step == 7 and result.steps == 21


@pytest.mark.parametrize(("name", "expected"), [
    ("constant", [0.5, 1.0, 1.0, 1.0, 1.0]),
    ("linear", [0.5, 1.0, 0.75, 0.5, 0.25]),
    ("cosine", [0.5, 1.0, 0.5 * (1 + math.cos(math.pi / 4)), 0.5, 0.5 * (1 + math.cos(3 * math.pi / 4))]),
    ("exponential", [0.5, 1.0, 0.5, 0.25, 0.125]),  # x0.5 per epoch (2 steps) after the warm-up
    ("step", [0.5, 1.0, 1.0, 0.5, 0.5]),  # x0.5 every 2 epochs
])
def test_schedules_warm_up_then_decay(name: str, expected: list[float]) -> None:
    # 10 steps, warm-up 0.2 (2 steps), 2 steps an epoch; factors at steps 0, 2, 4, 6, 8 (0-based).
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    schedule = Schedule(optimizer, ScheduleConfig(name=name, warmup=0.2, gamma=0.5, step_epochs=2), 10, 2)
    assert [schedule.factor(s) for s in (0, 2, 4, 6, 8)] == pytest.approx(expected)


def test_plateau_lowers_the_lr_after_patience() -> None:
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    schedule = Schedule(optimizer, ScheduleConfig(name="plateau", patience=1, gamma=0.1), 10, 2)
    for loss in (1.0, 0.9, 0.95, 0.95):
        schedule.observe(loss)
    assert schedule.get_last_lr() == pytest.approx([0.1])
    restored = Schedule(optimizer, ScheduleConfig(name="plateau", patience=1, gamma=0.1), 10, 2)
    restored.load_state_dict(schedule.state_dict())
    assert restored.get_last_lr() == pytest.approx([0.1])


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw", "adagrad", "rmsprop"])
def test_every_optimizer_builds_without_decay_on_norms_and_biases(name: str) -> None:
    model = MODELS.get("transformer-encoder")(vocab_size=20, max_length=8, num_outputs=2, d_model=16, layers=1, heads=2)
    optimizer = build_optimizer(model, OptimizerConfig(name=name, weight_decay=0.1, nesterov=name == "sgd"))
    decayed = {id(p) for g in optimizer.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    for module_name, module in model.named_modules():
        if isinstance(module, (nn.LayerNorm, nn.Embedding)):
            assert not any(id(p) in decayed for p in module.parameters()), module_name
    assert all(id(p) not in decayed for n, p in model.named_parameters() if n.endswith("bias"))
    assert id(model.head.weight) in decayed


def test_unknown_optimizer_and_schedule_suggest_a_name() -> None:
    with pytest.raises(ConfigError, match="adamw"):
        build_optimizer(nn.Linear(2, 2), OptimizerConfig(name="adamww"))
    with pytest.raises(ConfigError, match="cosine"):
        Schedule(torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=1.0), ScheduleConfig(name="cosin"), 10, 2)


def test_deterministic_mode_repeats_bit_for_bit(store: Any, tmp_path: Path) -> None:
    from modelyard.train import deterministic_mode

    with deterministic_mode(True):
        assert torch.are_deterministic_algorithms_enabled()
        first, _ = _run(store, tmp_path / "a", epochs=1)
        second, _ = _run(store, tmp_path / "b", epochs=1)
    assert not torch.are_deterministic_algorithms_enabled()  # restored
    for (name, a), b in zip(first.state_dict().items(), second.state_dict().values()):
        assert torch.equal(a, b), name


def test_flop_count_on_a_few_rows_matches_counting_the_whole_step() -> None:
    from torch.utils.flop_counter import FlopCounterMode

    from modelyard.train.monitor import count_train_flops

    def step_flops(model: nn.Module, x: torch.Tensor) -> float:
        with FlopCounterMode(display=False) as counter:
            model(x).float().sum().backward()
        model.zero_grad(set_to_none=True)
        return counter.get_total_flops() / len(x)

    x = torch.randn(32, 6)
    model = MODELS.get("mlp")(num_features=6, num_outputs=3, hidden=[16, 8], dropout=0.3)
    rng = torch.get_rng_state()
    counted = count_train_flops(model, (x,), device=torch.device("cpu"))
    assert torch.equal(torch.get_rng_state(), rng) and model.training  # no dropout draw, mode restored
    assert all(p.grad is None for p in model.parameters())
    # 3 x forward, the usual MFU convention: it also counts the first layer's input gradient, which
    # the step skips (1488 vs 1296 FLOPs here; token models start with an embedding and match exactly).
    assert step_flops(model, x) <= counted <= 1.2 * step_flops(model, x)
    for p in list(model.parameters())[:2]:
        p.requires_grad_(False)  # a frozen first layer: forward + backward to the trainable ones
    counted = count_train_flops(model, (x,), device=torch.device("cpu"))
    assert counted == pytest.approx(step_flops(model, x), rel=1e-6)
    assert all(p.grad is None for p in model.parameters())

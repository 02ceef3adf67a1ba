"""Distillation under online augmentation: the teacher's soft targets follow the augmented inputs."""

from __future__ import annotations

import numpy as np
import torch

from modelyard.store.context import MetricLogger, RunContext
from modelyard.store.project import Store
from modelyard.train.distill import DistillSettings, augment_with_teacher, distill
from modelyard.train.loop import Batch, LoopSettings, TensorData

CPU = torch.device("cpu")


def _shift(index: torch.Tensor, batch: Batch, rng: np.random.Generator) -> Batch:
    """A toy augmentation: add a random per-batch offset to the features, keep the labels."""
    (x,), labels = batch
    return (x + float(rng.normal()),), labels


def _teacher() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Linear(4, 3)


def test_soft_targets_are_the_teachers_outputs_on_the_augmented_inputs() -> None:
    teacher = _teacher()
    x, labels = torch.randn(5, 4), torch.tensor([0, 1, 2, 1, 0])
    packed = torch.cat([labels.float().unsqueeze(1), torch.zeros(5, 3)], dim=1)  # stale soft targets
    (new_x,), new_packed = augment_with_teacher(_shift, teacher, device=CPU)(
        torch.arange(5), ((x,), packed), np.random.default_rng(7))
    offset = float(np.random.default_rng(7).normal())
    torch.testing.assert_close(new_x, x + offset)
    torch.testing.assert_close(new_packed[:, 0], labels.float())
    with torch.no_grad():
        torch.testing.assert_close(new_packed[:, 1:], teacher(x + offset))


def test_distill_feeds_augmented_batches_and_leaves_valid_alone(store: Store) -> None:
    teacher = _teacher()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(64, 4, generator=g)
    y = teacher(x).argmax(1).detach()
    seen: list[torch.Tensor] = []

    def spy(index: torch.Tensor, batch: Batch, rng: np.random.Generator) -> Batch:
        out = _shift(index, batch, rng)
        seen.append(out[0][0])
        return out

    student = torch.nn.Linear(4, 3)
    run_id = store.runs.create(kind="compress", name="t", config={})
    ctx = RunContext(store=store, run_id=run_id, metrics=MetricLogger(store, run_id))
    settings = LoopSettings(epochs=2, batch_size=16, grad_clip=1.0, log_every_steps=50, seed=0,
                            task="classification", monitor=False)
    result = distill(student, teacher, train=TensorData((x,), y), valid=TensorData((x[:16],), y[:16]),
                     settings=settings, distill_settings=DistillSettings(temperature=2.0, alpha=0.5, lr=0.05),
                     ctx=ctx, device=CPU, augment=spy)
    assert result.steps == 8 and len(seen) == 8  # every training micro-batch, never the validation split
    rows = {tuple(r.tolist()) for batch in seen for r in batch}
    assert not rows & {tuple(r.tolist()) for r in x}  # the student only ever saw augmented rows

"""Distillation: the objective's arithmetic, and a student learning from a teacher through the real loop."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from modelyard.store.context import MetricLogger, RunContext
from modelyard.train.distill import DistillationObjective, DistillSettings, distill, teacher_outputs
from modelyard.train.loop import LoopSettings, TensorData


def test_objective_reduces_to_its_parts() -> None:
    g = torch.Generator().manual_seed(0)
    student, teacher = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g)
    labels = torch.tensor([0, 1, 2, 3, 0, 1])
    packed = torch.cat([labels.float().unsqueeze(1), teacher], dim=1)
    hard_only = DistillationObjective("classification", temperature=3.0, alpha=0.0)
    torch.testing.assert_close(hard_only(student, packed), F.cross_entropy(student, labels, reduction="sum"))
    soft_only = DistillationObjective("classification", temperature=3.0, alpha=1.0)
    expected = 9.0 * F.kl_div(F.log_softmax(student / 3, -1), F.softmax(teacher / 3, -1), reduction="sum")
    torch.testing.assert_close(soft_only(student, packed), expected)
    assert float(soft_only(teacher, packed)) == pytest.approx(0.0, abs=1e-5)  # matching the teacher costs nothing
    # Validation targets are plain labels: the plain task loss, whatever alpha is.
    torch.testing.assert_close(soft_only(student, labels), F.cross_entropy(student, labels, reduction="sum"))


def test_regression_objective_uses_squared_errors() -> None:
    student, teacher, values = torch.tensor([[1.0], [2.0]]), torch.tensor([[1.5], [2.0]]), torch.tensor([0.0, 2.0])
    objective = DistillationObjective("regression", temperature=1.0, alpha=0.5)
    packed = torch.cat([values.unsqueeze(1), teacher], dim=1)
    assert float(objective(student, packed)) == pytest.approx(0.5 * 0.25 + 0.5 * 1.0)


def test_a_small_student_learns_the_teacher(store: object) -> None:
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.tensor(digits.data / 16.0, dtype=torch.float32)
    y = torch.tensor(digits.target)
    train, valid = TensorData((x[:1400],), y[:1400]), TensorData((x[1400:],), y[1400:])
    torch.manual_seed(0)
    teacher = torch.nn.Sequential(torch.nn.Linear(64, 10))  # a "teacher" fitted in closed form below
    with torch.no_grad():  # least-squares one-hot regression: a fixed, decent teacher without a training run
        onehot = F.one_hot(y[:1400], 10).float() * 8 - 4
        solution = torch.linalg.lstsq(torch.cat([x[:1400], torch.ones(1400, 1)], 1), onehot).solution
        teacher[0].weight.copy_(solution[:64].T)
        teacher[0].bias.copy_(solution[64])
    student = torch.nn.Sequential(torch.nn.Linear(64, 16), torch.nn.ReLU(), torch.nn.Linear(16, 10))
    run_id = store.runs.create(kind="compress", name="t", config={})  # type: ignore[attr-defined]
    ctx = RunContext(store=store, run_id=run_id, metrics=MetricLogger(store, run_id))  # type: ignore[arg-type]
    settings = LoopSettings(epochs=8, batch_size=64, grad_clip=1.0, log_every_steps=50, seed=0,
                            task="classification", monitor=False)
    result = distill(student, teacher, train=train, valid=valid, settings=settings,
                     distill_settings=DistillSettings(temperature=2.0, alpha=0.7, lr=0.01), ctx=ctx,
                     device=torch.device("cpu"))
    teacher_acc = float((teacher_outputs(teacher, valid, device=torch.device("cpu")).argmax(1) == valid.targets)
                        .float().mean())
    assert result.best_valid["valid/accuracy"] >= 0.97 * teacher_acc

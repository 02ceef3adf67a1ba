"""Knowledge distillation: a student trained on a teacher's soft targets plus the labels.

The loss of one row (Hinton et al., 2015)::

    alpha * T² * KL(softmax(teacher / T) ‖ softmax(student / T)) + (1 - alpha) * CE(student, y)

(``T²`` keeps the soft term's gradients on the scale of the hard one's.) For regression
the soft term is the squared error to the teacher's prediction.

No second loop body: distillation *is* :func:`~modelyard.train.loop.fit` with another
objective. Without online augmentation the teacher's outputs are computed once (the loop
feeds the same rows every epoch, so re-running the teacher per batch would only cost time)
and packed next to the labels as the training targets, ``(N, 1 + K)``: column 0 the label,
the rest the teacher's logits. With online augmentation (``data.augment.mode: online``)
each augmented micro-batch gets the teacher's outputs *on the augmented inputs*, so the
student matches the teacher where it is trained (and mixup or noise make the soft targets
more informative, not stale). :class:`DistillationObjective` unpacks them; on the
validation split (plain labels) it is the plain task loss, so ``valid/loss`` and
``valid/accuracy`` mean what they mean in ordinary training, and best-epoch selection,
the NaN guards, clipping, the schedule and progress all come from the loop unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from modelyard.config.train import OptimizerConfig, ScheduleConfig
from modelyard.store.context import RunContext
from modelyard.train.loop import Batch, BatchAugment, FitResult, LoopSettings, TensorData, fit
from modelyard.train.objectives import Objective
from modelyard.train.optim import build_optimizer, build_schedule


@dataclass
class DistillSettings:
    """The distillation's own knobs (the rest is :class:`LoopSettings`)."""

    temperature: float
    alpha: float
    lr: float
    weight_decay: float = 0.01


class DistillationObjective(Objective):
    """Summed soft + hard loss over packed targets ``(B, 1 + K)``; the plain task loss over ``(B,)`` targets.

    Args:
        task: ``classification`` or ``regression``.
        temperature: softmax temperature T of the soft targets.
        alpha: weight of the soft term (``1 - alpha`` weighs the labels).
    """

    def __init__(self, task: str, *, temperature: float, alpha: float) -> None:
        super().__init__()
        self.task, self.temperature, self.alpha = task, temperature, alpha

    def forward(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if targets.ndim == 1:  # validation: labels only
            return self._hard(outputs, targets)
        labels, teacher = targets[:, 0], targets[:, 1:]
        if self.task != "classification":
            soft = F.mse_loss(outputs.squeeze(-1), teacher.squeeze(-1), reduction="sum")
            return self.alpha * soft + (1.0 - self.alpha) * self._hard(outputs, labels)
        t = self.temperature
        soft = F.kl_div(F.log_softmax(outputs / t, dim=-1), F.log_softmax(teacher / t, dim=-1), log_target=True,
                        reduction="sum") * (t * t)
        return self.alpha * soft + (1.0 - self.alpha) * self._hard(outputs, labels.long())

    def _hard(self, outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.task == "classification":
            return F.cross_entropy(outputs, labels.long(), reduction="sum")
        return F.mse_loss(outputs.squeeze(-1), labels.float(), reduction="sum")


@torch.no_grad()
def teacher_outputs(teacher: nn.Module, data: TensorData, *, device: torch.device,
                    batch_size: int = 256) -> torch.Tensor:
    """The teacher's outputs (logits or values) for every row of ``data``, in eval mode, as CPU float32."""
    teacher.eval()
    outs = []
    for start in range(0, len(data), batch_size):
        inputs = tuple(t[start:start + batch_size].to(device) for t in data.inputs)
        outs.append(teacher(*inputs).float().cpu())
    return torch.cat(outs)


def pack_targets(labels: torch.Tensor, soft: torch.Tensor) -> torch.Tensor:
    """Labels ``(N,)`` and teacher outputs ``(N, K)`` as one ``(N, 1 + K)`` float target."""
    return torch.cat([labels.float().unsqueeze(1), soft.reshape(len(labels), -1)], dim=1)


def augment_with_teacher(augment: BatchAugment, teacher: nn.Module, *, device: torch.device) -> BatchAugment:
    """``augment`` followed by the teacher's outputs on the augmented inputs, packed with the labels."""

    def augmented(index: torch.Tensor, batch: Batch, rng: np.random.Generator) -> Batch:
        inputs, packed = batch
        new_inputs, labels = augment(index, (inputs, packed[:, 0]), rng)
        soft = teacher_outputs(teacher, TensorData(inputs=new_inputs, targets=labels), device=device)
        return new_inputs, pack_targets(labels, soft)

    return augmented


def distill(student: nn.Module, teacher: nn.Module, *, train: TensorData, valid: TensorData, settings: LoopSettings,
            distill_settings: DistillSettings, ctx: RunContext, device: torch.device,
            augment: BatchAugment | None = None) -> FitResult:
    """Train ``student`` (on ``device``) in place; it ends holding its best validation epoch's weights.

    ``augment`` (online augmentation) is applied to each training micro-batch, and the
    teacher's soft targets are recomputed on the augmented inputs.

    Raises:
        TrainingError: the loss became NaN or infinite (the loop names the step).
    """
    soft = teacher_outputs(teacher, train, device=device)                      # (N, K)
    packed = pack_targets(train.targets, soft)                                 # (N, 1 + K)
    # No mask_index: the loop's padding trim would mistake a (N, 1 + K) target for next-token
    # targets when 1 + K happens to equal the sequence length; the models mask padding anyway.
    packed_train = TensorData(inputs=train.inputs, targets=packed)
    objective = DistillationObjective(settings.task, temperature=distill_settings.temperature,
                                      alpha=distill_settings.alpha)
    optimizer = build_optimizer(student, OptimizerConfig(name="adamw", lr=distill_settings.lr,
                                                         weight_decay=distill_settings.weight_decay))
    schedule = ScheduleConfig(name="cosine", warmup=0.05)
    return fit(student, train=packed_train, valid=valid, objective=objective, optimizer=optimizer,
               make_schedule=lambda total, per_epoch: build_schedule(optimizer, schedule, total, per_epoch),
               settings=settings, ctx=ctx, device=device,
               augment=None if augment is None else augment_with_teacher(augment, teacher, device=device))


__all__ = ["DistillSettings", "DistillationObjective", "augment_with_teacher", "distill", "pack_targets",
           "teacher_outputs"]

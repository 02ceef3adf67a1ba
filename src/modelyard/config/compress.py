"""The recipe's ``compress:`` section: variants to make and the accuracy budget they must meet.

```yaml
compress:
  budget: {metric: accuracy, max_drop: 1.0}      # points (0.01 of accuracy)
  variants:
    - {method: int8-dynamic}
    - {method: int8-static, calibration_rows: 256}
    - {method: prune-structured, sparsity: 0.5, fine_tune_epochs: 3}
    - {method: distill, student: {params: {channels: [16, 32]}}}
    - {method: onnx}
    - {method: onnx-int8}
```

Each variant is a separate model: evaluated on the held-out split, compared with its
parent, and registered only when its metric drop is within the budget.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from modelyard.config.base import Section

DynamicLayer = Literal["linear", "embedding", "lstm", "gru"]


class BudgetConfig(Section):
    """How much worse than its parent a variant may be."""

    metric: str = Field(default="accuracy", description="Metric the gate compares (a registered metric name).")
    max_drop: float = Field(default=1.0, ge=0.0,
                            description="Largest allowed drop in points (hundredths of the metric: 1.0 = one "
                                        "accuracy percentage point); 0 accepts no loss at all.")


class _Variant(Section):
    name: str | None = Field(default=None, description="Label of the variant in reports (default: the method).")

    @property
    def label(self) -> str:
        """The variant's name in reports and tags."""
        return self.name or str(getattr(self, "method", "variant"))


class Int8DynamicVariant(_Variant):
    """Dynamic int8 quantization: int8 weights, activations quantized per batch (Linear / LSTM / GRU)."""

    method: Literal["int8-dynamic"] = Field(description="Dynamic int8 quantization (PyTorch).")
    layers: list[DynamicLayer] = Field(default_factory=lambda: list[DynamicLayer](["linear"]),
                                       description="Layer kinds to quantize: linear; embedding (int8 lookup "
                                                   "tables, for models that only call their embeddings); lstm/gru "
                                                   "are refused (no pickle-free file format yet).")
    per_channel: bool = Field(default=True, description="One weight scale per output channel (Linear).")
    skip: list[str] = Field(default_factory=list, description="Module names kept in fp32 (e.g. the head).")


class Int8StaticVariant(_Variant):
    """Static post-training int8 with a calibration set (conv / linear / batch-norm networks)."""

    method: Literal["int8-static"] = Field(description="Static post-training int8 quantization (FX graph mode).")
    calibration_rows: int = Field(default=256, ge=1, description="Training rows run to calibrate activation ranges.")
    per_channel: bool = Field(default=True, description="One weight scale per output channel.")
    skip: list[str] = Field(default_factory=list, description="Module names kept in fp32.")


class PruneVariant(_Variant):
    """Magnitude (unstructured) or structured (neurons / channels / heads) pruning to a target sparsity."""

    method: Literal["prune-magnitude", "prune-structured"] = Field(
        description="prune-magnitude zeroes the smallest weights; prune-structured removes whole neurons / "
                    "channels / feed-forward units so tensors really shrink.")
    sparsity: float = Field(default=0.5, description="Fraction of weights (or units) removed, in [0, 1).")
    head_sparsity: float = Field(
        default=0.0, description="prune-structured of a transformer-encoder: fraction of each block's attention heads "
                                 "removed, in [0, 1) (at least one stays); 0 keeps every head.")
    fine_tune_epochs: int = Field(default=0, ge=0, description="Epochs of fine-tuning after pruning (0: none).")
    lr: float = Field(default=1e-3, gt=0, description="Learning rate of the fine-tune.")
    batch_size: int = Field(default=64, ge=1, description="Batch size of the fine-tune.")

    @model_validator(mode="after")
    def _sparsity_range(self) -> PruneVariant:
        if not 0.0 <= self.sparsity < 1.0:
            raise ValueError(f"sparsity must be in [0, 1), got {self.sparsity}")
        if not 0.0 <= self.head_sparsity < 1.0:
            raise ValueError(f"head_sparsity must be in [0, 1), got {self.head_sparsity}")
        if self.head_sparsity and self.method != "prune-structured":
            raise ValueError("head_sparsity applies to prune-structured only (magnitude pruning keeps every head)")
        return self


class StudentConfig(Section):
    """The student of a distillation: the teacher's architecture with smaller params, or another model."""

    name: str | None = Field(default=None, description="Model plugin of the student (null: the teacher's).")
    params: dict[str, Any] = Field(default_factory=dict,
                                   description="Factory params; with the teacher's plugin, they override its own.")


class DistillVariant(_Variant):
    """Knowledge distillation: a smaller student trained on the teacher's soft targets plus the labels."""

    method: Literal["distill"] = Field(description="Knowledge distillation into a student model.")
    student: StudentConfig = Field(description="The student model.")
    temperature: float = Field(default=4.0, gt=0, description="Softmax temperature of the soft targets.")
    alpha: float = Field(default=0.7, ge=0.0, le=1.0,
                         description="Weight of the soft-target (KL) loss; 1 - alpha weighs the label loss.")
    epochs: int = Field(default=20, ge=1, description="Training epochs of the student.")
    batch_size: int = Field(default=64, ge=1, description="Batch size.")
    lr: float = Field(default=3e-3, gt=0, description="AdamW learning rate (cosine schedule, 5% warm-up).")


class OnnxVariant(_Variant):
    """ONNX export (dynamic batch / sequence axes) run by ONNX Runtime, optionally ORT int8."""

    method: Literal["onnx", "onnx-int8"] = Field(
        description="onnx: fp32 graph; onnx-int8: the graph with ONNX Runtime dynamic int8 weights.")
    opset: int = Field(default=17, ge=13, le=21, description="ONNX opset version.")
    exporter: Literal["torchscript", "dynamo"] = Field(
        default="torchscript",
        description="torchscript traces (fast; handles data-dependent branches by tracing a padded batch); "
                    "dynamo uses torch.export (fails on data-dependent control flow).")
    parity_tolerance: float = Field(default=1e-4, gt=0,
                                    description="Largest max-abs output difference vs PyTorch for the fp32 graph.")


Variant = Annotated[Int8DynamicVariant | Int8StaticVariant | PruneVariant | DistillVariant | OnnxVariant,
                    Field(discriminator="method")]


class CompressConfig(Section):
    """Stage 6: compressed variants of the trained model, each gated by the accuracy budget."""

    budget: BudgetConfig = Field(default_factory=BudgetConfig, description="The accuracy budget of every variant.")
    variants: list[Variant] = Field(min_length=1, description="Variants to make, in order.")
    split: Literal["valid", "test"] = Field(default="test", description="Held-out split the gate evaluates on.")
    register_accepted: bool = Field(default=True, description="Register accepted variants as new versions.")
    alias: str | None = Field(default=None, description="Alias moved to each accepted variant (null: none).")

    @model_validator(mode="after")
    def _unique_labels(self) -> CompressConfig:
        labels = [v.label for v in self.variants]
        duplicates = sorted({x for x in labels if labels.count(x) > 1})
        if duplicates:
            raise ValueError(f"variant names repeat: {duplicates}; give each a distinct `name`")
        return self

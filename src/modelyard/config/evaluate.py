"""The recipe's ``evaluate:`` and ``register:`` sections."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from modelyard.config.base import Section


class BootstrapConfig(Section):
    """Percentile bootstrap over test rows for every headline metric."""

    samples: int = Field(default=1000, ge=0, le=100_000,
                         description="Resamples of the test rows (0: no confidence intervals).")
    confidence: float = Field(default=0.95, gt=0.5, lt=1.0, description="Coverage of the intervals.")


class ThresholdConfig(Section):
    """Binary classifiers: pick the decision threshold on the validation split."""

    objective: Literal["f1", "precision_at_recall", "recall_at_precision", "youden"] = Field(
        default="f1", description="What the threshold maximises: F1; precision subject to recall ≥ target; "
                                  "recall subject to precision ≥ target; or Youden's J (TPR − FPR).")
    target: float | None = Field(default=None, gt=0.0, le=1.0,
                                 description="The recall / precision floor for *_at_* objectives.")

    @model_validator(mode="after")
    def _target_when_needed(self) -> ThresholdConfig:
        if self.objective in ("precision_at_recall", "recall_at_precision") and self.target is None:
            raise ValueError(f"threshold objective {self.objective!r} needs a target (e.g. target: 0.9)")
        return self


class SliceConfig(Section):
    """One way to cut the test rows: a stored column's values, or a derived quantity in buckets."""

    column: str | None = Field(default=None, description="A column of the dataset (feature, group, id …).")
    derived: Literal["text_length", "brightness"] | None = Field(
        default=None, description="A quantity computed per row: text length in characters, or mean pixel value.")
    buckets: list[float] | None = Field(
        default=None, description="Bucket edges for numeric values (quartiles when omitted).")

    @model_validator(mode="after")
    def _one_source(self) -> SliceConfig:
        if (self.column is None) == (self.derived is None):
            raise ValueError("a slice takes exactly one of column: or derived:")
        if self.buckets is not None and (len(self.buckets) < 2 or sorted(self.buckets) != self.buckets):
            raise ValueError(f"buckets must be at least two increasing edges (got {self.buckets})")
        return self

    @property
    def name(self) -> str:
        """How the slice is labelled in reports."""
        return self.column or self.derived or "?"


class FairnessConfig(Section):
    """Group fairness gaps for one group column."""

    group: str = Field(description="Column whose values are the groups compared.")
    positive: str | None = Field(
        default=None, description="The favourable label (default: the second label of a binary task).")


class RobustnessConfig(Section):
    """The headline metric under increasing input perturbation, drawn as a curve."""

    perturbation: Literal["auto", "gaussian-noise", "rotation", "feature-noise", "char-noise"] = Field(
        default="auto", description="auto: gaussian-noise for images, feature-noise for tables, "
                                    "char-noise for text.")
    levels: list[float] | None = Field(
        default=None, description="Perturbation strengths (noise σ in units of the data's std, degrees, or "
                                  "typo rate); default per perturbation.")

    @model_validator(mode="after")
    def _levels_nonnegative(self) -> RobustnessConfig:
        if self.levels is not None and (not self.levels or min(self.levels) < 0):
            raise ValueError(f"levels must be a non-empty list of values ≥ 0 (got {self.levels})")
        return self


class EvaluateConfig(Section):
    """Stage 4: score the model on the test split."""

    metrics: list[str] = Field(
        default_factory=list, description="Metric names (see `yard plugins`); empty: the task's defaults.")
    bootstrap: BootstrapConfig = Field(default_factory=BootstrapConfig,
                                       description="Confidence intervals by bootstrap.")
    threshold: ThresholdConfig | None = Field(
        default=None, description="Binary only: choose the decision threshold on the validation split.")
    worst_k: int = Field(default=10, ge=0, le=1000, description="Worst-scored test examples to keep for review.")
    slices: list[SliceConfig] = Field(default_factory=list, description="Metrics per slice of the test rows.")
    fairness: FairnessConfig | None = Field(default=None, description="Demographic parity / equal opportunity "
                                                                      "gaps across a group column.")
    robustness: RobustnessConfig | None = Field(
        default_factory=RobustnessConfig, description="Metric under perturbation (null: skip).")
    seed: int = Field(default=0, description="Seed of the bootstrap and the perturbations.")


class RegisterConfig(Section):
    """Stage 7: register the trained model as NAME@vN."""

    enabled: bool = Field(default=True, description="Register the model at the end of the run.")
    alias: str | None = Field(default="staging", description="Alias to point at the new version (null: none).")

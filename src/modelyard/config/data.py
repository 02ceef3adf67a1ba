"""The recipe's ``data:`` section (stage 1, prepare)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from modelyard.config.base import Section

SKLEARN_DATASETS = ("digits", "breast_cancer", "wine", "iris", "diabetes")


class SourceConfig(Section):
    """Where the raw data comes from."""

    format: Literal["csv", "tsv", "jsonl", "parquet", "sklearn"] = Field(
        description="File format, or 'sklearn' for a dataset bundled with scikit-learn."
    )
    path: str | None = Field(
        default=None, description="Data file path, relative to the working directory (file formats)."
    )
    name: Literal["digits", "breast_cancer", "wine", "iris", "diabetes"] | None = Field(
        default=None, description="Bundled scikit-learn dataset name (format: sklearn)."
    )

    @model_validator(mode="after")
    def _path_or_name(self) -> SourceConfig:
        if self.format == "sklearn":
            if self.name is None:
                raise ValueError("format 'sklearn' needs 'name' (one of " + ", ".join(SKLEARN_DATASETS) + ")")
        elif not self.path:
            raise ValueError(f"format {self.format!r} needs 'path'")
        return self


class ColumnsConfig(Section):
    """Which columns play which role. Unnamed numeric columns become features."""

    label: str | None = Field(default=None, description="The label / target column.")
    features: list[str] | None = Field(
        default=None, description="Numeric feature columns; default: every numeric column but the label."
    )
    text: str | None = Field(default=None, description="The text column (text tasks).")
    group: str | None = Field(default=None, description="Group / id column: no group spans two splits.")


class SplitConfig(Section):
    """How rows are divided into train / valid / test."""

    valid: float = Field(default=0.1, ge=0.0, lt=1.0, description="Fraction of rows for validation.")
    test: float = Field(default=0.1, ge=0.0, lt=1.0, description="Fraction of rows for the test split.")
    stratify: bool = Field(default=True, description="Keep class proportions in every split (classification).")

    @model_validator(mode="after")
    def _leaves_train(self) -> SplitConfig:
        if self.valid + self.test >= 1.0:
            raise ValueError(f"valid + test = {self.valid + self.test:g} leaves no training rows")
        return self


class DataConfig(Section):
    """Stage 1: read, validate and split the raw data into a dataset artifact."""

    source: SourceConfig = Field(description="Where the raw data is.")
    columns: ColumnsConfig = Field(default_factory=ColumnsConfig, description="Column roles.")
    split: SplitConfig = Field(default_factory=SplitConfig, description="Train / valid / test split.")

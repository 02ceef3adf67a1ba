"""The Recipe: one YAML file describing a whole run."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, field_validator

from modelyard.config.base import Section
from modelyard.config.compress import CompressConfig
from modelyard.config.data import DataConfig
from modelyard.config.evaluate import EvaluateConfig, RegisterConfig
from modelyard.config.explain import ExplainConfig
from modelyard.config.model import ModelConfig
from modelyard.config.serve import ServeConfig
from modelyard.config.train import TrainConfig
from modelyard.config.tune import TuneConfig, check_space_paths
from modelyard.core.errors import ConfigError
from modelyard.core.names import check_name

RECIPE_VERSION = 1
Task = Literal["classification", "regression", "language-modeling"]


class Recipe(Section):
    """A whole run: data → train → evaluate → register."""

    # `register` is a method name on pydantic's metaclass, so the field is `registration` in
    # Python and `register:` in YAML.
    model_config = ConfigDict(**Section.model_config, populate_by_name=True, serialize_by_alias=True)

    version: int = Field(description=f"Recipe schema version; this modelyard writes {RECIPE_VERSION}.")
    name: str = Field(description="Model name in the registry (letters, digits, '.', '_', '-').")
    seed: int = Field(default=0, description="One seed for splits, initialisation and data order.")
    task: Task = Field(
        description="What the model predicts: classification, regression or language-modeling (text, unlabelled).")
    description: str = Field(default="", description="Intended use, copied into the model card.")
    data: DataConfig = Field(description="Stage 1: data preparation.")
    model: ModelConfig = Field(description="The model architecture.")
    train: TrainConfig = Field(default_factory=TrainConfig, description="Stage 2: training.")
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig, description="Stage 4: evaluation.")
    explain: ExplainConfig = Field(default_factory=ExplainConfig, description="Stage 5: explanation.")
    registration: RegisterConfig = Field(
        default_factory=RegisterConfig, alias="register", description="Stage 7: registration (key: register)."
    )
    tune: TuneConfig | None = Field(default=None, description="Stage 3: hyperparameter search (null: train once).")
    serve: ServeConfig = Field(default_factory=ServeConfig, description="Stage 8: serving (`yard serve --recipe`).")
    compress: CompressConfig | None = Field(
        default=None, description="Stage 6: compressed variants gated by an accuracy budget (null: none).")

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str) -> str:
        try:
            return check_name(value, what="model name")
        except ConfigError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("tune", mode="before")
    @classmethod
    def _tune_paths_exist(cls, value: object) -> object:
        # Before the section's own validation, so the error shows the raw mapping, not a model repr.
        if isinstance(value, dict) and isinstance(value.get("space"), dict):
            check_space_paths(value["space"], cls)
        return value

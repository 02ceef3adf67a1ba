"""Pydantic schemas for every stage and the Recipe that composes them. No torch.

    recipe = load_recipe("recipes/quickstart.yaml", ["train.epochs=3"])
"""

from __future__ import annotations

from modelyard.config.data import ColumnsConfig, DataConfig, SourceConfig, SplitConfig
from modelyard.config.evaluate import EvaluateConfig, RegisterConfig
from modelyard.config.loader import (
    apply_overrides,
    load_recipe,
    parse_yaml,
    recipe_to_dict,
    recipe_to_yaml,
    validate_recipe,
)
from modelyard.config.model import ModelConfig
from modelyard.config.recipe import RECIPE_VERSION, Recipe
from modelyard.config.train import OptimizerConfig, ScheduleConfig, TrainConfig

__all__ = [
    "RECIPE_VERSION", "ColumnsConfig", "DataConfig", "EvaluateConfig", "ModelConfig", "OptimizerConfig",
    "Recipe", "RegisterConfig", "ScheduleConfig", "SourceConfig", "SplitConfig", "TrainConfig",
    "apply_overrides", "load_recipe", "parse_yaml", "recipe_to_dict", "recipe_to_yaml", "validate_recipe",
]

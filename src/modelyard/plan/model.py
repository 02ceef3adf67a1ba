"""The recipe's model and data exactly as the train stage builds them, for counting and calibrating."""

from __future__ import annotations

from typing import Any

from torch import nn

from modelyard.config.recipe import Recipe
from modelyard.data.artifact import Dataset
from modelyard.train import build_model_for, prepare_splits
from modelyard.train.loop import TensorData
from modelyard.train.objectives import Objective, build_objective


def stage_inputs(recipe: Recipe, dataset: Dataset) -> tuple[dict[str, TensorData], dict[str, Any], Objective]:
    """(train/valid tensors, the model's input kwargs, the objective), as ``train.run`` makes them."""
    splits, inputs, _ = prepare_splits(recipe, dataset)
    class_weights = dataset.class_weights if recipe.task == "classification" else None
    objective = build_objective(recipe.task, class_weights=class_weights,
                                label_smoothing=recipe.train.regularization.label_smoothing)
    return splits, inputs, objective


def build(recipe: Recipe, dataset: Dataset, inputs: dict[str, Any]) -> nn.Module:
    """The recipe's model on CPU (weights initialised from the recipe's seed)."""
    import torch

    torch.manual_seed(recipe.seed)
    model, _ = build_model_for(recipe, inputs, dataset.schema.modality)
    return model


__all__ = ["build", "stage_inputs"]

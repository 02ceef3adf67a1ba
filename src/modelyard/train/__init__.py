"""Stage 2, fit: DatasetRef → ModelRef.

Builds the recipe's model plugin for the dataset's inputs, trains it with the loop in
``train/loop.py`` (AdamW, warm-up + cosine, clipping, best-epoch selection), and
publishes ``weights.safetensors`` + ``spec.json`` as a model artifact.

    yard train recipes/quickstart.yaml
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from modelyard.config.recipe import Recipe
from modelyard.core.errors import ConfigError, DataError
from modelyard.core.refs import DatasetRef, ModelRef
from modelyard.data.artifact import Dataset, open_dataset
from modelyard.plugins import MODELS, load_builtins
from modelyard.plugins.models import modality_of
from modelyard.runtime.package import save_model
from modelyard.store.context import RunContext
from modelyard.train.loop import FitResult, LoopSettings, fit, seed_everything
from modelyard.train.optim import build_optimizer, build_schedule


def pick_device(name: str) -> torch.device:
    """``auto`` → CUDA when present, else CPU; ``cuda`` without a GPU is an error."""
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device is 'cuda' but no CUDA device is available")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def input_kwargs(dataset: Dataset) -> dict[str, Any]:
    """The model factory's input description, derived from the dataset schema."""
    schema = dataset.schema
    outputs = schema.num_classes if schema.task == "classification" else 1
    if schema.modality == "image":
        assert schema.image_shape
        c, h, w = schema.image_shape
        return {"in_channels": c, "image_size": [h, w], "num_outputs": outputs}
    if schema.modality == "tabular":
        return {"num_features": len(schema.features), "num_outputs": outputs}
    raise DataError(f"{schema.modality} datasets are not trainable yet")


def build_model(recipe: Recipe, dataset: Dataset) -> tuple[nn.Module, dict[str, Any]]:
    """Build the recipe's model for ``dataset``; returns the module and its factory kwargs.

    Raises:
        PluginError: unknown model name (with did-you-mean).
        ConfigError: the model does not fit the data's modality, or rejects a parameter.
    """
    load_builtins()
    factory = MODELS.get(recipe.model.name)
    modality = modality_of(recipe.model.name)
    if modality != dataset.schema.modality:
        raise ConfigError(f"model {recipe.model.name!r} takes {modality} inputs but the dataset is "
                          f"{dataset.schema.modality}", where="model.name")
    kwargs = {**input_kwargs(dataset), **recipe.model.params}
    try:
        module = factory(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"model {recipe.model.name!r} rejects its params: {exc}", where="model.params") from exc
    return module, kwargs


def run(recipe: Recipe, data: DatasetRef, *, ctx: RunContext) -> ModelRef:
    """Train the recipe's model on ``data`` and publish it.

    Returns:
        The model artifact's reference (its manifest names ``data`` as parent).
    """
    dataset = open_dataset(ctx.store, data)
    ctx.store.artifacts.link_input(ctx.run_id, data)
    if dataset.schema.task != recipe.task:
        raise ConfigError(f"recipe task {recipe.task!r} does not match the dataset's {dataset.schema.task!r}")
    seed_everything(recipe.seed)
    device = pick_device(recipe.train.device)
    model, kwargs = build_model(recipe, dataset)
    model.to(device)

    x_train, y_train = dataset.arrays("train")
    x_valid, y_valid = dataset.arrays("valid")
    if len(x_train) < recipe.train.batch_size:
        # Not an error: a smaller final batch is fine, but a batch larger than the data is a typo.
        raise ConfigError(f"train.batch_size {recipe.train.batch_size} is larger than the training split "
                          f"({len(x_train)} rows)", where="train.batch_size")
    classification = recipe.task == "classification"
    target_dtype = torch.long if classification else torch.float32
    train = (torch.from_numpy(x_train), torch.as_tensor(y_train, dtype=target_dtype))
    valid = (torch.from_numpy(x_valid), torch.as_tensor(y_valid, dtype=target_dtype))
    loss_fn: nn.Module = nn.CrossEntropyLoss() if classification else _RegressionLoss()

    optimizer = build_optimizer(model, recipe.train.optimizer)
    settings = LoopSettings(epochs=recipe.train.epochs, batch_size=recipe.train.batch_size,
                            grad_clip=recipe.train.grad_clip, log_every_steps=recipe.train.log_every_steps,
                            seed=recipe.seed, task=recipe.task)
    ctx.store.runs.log_params(ctx.run_id, {"model": recipe.model.name, **_flat("model", kwargs),
                                           "parameters": sum(p.numel() for p in model.parameters())})
    result = fit(model, train=train, valid=valid, loss_fn=loss_fn, optimizer=optimizer,
                 make_schedule=lambda total: build_schedule(optimizer, recipe.train.schedule, total),
                 settings=settings, ctx=ctx, device=device)

    spec = {"plugin": recipe.model.name, "kwargs": kwargs, "task": recipe.task,
            "modality": dataset.schema.modality, "label_names": dataset.schema.label_names,
            "inputs": {"features": dataset.schema.features, "image_shape": dataset.schema.image_shape,
                       "text": dataset.schema.text}}
    model.to("cpu")
    with ctx.store.artifacts.staging() as folder:
        save_model(folder, model, spec)
        ref = ctx.store.artifacts.publish(folder, kind="model", run_id=ctx.run_id, parents=[data.id],
                                          relation="trained_from",
                                          meta={"plugin": recipe.model.name, "name": recipe.name})
    ctx.store.runs.set_summary(ctx.run_id, _summary(result, ref))
    return ModelRef(id=ref.id)


class _RegressionLoss(nn.Module):
    """MSE between (B, 1) outputs and (B,) targets."""

    def forward(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return nn.functional.mse_loss(outputs.squeeze(-1), targets)


def _flat(prefix: str, values: dict[str, Any]) -> dict[str, Any]:
    return {f"{prefix}.{k}": v for k, v in values.items()}


def _summary(result: FitResult, ref: ModelRef | Any) -> dict[str, Any]:
    return {"model": ref.id, "steps": result.steps, "best_epoch": result.best_epoch,
            "wall_seconds": round(result.wall_seconds, 3), **result.best_valid}


__all__ = ["build_model", "input_kwargs", "pick_device", "run"]

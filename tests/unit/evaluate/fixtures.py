"""Tiny datasets and models for the evaluation, explanation and report tests.

Models are trained here with a plain full-batch loop (not the training stage), so these
tests pin evaluation behaviour whatever the training engine does; the artifact has the
same layout as the training stage's (``runtime/package.py``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from modelyard import data as data_stage
from modelyard.config.loader import validate_recipe
from modelyard.core.refs import DatasetRef, ModelRef
from modelyard.data.artifact import open_dataset
from modelyard.plugins import MODELS, load_builtins
from modelyard.runtime.package import save_model
from modelyard.store.context import stage_run


def prepare(store: Any, source: dict[str, Any], *, task: str = "classification", seed: int = 0,
            columns: dict[str, Any] | None = None, split: dict[str, Any] | None = None) -> DatasetRef:
    """A dataset artifact from ``source`` (sklearn / csv) with a 15% valid and 25% test split."""
    data: dict[str, Any] = {"source": source, "split": split or {"valid": 0.15, "test": 0.25}}
    if columns:
        data["columns"] = columns
    recipe = validate_recipe({"version": 1, "name": "t", "task": task, "seed": seed, "data": data,
                              "model": {"name": "mlp"}})
    with stage_run(store, kind="data", name="t", config={}) as ctx:
        return data_stage.run(recipe, ctx=ctx)


def make_model(store: Any, ref: DatasetRef, *, plugin: str = "mlp", params: dict[str, Any] | None = None,
               epochs: int = 60, lr: float = 0.03, seed: int = 0, label_names: list[str] | None = None) -> ModelRef:
    """Train ``plugin`` on the dataset's train split (full batch Adam, seeded) and publish it."""
    load_builtins()
    dataset = open_dataset(store, ref)
    schema = dataset.schema
    x, y = dataset.arrays("train", balance=False, augment=False)
    classification = schema.task == "classification"
    outputs = schema.num_classes if classification else 1
    if schema.modality == "image":
        c, h, w = schema.image_shape  # type: ignore[misc]
        kwargs: dict[str, Any] = {"in_channels": c, "image_size": [h, w], "num_outputs": outputs}
    else:
        kwargs = {"num_features": len(schema.features), "num_outputs": outputs}
    kwargs.update(params or {})
    torch.manual_seed(seed)
    module = MODELS.get(plugin)(**kwargs)
    optimizer = torch.optim.Adam(module.parameters(), lr=lr)
    xt = torch.from_numpy(x)
    yt = torch.as_tensor(y, dtype=torch.long if classification else torch.float32)
    module.train()
    for _ in range(epochs):
        optimizer.zero_grad()
        out = module(xt)
        loss = (torch.nn.functional.cross_entropy(out, yt) if classification
                else torch.nn.functional.mse_loss(out.squeeze(-1), yt))
        loss.backward()
        optimizer.step()
    module.eval()
    spec = {"plugin": plugin, "kwargs": kwargs, "task": schema.task, "modality": schema.modality,
            "label_names": label_names if label_names is not None else schema.label_names,
            "inputs": {"features": schema.features, "image_shape": schema.image_shape, "text": schema.text}}
    with store.artifacts.staging() as folder:
        save_model(folder, module, spec)
        published = store.artifacts.publish(folder, kind="model", parents=[ref.id], relation="trained_from",
                                            meta={"plugin": plugin, "name": "t"})
    return ModelRef(id=published.id)


def noisy_labels(y: np.ndarray, rate: float, k: int, seed: int) -> np.ndarray:
    """``y`` with a seeded share of labels replaced at random."""
    rng = np.random.default_rng(seed)
    flip = rng.random(len(y)) < rate
    return np.where(flip, rng.integers(0, k, len(y)), y)

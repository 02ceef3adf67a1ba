"""Online augmentation (data.augment.mode: online): the loop augments each train batch, seeded per step."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from tests.unit.train.corpora import topic_csv
from torch import nn

from modelyard import data as data_stage
from modelyard import train as train_stage
from modelyard.config import load_recipe
from modelyard.config.recipe import Recipe
from modelyard.config.train import ScheduleConfig
from modelyard.core.refs import DatasetRef
from modelyard.data.artifact import open_dataset
from modelyard.runtime.package import load_model
from modelyard.store.context import stage_run
from modelyard.store.project import Store
from modelyard.train.loop import LoopSettings, epoch_order, fit
from modelyard.train.objectives import build_objective
from modelyard.train.optim import build_schedule

RECIPE = """\
version: 1
name: bc-online
seed: 3
task: classification
data:
  source: {format: sklearn, name: breast_cancer}
  split: {valid: 0.2, test: 0.2, stratify: true}
  augment: {mode: online, tabular: [{name: gaussian-noise, p: 1.0, params: {std: 0.5}}]}
model:
  name: mlp
  params: {hidden: [16]}
train:
  epochs: 2
  batch_size: 64
  optimizer: {name: adamw, lr: 0.01}
"""


def _recipe(tmp_path: Path, text: str = RECIPE) -> Recipe:
    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    return load_recipe(path)


def _data(store: Store, recipe: Recipe) -> DatasetRef:
    with stage_run(store, kind="data", name=recipe.name, config={}) as ctx:
        return data_stage.run(recipe, ctx=ctx)


class _Probe(nn.Module):
    """A linear model that records what it is fed, in training and in evaluation."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.linear = nn.Linear(features, 2)
        self.seen: dict[str, list[torch.Tensor]] = {"train": [], "eval": []}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen["train" if self.training else "eval"].append(x.detach().clone())
        return self.linear(x)


def test_train_batches_change_every_epoch_and_valid_is_untouched(store: Store, tmp_path: Path) -> None:
    recipe = _recipe(tmp_path)
    dataset = open_dataset(store, _data(store, recipe))
    assert dataset.arrays("train")[0].shape[0] == len(dataset.labels("train"))  # online: no offline copies
    splits, _, tokenizer = train_stage.prepare_splits(recipe, dataset)
    augment = train_stage.online_augment(recipe, dataset, tokenizer)
    assert augment is not None
    train, valid = splits["train"], splits["valid"]
    n = len(train)
    probe = _Probe(train.inputs[0].shape[1])
    settings = LoopSettings(epochs=2, batch_size=n, grad_clip=None, log_every_steps=10, seed=3,
                            task="classification", monitor=False)
    optimizer = torch.optim.SGD(probe.parameters(), lr=0.0)
    with stage_run(store, kind="train", name="probe", config={}) as ctx:
        fit(probe, train=train, valid=valid, objective=build_objective("classification"), optimizer=optimizer,
            make_schedule=lambda t, e: build_schedule(optimizer, ScheduleConfig(name="constant"), t, e),
            settings=settings, ctx=ctx, device=torch.device("cpu"), augment=augment)
    # One step per epoch over every train row: put each epoch's batch back in row order.
    epochs = []
    for e, fed in enumerate(probe.seen["train"]):
        restored = torch.empty_like(fed)
        restored[epoch_order(n, 3, e)] = fed
        epochs.append(restored)
    assert len(epochs) == 2
    clean = train.inputs[0]
    for fed in epochs:
        noise = fed - clean
        assert 0.3 < float(noise.std()) < 0.7  # std 0.5 noise on every row (p = 1)
    assert not torch.allclose(epochs[0], epochs[1])  # a fresh draw each epoch
    # Validation (after each epoch) sees the stored rows exactly.
    per_pass = -(-len(valid) // 256)
    assert len(probe.seen["eval"]) == 2 * per_pass
    for start in (0, per_pass):
        assert torch.equal(torch.cat(probe.seen["eval"][start:start + per_pass]), valid.inputs[0])


def test_online_augmented_training_is_reproducible(store: Store, tmp_path: Path) -> None:
    recipe = _recipe(tmp_path)
    dataset = _data(store, recipe)
    plain = _recipe(tmp_path, "\n".join(line for line in RECIPE.splitlines() if "augment" not in line))

    def weights(r: Recipe, data: DatasetRef) -> dict[str, Any]:
        with stage_run(store, kind="train", name=r.name, config={}) as ctx:
            ref = train_stage.run(r, data, ctx=ctx)
        return load_model(store, ref).module.state_dict()

    first, second = weights(recipe, dataset), weights(recipe, dataset)
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)
    unaugmented = weights(plain, _data(store, plain))
    assert any(not torch.equal(first[k], unaugmented[k]) for k in first)



TOPIC = """\
version: 1
name: topics-online
seed: 2
task: classification
data:
  source: {{format: csv, path: {path}}}
  columns: {{text: text, label: label}}
  split: {{valid: 0.15, test: 0.2, stratify: true}}
  augment: {{mode: online, text: [{{name: random-swap, p: 1.0}}]}}
model:
  name: gru
  params: {{embed_dim: 16, hidden: 16}}
  tokenizer: {{name: char, max_length: 32}}
train:
  epochs: 1
  batch_size: 16
  checkpoint: {{enabled: false}}
"""


def test_online_text_augmentation_retokenizes_each_batch(store: Store, tmp_path: Path) -> None:
    recipe = _recipe(tmp_path, TOPIC.format(path=topic_csv(tmp_path / "topics.csv", rows=90)))
    dataset = open_dataset(store, _data(store, recipe))
    splits, _, tokenizer = train_stage.prepare_splits(recipe, dataset)
    augment = train_stage.online_augment(recipe, dataset, tokenizer)
    assert augment is not None
    train = splits["train"]
    index = torch.arange(16)
    clean = train.take(index)
    one = augment(index, clean, np.random.default_rng(0))
    again = augment(index, clean, np.random.default_rng(0))
    other = augment(index, clean, np.random.default_rng(1))
    assert torch.equal(one[1], clean[1])  # labels kept
    assert all(torch.equal(a, b) for a, b in zip(one[0], again[0], strict=True))  # same generator, same batch
    assert not torch.equal(one[0][0], clean[0][0]) and not torch.equal(one[0][0], other[0][0])
    with stage_run(store, kind="train", name=recipe.name, config={}) as ctx:
        train_stage.run(recipe, dataset.ref, ctx=ctx)
    assert store.runs.get(ctx.run_id)["status"] == "finished"

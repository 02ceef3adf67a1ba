"""The compress stage on a text model: tokenizer carried over, ONNX with two dynamic axes, FFN pruning."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelyard import compress as compress_stage
from modelyard import data as data_stage
from modelyard import train as train_stage
from modelyard.config.loader import load_recipe
from modelyard.core.errors import ConfigError
from modelyard.core.refs import ModelRef
from modelyard.runtime.package import load_model, model_tokenizer
from modelyard.store.context import stage_run
from modelyard.store.project import Store
from tests.unit.train.corpora import topic_csv

RECIPE = """\
version: 1
name: topics
seed: 3
task: classification
data:
  source: {{format: csv, path: {path}}}
  columns: {{text: text, label: label}}
  split: {{valid: 0.15, test: 0.2, stratify: true}}
model:
  name: transformer-encoder
  params: {{d_model: 32, layers: 2, heads: 4, dropout: 0.0}}
  tokenizer: {{name: wordpiece, max_length: 16, params: {{vocab_size: 200}}}}
train:
  epochs: 8
  batch_size: 16
  optimizer: {{name: adamw, lr: 0.005}}
  schedule: {{name: linear, warmup: 0.1}}
  checkpoint: {{enabled: false}}
compress:
  budget: {{metric: accuracy, max_drop: 5.0}}
  variants:
    - {{method: int8-dynamic}}
    - {{method: prune-structured, sparsity: 0.5, head_sparsity: 0.5, fine_tune_epochs: 2}}
    - {{method: onnx}}
    - {{method: int8-static}}
"""


def test_text_encoder_variants(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "recipe.yaml"
    path.write_text(RECIPE.format(path=topic_csv(tmp_path / "topics.csv")), encoding="utf-8")
    recipe = load_recipe(path)
    # int8-static does not apply to an encoder: refused up front, naming the layer.
    with stage_run(store, kind="data", name="t", config={}) as ctx:
        dataset = data_stage.run(recipe, ctx=ctx)
    with stage_run(store, kind="train", name="t", config={}) as ctx:
        model = train_stage.run(recipe, dataset, ctx=ctx)
    with pytest.raises(ConfigError, match=r"variants\[3\] \(int8-static\).*'tok_emb' \(Embedding\)"):
        with stage_run(store, kind="compress", name="t", config={}) as ctx:
            compress_stage.run(recipe, model, dataset, ctx=ctx)
    assert recipe.compress is not None
    recipe = recipe.model_copy(update={"compress": recipe.compress.model_copy(
        update={"variants": recipe.compress.variants[:3]})})
    with stage_run(store, kind="compress", name="t", config={}) as ctx:
        result = compress_stage.run(recipe, model, dataset, ctx=ctx)
    by_name = {v.name: v for v in result.variants}
    assert result.parent_metrics["accuracy"] >= 0.8  # 48 test rows of 3 topics (chance 1/3)
    assert by_name["onnx"].status == "accepted" and by_name["onnx"].details["parity_max_abs"] <= 1e-4
    assert by_name["int8-dynamic"].status == "accepted"
    pruned = by_name["prune-structured"]
    assert pruned.details["kwargs"]["d_ff"] == 64  # 4 x 32 feed-forward units, half kept
    assert (pruned.details["kwargs"]["heads"], pruned.details["kwargs"]["head_dim"]) == (2, 8)  # of 4 heads of 8
    for variant in result.variants:
        if variant.artifact:  # every stored text variant carries the parent's tokenizer
            loaded = load_model(store, ModelRef(id=variant.artifact))
            assert model_tokenizer(loaded) is not None

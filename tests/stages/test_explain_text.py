"""Explanation of text classifiers through the pipeline: token Integrated Gradients on the embeddings.

Tiny models on tiny data: the point is that the attributions are the model's own (their sum
is F(text) − F(all padding), recomputed here by hand) and that the report shows them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from tests.unit.train.corpora import topic_csv

from modelyard import explain as explain_stage
from modelyard.config import load_recipe
from modelyard.config.explain import ExplainConfig
from modelyard.core.errors import DataError
from modelyard.core.refs import DatasetRef, ModelRef
from modelyard.pipeline import run_recipe
from modelyard.runtime.package import load_model, model_tokenizer
from modelyard.store.context import stage_run
from modelyard.store.project import Store

TOPIC = """\
version: 1
name: topics-explain
seed: 3
task: classification
data:
  source: {{format: csv, path: {path}}}
  columns: {{text: text, label: label}}
  split: {{valid: 0.2, test: 0.3, stratify: true}}
model:
  name: {model}
  params: {params}
  tokenizer: {tokenizer}
train:
  epochs: 3
  batch_size: 16
  optimizer: {{name: adamw, lr: 0.005}}
  checkpoint: {{enabled: false}}
evaluate:
  metrics: [accuracy]
  bootstrap: {{samples: 20}}
explain: {{examples: 3, steps: 64, gradient_rows: 8, rows: 20, top_tokens: 10}}
register: {{enabled: false}}
"""


def _explanation(store: Store, run_id: str) -> dict[str, Any]:
    reports = [store.artifacts.path(a) / explain_stage.REPORT_FILE for a, kind in store.runs.artifacts(run_id)
               if kind == "report"]
    assert len(reports) == 1
    return json.loads(reports[0].read_text("utf-8"))  # type: ignore[no-any-return]


@pytest.mark.parametrize(("model", "params", "tokenizer"), [
    ("transformer-encoder", "{d_model: 24, layers: 1, heads: 2, dropout: 0.0}",
     "{name: wordpiece, max_length: 16, params: {vocab_size: 160}}"),
    ("gru", "{embed_dim: 16, hidden: 16}", "{name: char, max_length: 40}"),
])
def test_text_classifier_token_attributions(store: Store, tmp_path: Path, model: str, params: str,
                                            tokenizer: str) -> None:
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(TOPIC.format(path=topic_csv(tmp_path / "topics.csv", rows=90), model=model, params=params,
                                   tokenizer=tokenizer), encoding="utf-8")
    result = run_recipe(load_recipe(recipe), store, report_dir=tmp_path / "html")
    report = _explanation(store, result.stage_runs["explain"])
    assert report["modality"] == "text" and report["methods"] == ["integrated-gradients"]
    ig, tokens = report["integrated_gradients"], report["tokens"]
    assert len(tokens) == len(report["examples"]) == 3 and ig["explained_rows"] == 8

    loaded = load_model(store, result.model)
    tok = model_tokenizer(loaded)
    assert tok is not None
    for example, local in zip(report["examples"], tokens):
        ids = np.array([local["ids"]])
        assert len(local["tokens"]) == len(local["scores"]) == ids.shape[1] > 0
        # the pieces carry the text's own spacing: joined, they read as the (normalised) text
        joined = "".join(local["tokens"]).replace("[CLS]", "").replace("[SEP]", "")
        assert " ".join(joined.split()).lower() == " ".join(example["text"].split()).lower()
        mask = np.ones_like(ids)
        with torch.no_grad():
            x = loaded.module(torch.from_numpy(ids), torch.from_numpy(mask)).double().numpy()[0]
            b = loaded.module(torch.full_like(torch.from_numpy(ids), tok.pad_id),
                              torch.from_numpy(mask)).double().numpy()[0]
        label = report["labels"].index(example["prediction"])
        gap = x[label] - b[label]  # completeness: Σ attributions = F(x) − F(baseline)
        assert sum(local["scores"]) == pytest.approx(gap, abs=0.02 * abs(gap) + 1e-3)
        assert local["delta"] <= 0.02 * abs(gap) + 1e-3
        assert int(np.argmax(x)) == label  # the explained class is the model's prediction
    assert ig["max_delta"] >= max(ig["local_delta"]) and 0 < len(ig["global_tokens"]) <= 10
    means = [t["mean_abs"] for t in ig["global_tokens"]]
    assert means == sorted(means, reverse=True) and all(t["count"] >= 1 for t in ig["global_tokens"])

    assert result.report_path is not None
    page = result.report_path.read_text("utf-8")
    assert "Token attributions" not in page or "class='tok'" in page
    assert page.count("class='tokens'") == 3 and "completeness delta" in page
    assert "mean |attribution| per token" in page  # the global bar chart's alt text
    first = tokens[0]
    assert f"title='{first['scores'][0]:+.4f}'" in page


def test_language_model_is_refused_with_a_reason(store: Store, tmp_path: Path, monkeypatch: Any) -> None:
    class Schema:
        modality, task = "text", "language-modeling"

    class Data:
        schema = Schema()

    monkeypatch.setattr(explain_stage, "open_dataset", lambda *_: Data())
    with stage_run(store, kind="explain", name="lm", config={}) as ctx, \
            pytest.raises(DataError, match="language models cannot be explained"):
        explain_stage.run(ExplainConfig(), ModelRef(id="m" * 64), DatasetRef(id="d" * 64), ctx=ctx)

"""Evaluation of text models through the pipeline: classifiers and a causal language model.

Tiny models on tiny data; the point is that the report's numbers are the model's own
(recomputed here by hand from the saved model and tokenizer), not that they are good.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from tests.unit.train.corpora import docstring_corpus, topic_csv

from modelyard import evaluate as evaluate_stage
from modelyard.config import load_recipe
from modelyard.data.artifact import open_dataset
from modelyard.pipeline import run_recipe
from modelyard.runtime.package import load_model, model_tokenizer
from modelyard.store.project import Store

TOPIC = """\
version: 1
name: topics-eval
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
  epochs: 4
  batch_size: 16
  optimizer: {{name: adamw, lr: 0.005}}
  checkpoint: {{enabled: false}}
evaluate:
  metrics: [accuracy, macro_f1, log_loss]
  bootstrap: {{samples: 50}}
  worst_k: 3
  slices: [{{derived: text_length}}]
  robustness: {{levels: [0.0, 0.3]}}
explain: {{enabled: false}}
register: {{enabled: false}}
"""

GPT = """\
version: 1
name: gpt-eval
seed: 2
task: language-modeling
data:
  source: {{format: text, path: {path}}}
  split: {{valid: 0.1, test: 0.2}}
model:
  name: gpt
  params: {{d_model: 32, layers: 1, heads: 2, dropout: 0.0}}
  tokenizer: {{name: bpe, max_length: 32, params: {{vocab_size: 300, special_tokens: gpt}}}}
train:
  epochs: 1
  batch_size: 32
  optimizer: {{name: adamw, lr: 0.003}}
  checkpoint: {{enabled: false}}
evaluate:
  bootstrap: {{samples: 30}}
  worst_k: 2
explain: {{enabled: false}}
register: {{enabled: false}}
"""


def _run(store: Store, tmp_path: Path, text: str) -> tuple[Any, dict[str, Any]]:
    path = tmp_path / "recipe.yaml"
    path.write_text(text, encoding="utf-8")
    result = run_recipe(load_recipe(path), store)
    return result, evaluate_stage.read_report(store, result.evaluation)


def _outputs(store: Store, result: Any, split: str = "test") -> tuple[np.ndarray, np.ndarray, Any, list[str]]:
    """The saved model's logits on ``split``, encoded by hand at the full max_length."""
    loaded = load_model(store, result.model)
    tokenizer = model_tokenizer(loaded)
    assert tokenizer is not None
    texts, y = open_dataset(store, result.dataset).texts(split, balance=False, augment=False)
    ids, mask = tokenizer.encode_batch(texts, loaded.spec["tokenizer"]["max_length"])
    with torch.no_grad():
        out = loaded.module(torch.from_numpy(ids), torch.from_numpy(mask)).double().numpy()
    return out, y, (ids, mask), texts


@pytest.mark.parametrize(("model", "params", "tokenizer"), [
    ("transformer-encoder", "{d_model: 24, layers: 1, heads: 2, dropout: 0.0}",
     "{name: wordpiece, max_length: 16, params: {vocab_size: 160}}"),
    ("gru", "{embed_dim: 16, hidden: 16}", "{name: char, max_length: 40}"),
])
def test_text_classifier_is_evaluated_on_its_own_predictions(store: Store, tmp_path: Path, model: str,
                                                             params: str, tokenizer: str) -> None:
    csv_path = topic_csv(tmp_path / "topics.csv", rows=90)
    result, report = _run(store, tmp_path, TOPIC.format(path=csv_path, model=model, params=params,
                                                        tokenizer=tokenizer))
    logits, y, _, texts = _outputs(store, result)
    pred = logits.argmax(axis=1)
    prob = np.exp(logits - logits.max(axis=1, keepdims=True))
    prob /= prob.sum(axis=1, keepdims=True)
    assert report["modality"] == "text" and report["rows"] == len(y) == 27
    assert report["metrics"]["accuracy"] == pytest.approx(float((pred == y).mean()))
    assert report["metrics"]["log_loss"] == pytest.approx(float(-np.log(prob[np.arange(len(y)), y]).mean()),
                                                          rel=1e-4)
    assert np.array(report["confusion_matrix"]).sum() == 27
    assert result.metrics["test/accuracy"] == pytest.approx(report["metrics"]["accuracy"])
    worst = report["worst_examples"]
    assert len(worst) == 3 and all(w["input"] == texts[w["row"]] for w in worst)
    assert sum(r["rows"] for r in report["slices"][0]["rows"]) == 27
    assert [p["level"] for p in report["robustness"]["points"]] == [0.0, 0.3]
    assert report["robustness"]["points"][0]["value"] == pytest.approx(report["metrics"]["accuracy"])


def test_language_model_perplexity_is_the_models_own(store: Store, tmp_path: Path) -> None:
    corpus = docstring_corpus(tmp_path / "corpus.txt", max_lines=150)
    result, report = _run(store, tmp_path, GPT.format(path=corpus))
    logits, _, (ids, mask), texts = _outputs(store, result)  # (B, T, V)
    targets = np.full_like(ids, -100)
    targets[:, :-1] = np.where(mask[:, 1:] == 0, -100, ids[:, 1:])
    keep = targets != -100
    logp = logits - logits.max(axis=-1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(axis=-1, keepdims=True))
    nll = -np.take_along_axis(logp, np.where(keep, targets, 0)[..., None], axis=-1)[..., 0][keep]
    assert report["task"] == "language-modeling" and report["rows"] == len(texts)
    assert report["tokens"] == int(keep.sum())
    assert report["metrics"]["perplexity"] == pytest.approx(math.exp(nll.mean()), rel=1e-4)
    hits = logits.argmax(axis=-1)[keep] == targets[keep]
    assert report["metrics"]["token_accuracy"] == pytest.approx(float(hits.mean()))
    assert 1 < report["metrics"]["perplexity"] < 300  # better than uniform over the 300 tokens
    low, high = report["intervals"]["perplexity"]["low"], report["intervals"]["perplexity"]["high"]
    assert low <= report["metrics"]["perplexity"] <= high
    worst = report["worst_examples"]
    assert len(worst) == 2 and worst[0]["perplexity"] >= worst[1]["perplexity"]
    assert worst[0]["input"] == texts[worst[0]["row"]]

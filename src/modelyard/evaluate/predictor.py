"""A model as a function on arrays, and the checks that it fits a dataset.

Evaluation and explanation only need ``outputs(inputs) -> (N, K) logits or (N, 1) values``;
today that is the eager torch model of ``runtime/predict.py``, and an ONNX or int8 variant
plugs in by building a :class:`Predictor` around its own function.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from modelyard.core.errors import DataError
from modelyard.core.refs import ModelRef
from modelyard.data.artifact import Dataset
from modelyard.evaluate.scoring import Scores
from modelyard.store.project import Store


@dataclass
class Predictor:
    """Raw outputs for a batch of inputs, plus what the model was trained for."""

    outputs: Callable[[Any], np.ndarray]
    task: str
    modality: str
    label_names: list[str]
    spec: dict[str, Any] = field(default_factory=dict)
    module: Any = None  # the torch module when there is one (gradient explanations need it)
    # Language models: texts -> Scores over their target tokens (``y_true`` of :meth:`scores` is unused).
    token_scores: Callable[[Any], Scores] | None = None

    def scores(self, inputs: Any, y_true: np.ndarray, *, threshold: float | None = None) -> Scores:
        """Predictions on ``inputs`` as :class:`Scores` (``threshold``: binary decision on P(class 1)).

        A language model is scored per target token (next-token ids, probabilities, and the
        text each token belongs to in ``Scores.groups``); ``y_true`` is then not used.
        """
        if self.token_scores is not None:
            return self.token_scores(inputs)
        out = np.asarray(self.outputs(inputs), dtype=np.float64)
        if self.task == "classification":
            shifted = out - out.max(axis=1, keepdims=True)
            prob = np.exp(shifted)
            prob /= prob.sum(axis=1, keepdims=True)
            pred = (prob[:, 1] >= threshold).astype(np.int64) if threshold is not None else prob.argmax(axis=1)
            return Scores(y_true=np.asarray(y_true, dtype=np.int64), y_pred=pred, y_prob=prob)
        return Scores(y_true=np.asarray(y_true, dtype=np.float64), y_pred=out.reshape(len(out), -1)[:, 0])


def load_predictor(store: Store, ref: ModelRef) -> Predictor:
    """Load a packaged model (hash-verified, no pickle) as a :class:`Predictor` on CPU."""
    from modelyard.runtime.package import load_model
    from modelyard.runtime.predict import predict_outputs

    loaded = load_model(store, ref)
    spec = loaded.spec
    modality = spec.get("modality", "tabular")
    task = spec.get("task", "classification")
    common: dict[str, Any] = {"task": task, "modality": modality, "label_names": list(spec.get("label_names", [])),
                              "spec": spec, "module": loaded.module}
    if modality != "text":
        return Predictor(outputs=lambda x: predict_outputs(loaded, x), **common)
    from modelyard.runtime.text import next_token_probabilities, predict_text_outputs, text_encoder

    encoder = text_encoder(loaded)  # the tokenizer fitted at training time, from the artifact
    if task != "language-modeling":
        return Predictor(outputs=lambda texts: predict_text_outputs(loaded, encoder, list(texts)), **common)

    def token_scores(texts: Any) -> Scores:
        targets, prob, rows = next_token_probabilities(loaded, encoder, list(texts))
        return Scores(y_true=targets, y_pred=prob.argmax(axis=1) if len(prob) else np.zeros(0, np.int64),
                      y_prob=prob, groups=rows)

    def no_outputs(_texts: Any) -> np.ndarray:
        raise DataError("a language model has no per-text outputs: score it with Predictor.scores")

    return Predictor(outputs=no_outputs, token_scores=token_scores, **common)


def check_compatible(predictor: Predictor, dataset: Dataset, *, what: str = "model") -> None:
    """Refuse a dataset the model was not built for, naming the difference.

    Raises:
        DataError: task, modality, label set / order, feature list or image shape differ.
    """
    schema = dataset.schema
    if predictor.task != schema.task:
        raise DataError(f"{what} task {predictor.task!r} differs from dataset task {schema.task!r}")
    if predictor.modality != schema.modality:
        raise DataError(f"{what} takes {predictor.modality} inputs but the dataset is {schema.modality}")
    model_labels = predictor.label_names
    if schema.task == "classification" and model_labels != schema.label_names:
        only_model = sorted(set(model_labels) - set(schema.label_names))
        only_data = sorted(set(schema.label_names) - set(model_labels))
        raise DataError(f"label sets differ: only in {what} {only_model}, only in dataset {only_data}"
                        if only_model or only_data else
                        f"label order differs between {what} {model_labels} and dataset {schema.label_names}")
    inputs = predictor.spec.get("inputs") or {}
    features = inputs.get("features")
    if schema.modality == "tabular" and features is not None and list(features) != list(schema.features):
        only_model = [f for f in features if f not in schema.features]
        only_data = [f for f in schema.features if f not in features]
        raise DataError(f"feature schemas differ: only in {what} {only_model}, only in dataset {only_data}"
                        if only_model or only_data else
                        f"feature order differs between {what} and dataset")
    shape = inputs.get("image_shape")
    if schema.modality == "image" and shape is not None and list(shape) != list(schema.image_shape or []):
        raise DataError(f"image shapes differ: {what} takes {list(shape)}, dataset has {schema.image_shape}")


__all__ = ["Predictor", "check_compatible", "load_predictor"]

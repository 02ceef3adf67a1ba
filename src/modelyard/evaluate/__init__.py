"""Stage 4, score: ModelRef × DatasetRef → ReportRef.

Runs the model on the dataset's test split and computes the recipe's metrics
(scikit-learn underneath), the confusion matrix and per-class counts; the figures are
recorded as ``test/<metric>`` in the run and written as a report artifact.

    yard evaluate digits-cnn@staging <dataset-id>
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from modelyard.config.evaluate import EvaluateConfig
from modelyard.core.atomic import atomic_write_json
from modelyard.core.errors import ConfigError, DataError
from modelyard.core.refs import DatasetRef, ModelRef, ReportRef
from modelyard.data.artifact import open_dataset
from modelyard.plugins import METRICS, load_builtins
from modelyard.runtime.package import load_model
from modelyard.runtime.predict import predict_outputs, probabilities
from modelyard.store.context import RunContext

REPORT_FILE = "evaluation.json"


def run(cfg: EvaluateConfig, model: ModelRef, data: DatasetRef, *, ctx: RunContext, split: str = "test") -> ReportRef:
    """Score ``model`` on ``split`` of ``data`` with the metrics of ``cfg`` (the recipe's ``evaluate:``).

    Raises:
        DataError: the split is empty, or the model's labels differ from the dataset's.
        PluginError: an unknown metric name.
    """
    load_builtins()
    metric_fns = {name: METRICS.get(name) for name in cfg.metrics}
    dataset = open_dataset(ctx.store, data)
    loaded = load_model(ctx.store, model)
    ctx.store.artifacts.link_input(ctx.run_id, model)
    ctx.store.artifacts.link_input(ctx.run_id, data)
    _check_compatible(loaded.spec, dataset.schema.label_names, dataset.schema.task)
    x, y = dataset.arrays(split)
    if len(x) == 0:
        raise DataError(f"the {split} split of dataset {data.short} is empty: nothing to evaluate")
    outputs = predict_outputs(loaded, x)
    report: dict[str, Any] = {"split": split, "rows": len(x), "task": dataset.schema.task,
                              "model": model.id, "dataset": data.id}
    if dataset.schema.task == "classification":
        prob = probabilities(outputs)
        pred = prob.argmax(axis=1)
        report["metrics"] = {name: fn(y_true=y, y_pred=pred, y_prob=prob) for name, fn in metric_fns.items()}
        k = dataset.schema.num_classes
        report["labels"] = dataset.schema.label_names
        report["confusion_matrix"] = np.bincount(y * k + pred, minlength=k * k).reshape(k, k).tolist()
    else:
        pred = outputs.squeeze(-1)
        report["metrics"] = {name: fn(y_true=y, y_pred=pred) for name, fn in metric_fns.items()}
    ctx.metrics.log(0, {f"{split}/{name}": value for name, value in report["metrics"].items()})
    with ctx.store.artifacts.staging() as folder:
        atomic_write_json(folder / REPORT_FILE, report)
        ref = ctx.store.artifacts.publish(folder, kind="report", run_id=ctx.run_id, parents=[model.id, data.id],
                                          relation="evaluated_from", meta={"stage": "evaluate"})
    ctx.store.runs.set_summary(ctx.run_id, {f"{split}/{k}": v for k, v in report["metrics"].items()})
    return ReportRef(id=ref.id)


def read_report(ctx_store: Any, ref: ReportRef) -> dict[str, Any]:
    """The figures of an evaluation report artifact."""
    path = ctx_store.artifacts.path(ref)
    return json.loads((path / REPORT_FILE).read_text("utf-8"))  # type: ignore[no-any-return]


def _check_compatible(spec: dict[str, Any], label_names: list[str], task: str) -> None:
    if spec.get("task") != task:
        raise DataError(f"model task {spec.get('task')!r} differs from dataset task {task!r}")
    model_labels = spec.get("label_names", [])
    if model_labels != label_names:
        only_model = sorted(set(model_labels) - set(label_names))
        only_data = sorted(set(label_names) - set(model_labels))
        raise DataError(f"label sets differ: only in model {only_model}, only in dataset {only_data}"
                        if only_model or only_data else "label order differs between model and dataset")


def check_metric_names(names: list[str]) -> None:
    """Fail early on unknown metric names."""
    load_builtins()
    for name in names:
        try:
            METRICS.get(name)
        except ConfigError as exc:
            raise ConfigError(str(exc), where="evaluate.metrics") from None


__all__ = ["check_metric_names", "read_report", "run"]

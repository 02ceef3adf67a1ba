"""Stage 4, score: ModelRef × DatasetRef → ReportRef.

Runs the model on the dataset's test split and writes ``evaluation.json``: the task's
metrics with bootstrap confidence intervals (undefined ones with the reason), per-class
precision / recall / F1, the confusion matrix and most-confused pairs, ROC / PR curve
points, a reliability diagram, the worst-k examples, metrics per slice and fairness gaps,
a robustness curve, an optional validation-chosen binary threshold, and (``against``) a
paired-bootstrap comparison with another model on the same rows. Headline values are
recorded as ``<split>/<metric>`` in the run.

    yard evaluate digits-cnn@staging <dataset-id> --against digits-cnn@production
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from modelyard.config.evaluate import EvaluateConfig
from modelyard.core.atomic import atomic_write_json
from modelyard.core.errors import ConfigError, DataError
from modelyard.core.refs import DatasetRef, ModelRef, ReportRef
from modelyard.data.artifact import Dataset, open_dataset
from modelyard.evaluate.analysis import confused_pairs, curves, input_view, worst_examples
from modelyard.evaluate.compare import paired_comparison
from modelyard.evaluate.predictor import Predictor, check_compatible, load_predictor
from modelyard.evaluate.robustness import DEFAULT_LEVELS, resolve, robustness_curve
from modelyard.evaluate.scoring import Scores, bootstrap_intervals, metric_names, point_values
from modelyard.evaluate.slices import fairness_gaps, slice_keys, slice_table
from modelyard.evaluate.threshold import choose_threshold
from modelyard.plugins import METRICS, load_builtins
from modelyard.plugins.metrics.classification import confusion_batch, per_class_table, reliability_bins
from modelyard.store.context import RunContext

REPORT_FILE = "evaluation.json"
SLICE_METRICS = {"classification": ["accuracy", "macro_f1"], "regression": ["mae", "r2"]}


def model_inputs(dataset: Dataset, split: str) -> tuple[Any, np.ndarray]:
    """(inputs, labels) of ``split`` as the model takes them (no train-time balancing or augmentation)."""
    if dataset.schema.modality == "text":
        return dataset.texts(split, balance=False, augment=False)
    return dataset.arrays(split, balance=False, augment=False)


def run(cfg: EvaluateConfig, model: ModelRef, data: DatasetRef, *, ctx: RunContext, split: str = "test",
        against: ModelRef | None = None, against_name: str | None = None) -> ReportRef:
    """Score ``model`` on ``split`` of ``data`` as ``cfg`` (the recipe's ``evaluate:``) asks.

    Args:
        cfg: metrics, bootstrap, threshold, slices, fairness and robustness settings.
        model: the model artifact.
        data: the dataset artifact.
        ctx: the run context (store, run id, progress).
        split: the split to score (test by default).
        against: a second model scored on the same rows and compared by paired bootstrap.
        against_name: how to name ``against`` in the report (``NAME@ALIAS``).

    Raises:
        DataError: the split is empty, or the model's labels / features differ from the dataset's.
        ConfigError: a metric that does not fit the task, a slice column that does not exist, a
            threshold on a non-binary task.
        PluginError: an unknown metric name.
    """
    load_builtins()
    dataset = open_dataset(ctx.store, data)
    task = dataset.schema.task
    names = metric_names(cfg.metrics, task)
    predictor = load_predictor(ctx.store, model)
    check_compatible(predictor, dataset)
    baseline = load_predictor(ctx.store, against) if against is not None else None
    if baseline is not None:
        check_compatible(baseline, dataset, what=f"model {against_name or against.short}")  # type: ignore[union-attr]
    ctx.store.artifacts.link_input(ctx.run_id, model)
    ctx.store.artifacts.link_input(ctx.run_id, data)
    if against is not None:
        ctx.store.artifacts.link_input(ctx.run_id, against)

    x, y = model_inputs(dataset, split)
    if len(y) == 0:
        raise DataError(f"the {split} split of dataset {data.short} is empty: nothing to evaluate",
                        hint="prepare the data with a non-zero data.split.test")
    frame = dataset.frame(split)
    label_names = dataset.schema.label_names
    steps = 5 + bool(cfg.slices) + bool(cfg.robustness) + (baseline is not None)
    ctx.progress.start(f"evaluate ({split}, {len(y)} rows)", total=steps)

    report: dict[str, Any] = {"split": split, "rows": len(y), "task": task, "modality": dataset.schema.modality,
                              "model": model.id, "dataset": data.id, "labels": label_names, "metric_names": names}
    threshold = None
    if cfg.threshold is not None:
        if task != "classification" or len(label_names) != 2:
            raise ConfigError("evaluate.threshold applies to binary classification only "
                              f"(this task has {len(label_names) or 'no'} classes)", where="evaluate.threshold")
        x_valid, y_valid = model_inputs(dataset, "valid")
        valid_scores = predictor.scores(x_valid, y_valid)
        assert valid_scores.y_prob is not None
        report["threshold"] = choose_threshold(y_valid, valid_scores.y_prob[:, 1], objective=cfg.threshold.objective,
                                               target=cfg.threshold.target)
        threshold = report["threshold"]["threshold"]
    scores = predictor.scores(x, y, threshold=threshold)
    ctx.progress.advance()

    values, undefined = point_values(names, scores)
    report["metrics"], report["undefined"] = values, undefined
    report["intervals"] = bootstrap_intervals(names, scores, samples=cfg.bootstrap.samples,
                                              confidence=cfg.bootstrap.confidence, seed=cfg.seed, values=values)
    ctx.progress.advance()

    if task == "classification":
        k = len(label_names)
        matrix = confusion_batch(scores.y_true, scores.y_pred, k, np.arange(len(y))[None, :])[0].astype(int)
        report["confusion_matrix"] = matrix.tolist()
        report["per_class"] = per_class_table(scores.y_true, scores.y_pred, k)
        report["confused_pairs"] = confused_pairs(matrix, label_names)
        assert scores.y_prob is not None
        report["calibration"] = reliability_bins(scores.y_true, scores.y_prob)
        report["curves"] = curves(scores, label_names)
    ctx.progress.advance()

    if scores.groups is not None:  # a language model, scored per target token
        report["tokens"] = len(scores)
        report["worst_examples"] = _worst_texts(scores, x, cfg.worst_k)
    else:
        inputs = _input_views(x, frame, dataset)
        report["worst_examples"] = worst_examples(scores, task, cfg.worst_k, label_names=label_names,
                                                  inputs=inputs)
    ctx.progress.advance()

    slice_names = [n for n in SLICE_METRICS.get(task, names[:2]) if n in METRICS]
    if cfg.slices:
        overall, _ = point_values(slice_names, scores)
        images = x if dataset.schema.modality == "image" else None
        report["slices"] = []
        for slice_cfg in cfg.slices:
            keys, how = slice_keys(slice_cfg, frame, modality=dataset.schema.modality,
                                   text_column=dataset.schema.text, images=images)
            if scores.groups is not None:
                keys = keys[scores.groups]  # each token in its text's slice
            report["slices"].append({"name": slice_cfg.name, "how": how, "metrics": slice_names,
                                     "overall": overall, "rows": slice_table(keys, scores, slice_names, overall)})
        ctx.progress.advance()
    if cfg.fairness is not None:
        if task != "classification":
            raise ConfigError("fairness gaps need a classification task", where="evaluate.fairness")
        report["fairness"] = fairness_gaps(cfg.fairness, frame, scores, label_names)

    if cfg.robustness is not None:
        report["robustness"] = _robustness(cfg, predictor, x, y, names[0], dataset.schema.modality,
                                           threshold=threshold, seed=cfg.seed)
        ctx.progress.advance()

    if baseline is not None:
        base_scores = baseline.scores(x, y, threshold=threshold)
        report["comparison"] = {
            "against": against_name or against.id,  # type: ignore[union-attr]
            "against_model": against.id,  # type: ignore[union-attr]
            "metrics": paired_comparison(names, scores, base_scores, samples=max(cfg.bootstrap.samples, 200),
                                         confidence=cfg.bootstrap.confidence, seed=cfg.seed),
        }
        ctx.progress.advance()

    defined = {name: v for name, v in values.items() if v is not None}
    ctx.metrics.log(0, {f"{split}/{name}": v for name, v in defined.items()})
    with ctx.store.artifacts.staging() as folder:
        atomic_write_json(folder / REPORT_FILE, report)
        parents = [model.id, data.id] + ([against.id] if against is not None else [])
        ref = ctx.store.artifacts.publish(folder, kind="report", run_id=ctx.run_id, parents=parents,
                                          relation="evaluated_from", meta={"stage": "evaluate", "split": split})
    ctx.store.runs.set_summary(ctx.run_id, {f"{split}/{k}": v for k, v in defined.items()})
    ctx.progress.advance()
    return ReportRef(id=ref.id)


def _worst_texts(scores: Scores, texts: list[str], k: int) -> list[dict[str, Any]]:
    """The ``k`` texts with the highest mean next-token loss: row, text, tokens, loss, perplexity."""
    if k <= 0 or len(scores) == 0 or scores.y_prob is None or scores.groups is None:
        return []
    picked = scores.y_prob[np.arange(len(scores)), np.asarray(scores.y_true, dtype=np.int64)]
    nll = -np.log(np.clip(picked.astype(np.float64), 1e-12, 1.0))
    counts = np.bincount(scores.groups, minlength=len(texts))
    loss = np.bincount(scores.groups, weights=nll, minlength=len(texts)) / np.maximum(counts, 1)
    loss[counts == 0] = -np.inf  # texts with no target token (a single token) cannot be worst
    order = [int(r) for r in np.argsort(-loss, kind="mergesort")[:k] if counts[r] > 0]
    # label / prediction: what the report's worst-examples table shows for a text without a class.
    return [{"row": r, "input": input_view(texts[r], "text"), "tokens": int(counts[r]), "loss": float(loss[r]),
             "perplexity": float(np.exp(loss[r])), "label": f"{int(counts[r])} next tokens",
             "prediction": f"perplexity {float(np.exp(loss[r])):.4g}"} for r in order]


def _input_views(x: Any, frame: Any, dataset: Dataset) -> list[Any]:
    modality = dataset.schema.modality
    if modality == "tabular":
        columns = list(dataset.schema.features)[:12]
        records = frame[columns].to_dict(orient="records")
        return [input_view(None, modality, frame_row=r) for r in records]
    return _LazyViews(x, modality)  # type: ignore[return-value]


class _LazyViews:
    """Builds an input's view only for the rows the report keeps."""

    def __init__(self, x: Any, modality: str) -> None:
        self.x, self.modality = x, modality

    def __getitem__(self, row: int) -> Any:
        return input_view(self.x[row], self.modality)


def _robustness(cfg: EvaluateConfig, predictor: Predictor, x: Any, y: np.ndarray, metric: str, modality: str, *,
                threshold: float | None, seed: int) -> dict[str, Any]:
    assert cfg.robustness is not None
    perturbation = resolve(cfg.robustness.perturbation, modality)
    levels = cfg.robustness.levels or DEFAULT_LEVELS[perturbation]
    def score(inputs: Any) -> float:
        s = predictor.scores(inputs, y, threshold=threshold)
        value, _ = point_values([metric], s)
        return float("nan") if value[metric] is None else float(value[metric])  # type: ignore[arg-type]

    return {"perturbation": perturbation, "metric": metric,
            "points": robustness_curve(x, perturbation, levels, score, seed=seed)}


def read_report(ctx_store: Any, ref: ReportRef) -> dict[str, Any]:
    """The figures of an evaluation report artifact."""
    path = ctx_store.artifacts.path(ref)
    return json.loads((path / REPORT_FILE).read_text("utf-8"))  # type: ignore[no-any-return]


def check_metric_names(names: list[str], task: str | None = None) -> None:
    """Fail early on unknown metric names (and, given ``task``, on ones that do not fit it)."""
    load_builtins()
    for name in names:
        try:
            METRICS.get(name)
        except ConfigError as exc:
            raise ConfigError(str(exc), where="evaluate.metrics") from None
    if task is not None:
        metric_names(names, task)


__all__ = ["Predictor", "Scores", "check_metric_names", "load_predictor", "model_inputs", "read_report", "run"]

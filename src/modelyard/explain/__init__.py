"""Stage 5, explain: ModelRef × DatasetRef → ReportRef (``explanation.json``).

- Images: Integrated Gradients (and saliency) heat maps for chosen test examples, and the
  mean |attribution| map over the sampled test rows.
- Tables: permutation importance (global, model-agnostic), SHAP values (GradientExplainer)
  for chosen rows and their mean |value| per feature, and Integrated Gradients on request.
- Text classifiers / regressors: token attributions with Integrated Gradients on the token
  embedding layer (:func:`~modelyard.explain.gradients.token_integrated_gradients`; baseline:
  every token replaced by the padding id), for chosen test texts (rendered as highlighted
  text), and the mean |attribution| per token over the sampled rows. Language models
  (``task: language-modeling``) are refused: there is no single output to attribute.

Every Integrated Gradients result carries its completeness delta.

    yard explain digits-cnn@staging <dataset-id> --method integrated-gradients
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from modelyard.config.explain import ExplainConfig
from modelyard.core.atomic import atomic_write_json
from modelyard.core.errors import ConfigError, DataError
from modelyard.core.refs import DatasetRef, ModelRef, ReportRef
from modelyard.data.artifact import Dataset, open_dataset
from modelyard.store.context import RunContext

REPORT_FILE = "explanation.json"
AUTO_METHODS = {"image": ["integrated-gradients"], "tabular": ["permutation", "shap"],
                "text": ["integrated-gradients"]}
FITS = {"integrated-gradients": ("image", "tabular", "text"), "saliency": ("image", "tabular"),
        "permutation": ("tabular",), "shap": ("tabular",)}


def resolve_methods(methods: list[str], modality: str) -> list[str]:
    """``auto`` → the modality's methods; refuses a method that cannot explain this kind of model.

    Raises:
        ConfigError: e.g. SHAP asked for an image model, naming methods that work.
    """
    out: list[str] = []
    for method in methods:
        chosen = AUTO_METHODS.get(modality, []) if method == "auto" else [method]
        for name in chosen:
            if modality not in FITS[name]:
                working = [m for m, mods in FITS.items() if modality in mods]
                raise ConfigError(f"{name} cannot explain a {modality} model here", where="explain.methods",
                                  hint=f"use {' or '.join(working)}")
            if name not in out:
                out.append(name)
    return out


def run(cfg: ExplainConfig, model: ModelRef, data: DatasetRef, *, ctx: RunContext, split: str = "test") -> ReportRef:
    """Explain ``model`` on ``split`` of ``data`` with the methods of ``cfg``.

    Raises:
        ConfigError: a method that does not fit the model's inputs.
        DataError: an empty split, a model / dataset mismatch, or a language model.
    """
    from modelyard.runtime.package import load_model

    dataset = open_dataset(ctx.store, data)
    modality = dataset.schema.modality
    methods = resolve_methods(list(cfg.methods), modality)
    if dataset.schema.task == "language-modeling":
        raise DataError("language models cannot be explained: token attributions need one output per text "
                        "(a class or a value), a language model has one per position",
                        hint="explain a text classifier or regressor; set explain.enabled: false for this recipe")
    loaded = load_model(ctx.store, model)
    _check(loaded.spec, dataset)
    ctx.store.artifacts.link_input(ctx.run_id, model)
    ctx.store.artifacts.link_input(ctx.run_id, data)
    if modality == "text":
        text_report = _explain_text(cfg, loaded, dataset, methods, split=split, model=model, data=data)
        return _publish(text_report, methods, model, data, ctx=ctx, split=split)
    x, y = dataset.arrays(split, balance=False, augment=False)
    if len(y) == 0:
        raise DataError(f"the {split} split of dataset {data.short} is empty: nothing to explain")
    rng = np.random.default_rng(cfg.seed)
    rows = np.sort(rng.choice(len(y), size=min(cfg.rows, len(y)), replace=False))
    module = loaded.module
    from modelyard.explain.gradients import model_outputs

    outputs = model_outputs(module, x[rows])
    classification = dataset.schema.task == "classification"
    pred = outputs.argmax(axis=1) if classification else outputs[:, 0]
    target = pred.astype(int) if classification else None
    local = np.arange(min(cfg.examples, len(rows)))  # positions in `rows` explained locally
    report: dict[str, Any] = {
        "split": split, "model": model.id, "dataset": data.id, "modality": modality, "task": dataset.schema.task,
        "methods": methods, "rows": len(rows), "labels": dataset.schema.label_names,
        "features": dataset.schema.features if modality == "tabular" else None,
        "examples": [_example(int(rows[i]), int(i), y, outputs, dataset, x) for i in local],
    }
    ctx.progress.start(f"explain ({', '.join(methods)})", total=len(methods))
    for method in methods:
        if method == "integrated-gradients":
            some = rows[: max(len(local), cfg.gradient_rows)]  # gradient methods cost steps × rows passes
            report["integrated_gradients"] = _integrated_gradients(
                cfg, module, x[some], None if target is None else target[: len(some)], local, modality)
        elif method == "saliency":
            from modelyard.explain.gradients import saliency

            sal = saliency(module, x[rows][local], None if target is None else target[local])
            report["saliency"] = {"local": [_summarise(s, modality) for s in sal]}
        elif method == "permutation":
            report["permutation"] = _permutation(cfg, module, x[rows], y[rows], classification,
                                                 dataset.schema.features)
        elif method == "shap":
            report["shap"] = _shap(cfg, module, dataset, x[rows], target, local)
        ctx.progress.advance()
    return _publish(report, methods, model, data, ctx=ctx, split=split)


def _publish(report: dict[str, Any], methods: list[str], model: ModelRef, data: DatasetRef, *, ctx: RunContext,
             split: str) -> ReportRef:
    with ctx.store.artifacts.staging() as folder:
        atomic_write_json(folder / REPORT_FILE, report)
        ref = ctx.store.artifacts.publish(folder, kind="report", run_id=ctx.run_id, parents=[model.id, data.id],
                                          relation="explained_from", meta={"stage": "explain", "split": split})
    ctx.store.runs.set_summary(ctx.run_id, {"methods": ",".join(methods), "rows": report["rows"],
                                            **({"ig/max_delta": report["integrated_gradients"]["max_delta"]}
                                               if "integrated_gradients" in report else {})})
    return ReportRef(id=ref.id)


def _explain_text(cfg: ExplainConfig, loaded: Any, dataset: Dataset, methods: list[str], *, split: str,
                  model: ModelRef, data: DatasetRef) -> dict[str, Any]:
    """Token Integrated Gradients for a text classifier / regressor (the only text method)."""
    from modelyard.explain.gradients import token_embedding, token_integrated_gradients
    from modelyard.runtime.text import predict_text_outputs, text_encoder

    texts, y = dataset.texts(split, balance=False, augment=False)
    if len(y) == 0:
        raise DataError(f"the {split} split of dataset {data.short} is empty: nothing to explain")
    encoder = text_encoder(loaded)
    tokenizer = encoder.tokenizer
    rng = np.random.default_rng(cfg.seed)
    rows = np.sort(rng.choice(len(y), size=min(cfg.rows, len(y)), replace=False))
    local = np.arange(min(cfg.examples, len(rows)))
    some = rows[: max(len(local), min(cfg.gradient_rows, len(rows)))]
    chosen = [texts[int(r)] for r in some]
    outputs = predict_text_outputs(loaded, encoder, chosen)
    classification = dataset.schema.task == "classification"
    target = outputs.argmax(axis=1).astype(int) if classification else None
    names = dataset.schema.label_names
    ids, mask = encoder.encode(chosen)
    module = loaded.module
    try:
        layer = token_embedding(module, tokenizer.vocab_size)
    except ValueError as exc:
        raise DataError(f"cannot attribute to tokens: {exc}",
                        hint="the model needs an nn.Embedding token table (or get_input_embeddings())") from exc
    pad_id = int(tokenizer.pad_id)
    attributions, delta = token_integrated_gradients(
        module, ids, mask, target, pad_id=pad_id, steps=cfg.steps, embedding=layer,
        internal_batch_size=max(1, min(len(ids) * cfg.steps, 128)))
    attributions = attributions * mask  # padding is padding at both ends of the path: exactly 0
    examples, local_tokens = [], []
    for i in local:
        keep = mask[i].astype(bool)
        pieces = token_pieces(tokenizer, ids[i][keep])
        scores = [round(float(v), 6) for v in attributions[i][keep]]
        example: dict[str, Any] = {"row": int(some[i]), "text": chosen[i]}
        if classification:
            logits = outputs[i] - outputs[i].max()
            prob = np.exp(logits) / np.exp(logits).sum()
            example.update(label=names[int(y[some[i]])], prediction=names[int(prob.argmax())],
                           confidence=float(prob.max()))
        else:
            example.update(label=float(y[some[i]]), prediction=float(outputs[i, 0]))
        examples.append(example)
        local_tokens.append({"row": int(some[i]), "tokens": pieces, "ids": [int(t) for t in ids[i][keep]],
                             "scores": scores, "delta": float(delta[i]),
                             "title": f"row {int(some[i])}: {example['prediction']} (label {example['label']})"})
    return {
        "split": split, "model": model.id, "dataset": data.id, "modality": "text", "task": dataset.schema.task,
        "methods": methods, "rows": len(rows), "labels": names, "features": None, "examples": examples,
        "integrated_gradients": {
            "baseline": f"padding (id {pad_id}) at every token", "steps": cfg.steps,
            "target": "predicted class" if target is not None else "output",
            "layer": type(layer).__name__, "explained_rows": len(some),
            "local_delta": [float(delta[i]) for i in local],
            "global_tokens": _global_tokens(tokenizer, ids, mask, attributions, top=cfg.top_tokens),
            "mean_delta": float(delta.mean()), "max_delta": float(delta.max()),
        },
        "tokens": local_tokens,
    }


def _global_tokens(tokenizer: Any, ids: np.ndarray, mask: np.ndarray, attributions: np.ndarray, *,
                   top: int) -> list[dict[str, Any]]:
    """Mean |attribution| per vocabulary token over every occurrence in the explained rows, largest first."""
    keep = mask.astype(bool)
    flat_ids, flat_abs = ids[keep], np.abs(attributions[keep])
    if flat_ids.size == 0:
        return []
    sums = np.bincount(flat_ids, weights=flat_abs)
    counts = np.bincount(flat_ids)
    seen = np.nonzero(counts)[0]
    means = sums[seen] / counts[seen]
    order = seen[np.argsort(-means, kind="stable")][:top]
    return [{"token": token_pieces(tokenizer, [int(t)], bare=True)[0], "id": int(t),
             "mean_abs": round(float(sums[t] / counts[t]), 6), "count": int(counts[t])} for t in order]


def token_pieces(tokenizer: Any, ids: Any, *, bare: bool = False) -> list[str]:
    """Display strings of token ids, with the spacing of the text: joined with ``""`` they read as text.

    Character tokenizers give characters; WordPiece continuations (``##ing``) attach to the
    previous piece; byte-level BPE (``Ġ``) and SentencePiece (``▁``) word starts get a space.
    ``bare``: the token alone, without the leading space.
    """
    ids = [int(i) for i in ids]
    vocab = getattr(tokenizer, "vocab_", None)
    backend = getattr(tokenizer, "backend_", None)
    out: list[str] = []
    for position, i in enumerate(ids):
        if isinstance(vocab, list):
            raw = vocab[i] if 0 <= i < len(vocab) else "?"
            piece = raw if len(raw) == 1 else f" {raw} "  # special tokens stand apart
        else:
            raw = backend.id_to_token(i) if backend is not None else tokenizer.decode([i])
            raw = "?" if raw is None else str(raw)
            if raw.startswith("##"):
                piece = raw[2:]
            elif raw[:1] in ("Ġ", "▁"):
                piece = " " + raw[1:]
            else:
                piece = raw if position == 0 else " " + raw
        out.append((piece.strip() or "␣") if bare else piece)
    return out


def _check(spec: dict[str, Any], dataset: Dataset) -> None:
    schema = dataset.schema
    if spec.get("task") != schema.task:
        raise DataError(f"model task {spec.get('task')!r} differs from dataset task {schema.task!r}")
    if schema.task == "classification" and spec.get("label_names") != schema.label_names:
        raise DataError(f"label sets differ: model {spec.get('label_names')}, dataset {schema.label_names}")
    features = (spec.get("inputs") or {}).get("features")
    if schema.modality == "tabular" and features is not None and list(features) != list(schema.features):
        raise DataError(f"feature schemas differ: model {features}, dataset {schema.features}")


def _example(row: int, position: int, y: np.ndarray, outputs: np.ndarray, dataset: Dataset,
             x: np.ndarray) -> dict[str, Any]:
    """The label, prediction and input of one explained row (``position``: its index in the sample)."""
    names = dataset.schema.label_names
    out: dict[str, Any] = {"row": row}
    if dataset.schema.task == "classification":
        logits = outputs[position] - outputs[position].max()
        prob = np.exp(logits) / np.exp(logits).sum()
        out.update(label=names[int(y[row])], prediction=names[int(prob.argmax())], confidence=float(prob.max()))
    else:
        out.update(label=float(y[row]), prediction=float(outputs[position, 0]))
    if dataset.schema.modality == "image":
        out["image"] = np.round(x[row], 4).tolist()
    else:
        out["values"] = [round(float(v), 4) for v in x[row]]
    return out


def _summarise(attribution: np.ndarray, modality: str) -> list[Any]:
    """An image attribution as an (H, W) map (summed over channels); a table row as-is."""
    a = np.asarray(attribution, dtype=np.float64)
    if modality == "image":
        a = a.sum(axis=0)
    return np.round(a, 6).tolist()  # type: ignore[no-any-return]


def _integrated_gradients(cfg: ExplainConfig, module: Any, x: np.ndarray, target: np.ndarray | None,
                          local: np.ndarray, modality: str) -> dict[str, Any]:
    from modelyard.explain.gradients import integrated_gradients

    # Baseline: the all-minimum image (black), or the train mean of every feature (0 after scaling).
    baseline = float(x.min()) if modality == "image" else 0.0
    attributions, delta = integrated_gradients(module, x, target, baseline=baseline, steps=cfg.steps)
    mean_abs = np.abs(attributions).mean(axis=0)
    return {"baseline": baseline, "steps": cfg.steps, "target": "predicted class" if target is not None else "output",
            "local": [_summarise(attributions[i], modality) for i in local],
            "local_delta": [float(delta[i]) for i in local],
            "global_mean_abs": _summarise(mean_abs, modality),
            "mean_delta": float(delta.mean()), "max_delta": float(delta.max())}


def _permutation(cfg: ExplainConfig, module: Any, x: np.ndarray, y: np.ndarray, classification: bool,
                 features: list[str]) -> dict[str, Any]:
    from modelyard.explain.gradients import model_outputs
    from modelyard.explain.permutation import permutation_importance

    if classification:
        def score(inputs: np.ndarray) -> float:
            return float((model_outputs(module, inputs).argmax(axis=1) == y).mean())
    else:
        def score(inputs: np.ndarray) -> float:
            return float(np.abs(model_outputs(module, inputs)[:, 0] - y).mean())
    result = permutation_importance(score, x, repeats=cfg.repeats, seed=cfg.seed,
                                    higher_is_better=classification)
    return {"metric": "accuracy" if classification else "mae", "repeats": cfg.repeats, "features": features,
            **{k: result[k] for k in ("baseline", "mean", "std")}}


def _shap(cfg: ExplainConfig, module: Any, dataset: Dataset, x: np.ndarray, target: np.ndarray | None,
          local: np.ndarray) -> dict[str, Any]:
    from modelyard.explain.shap_values import gradient_shap

    x_train, _ = dataset.arrays("train", balance=False, augment=False)
    rng = np.random.default_rng(cfg.seed + 1)
    background = x_train[rng.choice(len(x_train), size=min(cfg.background, len(x_train)), replace=False)]
    # GradientExplainer costs ~samples backward passes per row: the global summary uses ≤ shap_rows rows.
    sample = x[: max(len(local), min(len(x), cfg.gradient_rows))]
    values = gradient_shap(module, background, sample, None if target is None else target[: len(sample)],
                           seed=cfg.seed, samples=cfg.shap_samples)
    return {"explainer": "gradient", "background_rows": len(background), "features": dataset.schema.features,
            "local": [[round(float(v), 6) for v in values[i]] for i in local if i < len(values)],
            "global_mean_abs": np.abs(values).mean(axis=0).round(6).tolist(), "rows": len(sample)}


def read_explanation(store: Any, ref: ReportRef) -> dict[str, Any]:
    """The figures of an explanation report artifact."""
    return json.loads((store.artifacts.path(ref) / REPORT_FILE).read_text("utf-8"))  # type: ignore[no-any-return]


__all__ = ["read_explanation", "resolve_methods", "run", "token_pieces"]

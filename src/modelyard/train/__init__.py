"""Stage 2, fit: DatasetRef → ModelRef.

Builds the recipe's model plugin for the dataset's inputs (tabular features, images, or
texts tokenized by the recipe's tokenizer, fitted on the train split), trains it with
the loop in ``train/loop.py`` (optimizer + warm-up schedule, mixed precision, exact
gradient accumulation, clipping, NaN guards, early stopping, checkpoints for exact
resume), and publishes ``weights.safetensors`` + ``spec.json`` (+ ``tokenizer/``, and for
``hf-pretrained`` an ``hf/`` folder in Hugging Face format) as a model artifact.

    yard train recipes/quickstart.yaml
    yard train recipes/quickstart.yaml --resume last     # continue the last interrupted run
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from modelyard.config.model import TokenizerConfig
from modelyard.config.recipe import Recipe
from modelyard.core.errors import ConfigError, DataError, NotFoundError
from modelyard.core.refs import DatasetRef, ModelRef
from modelyard.data.artifact import Dataset, open_dataset
from modelyard.plugins import MODELS, TOKENIZERS, load_builtins
from modelyard.plugins.models import modality_of
from modelyard.plugins.tokenizers.base import Tokenizer
from modelyard.runtime.package import TOKENIZER_DIR, save_model
from modelyard.store.context import RunContext
from modelyard.store.project import Store
from modelyard.train import distributed, fsdp
from modelyard.train.checkpoint import latest_checkpoint
from modelyard.train.loop import Batch, BatchAugment, FitResult, LoopSettings, TensorData, fit, seed_everything
from modelyard.train.objectives import build_objective, next_token_targets
from modelyard.train.optim import build_optimizer, build_schedule, check_optimizer_config, check_schedule_config

CHECKPOINTS = "checkpoints"
HF_DIR = "hf"
# Data modality (schema) -> the model plugins' input modality.
MODEL_MODALITY = {"tabular": "tabular", "image": "image", "text": "tokens"}
# Train settings that may change on resume: they do not change the trajectory.
RESUME_FREE = ("checkpoint", "log_every_steps", "device")


def pick_device(name: str) -> torch.device:
    """``auto`` → CUDA when present, else CPU; ``cuda`` without a GPU is an error."""
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device is 'cuda' but no CUDA device is available", where="train.device")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def num_outputs(dataset: Dataset) -> int:
    """Output width of the task head: classes, or 1 for regression."""
    schema = dataset.schema
    return schema.num_classes if schema.task == "classification" else 1


def input_kwargs(dataset: Dataset) -> dict[str, Any]:
    """The model factory's input description for a tabular or image dataset (text: see :func:`text_inputs`)."""
    schema = dataset.schema
    if schema.modality == "image":
        assert schema.image_shape
        c, h, w = schema.image_shape
        return {"in_channels": c, "image_size": [h, w], "num_outputs": num_outputs(dataset)}
    if schema.modality == "tabular":
        return {"num_features": len(schema.features), "num_outputs": num_outputs(dataset)}
    raise DataError(f"{schema.modality} datasets need a tokenizer: see train.text_inputs")


def tokenizer_config(recipe: Recipe) -> TokenizerConfig:
    """The recipe's tokenizer, or the default: the model folder's own for ``hf-pretrained``, else BPE."""
    cfg = recipe.model.tokenizer
    if cfg is None:
        if recipe.model.name == "hf-pretrained":
            cfg = TokenizerConfig(name="hf")
        else:
            style = "gpt" if recipe.task == "language-modeling" else "bert"
            cfg = TokenizerConfig(name="bpe", params={"vocab_size": 4000, "special_tokens": style})
    if cfg.name == "hf" and "path" not in cfg.params:
        if "path" not in recipe.model.params:
            raise ConfigError("tokenizer 'hf' needs params.path (or model.params.path)", where="model.tokenizer")
        cfg = cfg.model_copy(update={"params": {**cfg.params, "path": recipe.model.params["path"]}})
    return cfg


def fit_tokenizer(cfg: TokenizerConfig, texts: list[str]) -> Tokenizer:
    """Build the named tokenizer and fit it on ``texts`` (the train split)."""
    load_builtins()
    tokenizer_class = TOKENIZERS.get(cfg.name)
    try:
        tokenizer = tokenizer_class(**cfg.params)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"tokenizer {cfg.name!r} rejects its params: {exc}", where="model.tokenizer.params") from exc
    return tokenizer.fit(texts)  # type: ignore[no-any-return]


def text_split(tokenizer: Tokenizer, texts: list[str], labels: np.ndarray, *, max_length: int,
               task: str) -> TensorData:
    """Encode one text split: inputs ``(input_ids, attention_mask)``; targets labels or next tokens."""
    ids_np, mask_np = tokenizer.encode_batch(texts, max_length)
    ids, mask = torch.from_numpy(ids_np), torch.from_numpy(mask_np)
    if task == "language-modeling":
        targets = next_token_targets(ids, mask)
    else:
        targets = torch.as_tensor(labels, dtype=torch.long if task == "classification" else torch.float32)
    return TensorData(inputs=(ids, mask), targets=targets, mask_index=1)


def array_split(x: np.ndarray, y: np.ndarray, task: str) -> TensorData:
    """One tabular or image split as tensors."""
    dtype = torch.long if task == "classification" else torch.float32
    return TensorData(inputs=(torch.from_numpy(x),), targets=torch.as_tensor(y, dtype=dtype))


def prepare_splits(recipe: Recipe, dataset: Dataset) -> tuple[dict[str, TensorData], dict[str, Any],
                                                               Tokenizer | None]:
    """(train/valid tensors, the model's input kwargs, the fitted tokenizer or None)."""
    schema = dataset.schema
    if schema.modality != "text":
        splits = {name: array_split(*dataset.arrays(name), recipe.task) for name in ("train", "valid")}
        return splits, input_kwargs(dataset), None
    cfg = tokenizer_config(recipe)
    train_texts, train_y = dataset.texts("train")
    tokenizer = fit_tokenizer(cfg, train_texts)
    valid_texts, valid_y = dataset.texts("valid")
    splits = {"train": text_split(tokenizer, train_texts, train_y, max_length=cfg.max_length, task=recipe.task),
              "valid": text_split(tokenizer, valid_texts, valid_y, max_length=cfg.max_length, task=recipe.task)}
    outputs = tokenizer.vocab_size if recipe.task == "language-modeling" else num_outputs(dataset)
    return splits, {"vocab_size": tokenizer.vocab_size, "max_length": cfg.max_length, "num_outputs": outputs}, tokenizer


def online_augment(recipe: Recipe, dataset: Dataset, tokenizer: Tokenizer | None) -> BatchAugment | None:
    """The recipe's online augmentation (``data.augment.mode: online``) as a per-batch transform, or None.

    Arrays (tabular features, images) are augmented as the batch holds them; text rows are
    taken from the raw train texts, augmented, then tokenized again (language modeling: the
    next-token targets follow the augmented text). Labels are kept (mixup blends regression targets).
    """
    pipeline = dataset.augmenter()
    if pipeline is None:
        return None
    task = recipe.task
    if tokenizer is None:
        def augment_arrays(index: torch.Tensor, batch: Batch, rng: np.random.Generator) -> Batch:
            inputs, targets = batch
            x, y = pipeline(inputs[0], targets.numpy(), rng)
            return (x, *inputs[1:]), (targets if y is None else torch.as_tensor(y, dtype=targets.dtype))

        return augment_arrays
    texts, labels = dataset.texts("train")  # online mode: the same rows, in the same order, as prepare_splits
    max_length = tokenizer_config(recipe).max_length

    def augment_texts(index: torch.Tensor, batch: Batch, rng: np.random.Generator) -> Batch:
        rows = index.tolist()
        new_texts, new_labels = pipeline([texts[i] for i in rows], labels[rows], rng)
        part = text_split(tokenizer, new_texts, labels[rows] if new_labels is None else new_labels,
                          max_length=max_length, task=task)
        return part.take(torch.arange(len(rows)))

    return augment_texts


def build_model(recipe: Recipe, dataset: Dataset) -> tuple[nn.Module, dict[str, Any]]:
    """Build the recipe's model for ``dataset`` (a text dataset's tokenizer is fitted to size it).

    Returns:
        The module and its factory kwargs.
    """
    if dataset.schema.modality == "text":
        cfg = tokenizer_config(recipe)
        tokenizer = fit_tokenizer(cfg, dataset.texts("train")[0])
        outputs = tokenizer.vocab_size if recipe.task == "language-modeling" else num_outputs(dataset)
        inputs = {"vocab_size": tokenizer.vocab_size, "max_length": cfg.max_length, "num_outputs": outputs}
    else:
        inputs = input_kwargs(dataset)
    return build_model_for(recipe, inputs, dataset.schema.modality)


def build_model_for(recipe: Recipe, inputs: dict[str, Any], data_modality: str) -> tuple[nn.Module, dict[str, Any]]:
    """Build the recipe's model for an input description; returns the module and its factory kwargs.

    Raises:
        PluginError: unknown model name (with did-you-mean).
        ConfigError: the model does not fit the data's modality or the task's labels, or rejects a parameter.
    """
    load_builtins()
    name = recipe.model.name
    factory = MODELS.get(name)
    modality = modality_of(name)
    if modality != MODEL_MODALITY.get(data_modality):
        raise ConfigError(f"model {name!r} takes {modality} inputs but the dataset is {data_modality}",
                          where="model.name")
    per_token = getattr(factory, "output_layout", "pooled") == "per_token"
    if per_token != (recipe.task == "language-modeling"):
        raise ConfigError(f"model {name!r} does not fit task {recipe.task!r}: "
                          + ("it predicts a token per position" if per_token else "it has no language-model head"),
                          where="model.name", hint="language-modeling takes gpt; other tasks a pooled model")
    given = recipe.model.params.get("num_outputs")
    if given is not None and given != inputs["num_outputs"]:
        raise ConfigError(f"model.params.num_outputs {given} does not fit the labels: the {recipe.task} head needs "
                          f"{inputs['num_outputs']}", where="model.params.num_outputs",
                          hint="leave num_outputs out: it is derived from the dataset")
    kwargs = {**inputs, **recipe.model.params}
    try:
        module = factory(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"model {name!r} rejects its params: {exc}", where="model.params") from exc
    return module, kwargs


def fingerprint(recipe: Recipe, data: DatasetRef) -> dict[str, Any]:
    """What must match for a checkpoint to be resumed: model, task, seed, dataset, training settings."""
    train = recipe.train.model_dump(mode="json", exclude=set(RESUME_FREE))
    return {"model": recipe.model.model_dump(mode="json"), "task": recipe.task, "seed": recipe.seed,
            "dataset": data.id, "train": train}


def checkpoint_root(store: Store, run_id: str) -> Path:
    """Where a train run keeps its checkpoints."""
    return store.scratch_root / "runs" / run_id / CHECKPOINTS


def find_resume_checkpoint(store: Store, resume: str, *, name: str) -> tuple[str, Path]:
    """The (run id, newest checkpoint) to resume: ``resume`` is a train run id (prefix) or ``last``.

    ``last`` picks the newest train run of recipe ``name`` that did not finish and has a checkpoint.

    Raises:
        NotFoundError: no such run, or it has no checkpoint.
    """
    if resume == "last":
        for run in store.runs.list(kind="train", limit=200):
            if run.get("name") == name and run.get("status") != "finished":
                found = latest_checkpoint(checkpoint_root(store, run["id"]))
                if found is not None:
                    return run["id"], found
        raise NotFoundError(f"no interrupted train run of {name!r} with a checkpoint to resume",
                            hint="pass a run id: --resume RUN (see `yard runs list`)")
    run = store.runs.get(resume)
    if run.get("kind") != "train":
        raise NotFoundError(f"run {run['id'][:12]} is a {run.get('kind')} run, not a train run")
    found = latest_checkpoint(checkpoint_root(store, run["id"]))
    if found is None:
        raise NotFoundError(f"train run {run['id'][:12]} has no checkpoint to resume from",
                            hint="checkpoints are written each epoch (train.checkpoint.every_steps for more)")
    return run["id"], found


@contextmanager
def deterministic_mode(enabled: bool) -> Iterator[None]:
    """``torch.use_deterministic_algorithms(True)`` for the block (restored after)."""
    if not enabled:
        yield
        return
    previous = torch.are_deterministic_algorithms_enabled()
    if torch.cuda.is_available():  # pragma: no cover - cuBLAS needs a fixed workspace to be deterministic
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous)


def run(recipe: Recipe, data: DatasetRef, *, ctx: RunContext, resume: str | None = None) -> ModelRef:
    """Train the recipe's model on ``data`` and publish it.

    Args:
        recipe: the validated recipe.
        data: the prepared dataset.
        ctx: the train run's context.
        resume: continue from the newest checkpoint of this train run id (or ``last``).

    Returns:
        The model artifact's reference (its manifest names ``data`` as parent).
    """
    check_optimizer_config(recipe.train.optimizer)
    check_schedule_config(recipe.train.schedule)
    if not isinstance(recipe.train.batch_size, int):
        raise ConfigError("train.batch_size auto is resolved before the train stage (from the plan's memory budget)",
                          where="train.batch_size", hint="train with `yard train`/`yard run`, or set a number")
    resume_path = None
    if resume is not None:
        old_run, resume_path = find_resume_checkpoint(ctx.store, resume, name=recipe.name)
        if distributed.is_main():
            ctx.store.runs.log_params(ctx.run_id, {"resumed_from_run": old_run, "resumed_from": resume_path.name})
    dataset = open_dataset(ctx.store, data)
    if distributed.is_main():  # under torchrun only rank 0 writes to the store
        ctx.store.artifacts.link_input(ctx.run_id, data)
    if dataset.schema.task != recipe.task:
        raise ConfigError(f"recipe task {recipe.task!r} does not match the dataset's {dataset.schema.task!r}",
                          where="task")
    seed_everything(recipe.seed)
    device = pick_device(recipe.train.device)
    splits, inputs, tokenizer = prepare_splits(recipe, dataset)
    train_rows = len(splits["train"])
    if train_rows < recipe.train.batch_size:
        raise ConfigError(f"train.batch_size {recipe.train.batch_size} is larger than the training split "
                          f"({train_rows} rows)", where="train.batch_size",
                          hint=f"use a batch size of at most {train_rows}")
    distributed.check_batches(train_rows, recipe.train.batch_size)
    seed_everything(recipe.seed)  # the same initial weights whatever the tokenizer consumed
    model, kwargs = build_model_for(recipe, inputs, dataset.schema.modality)
    model.to(device)
    # (model, DDP wrapper) under torchrun, the sharded model twice under FSDP, else twice model
    model, trained = distributed.wrap_model(model, device, recipe.train.parallel)
    cfg = recipe.train
    reg = cfg.regularization
    class_weights = dataset.class_weights if recipe.task == "classification" else None
    objective = build_objective(recipe.task, class_weights=class_weights, label_smoothing=reg.label_smoothing)
    objective.to(device)
    optimizer = build_optimizer(model, cfg.optimizer)
    settings = LoopSettings(
        epochs=cfg.epochs, batch_size=int(cfg.batch_size), grad_clip=cfg.grad_clip, log_every_steps=cfg.log_every_steps,
        seed=recipe.seed, task=recipe.task, grad_accumulation=cfg.grad_accumulation, precision=cfg.precision,
        compile=cfg.compile, validate_every_steps=cfg.validation.every_steps, early_stopping=cfg.early_stopping,
        checkpoint_every_steps=cfg.checkpoint.every_steps, checkpoint_keep=cfg.checkpoint.keep,
        checkpoint_min_interval_s=cfg.checkpoint.min_interval_s, guards=cfg.guards,
        l1=reg.l1, l2=reg.l2, fingerprint=fingerprint(recipe, data) | {"world_size": distributed.world().size})
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if distributed.is_main():
        ctx.store.runs.log_params(ctx.run_id, {"model": recipe.model.name, **_flat("model", kwargs),
                                               "parameters": sum(p.numel() for p in model.parameters()),
                                               "trainable_parameters": trainable,
                                               "class_weights": class_weights,
                                               "world_size": distributed.world().size})
    with deterministic_mode(cfg.deterministic):
        result = fit(trained, train=splits["train"], valid=splits["valid"], objective=objective, optimizer=optimizer,
                     make_schedule=lambda total, per_epoch: build_schedule(optimizer, cfg.schedule, total, per_epoch),
                     settings=settings, ctx=ctx, device=device,
                     checkpoint_dir=checkpoint_root(ctx.store, ctx.run_id) if cfg.checkpoint.enabled else None,
                     resume_from=resume_path, augment=online_augment(recipe, dataset, tokenizer))

    schema = dataset.schema
    spec = {"plugin": recipe.model.name, "kwargs": kwargs, "task": recipe.task, "modality": schema.modality,
            "label_names": schema.label_names,
            "inputs": {"features": schema.features, "image_shape": schema.image_shape, "text": schema.text}}
    if tokenizer is not None:
        spec["tokenizer"] = {"kind": tokenizer.kind, "max_length": kwargs["max_length"], "folder": TOKENIZER_DIR}
    if fsdp.is_sharded(model):  # gather the full weights onto rank 0 (every rank takes part) into a plain module
        state = distributed.model_state(model)
        if distributed.is_main():
            model = build_model_for(recipe, inputs, dataset.schema.modality)[0]
            model.load_state_dict(state)
    model.to("cpu")
    if not distributed.is_main():
        return ModelRef(id=distributed.broadcast(None))  # rank 0 publishes; the others learn its id
    with ctx.store.artifacts.staging() as folder:
        save_model(folder, model, spec, tokenizer=tokenizer)
        if recipe.model.name == "hf-pretrained":
            from modelyard.plugins.models.hf import save_hf_format

            save_hf_format(model, folder / HF_DIR)
        ref = ctx.store.artifacts.publish(folder, kind="model", run_id=ctx.run_id, parents=[data.id],
                                          relation="trained_from",
                                          meta={"plugin": recipe.model.name, "name": recipe.name})
    ctx.store.runs.set_summary(ctx.run_id, _summary(result, ref))
    return ModelRef(id=distributed.broadcast(ref.id))


def _flat(prefix: str, values: dict[str, Any]) -> dict[str, Any]:
    return {f"{prefix}.{k}": v for k, v in values.items()}


def _summary(result: FitResult, ref: ModelRef | Any) -> dict[str, Any]:
    summary = {"model": ref.id, "steps": result.steps, "best_epoch": result.best_epoch, "best_step": result.best_step,
               "wall_seconds": round(result.wall_seconds, 3), "stopped_early": result.stopped_early,
               "skipped_steps": result.skipped_steps, "rollbacks": result.rollbacks,
               "loss_spikes": result.loss_spikes, **result.best_valid}
    if result.resumed_from_step is not None:
        summary["resumed_from_step"] = result.resumed_from_step
    if result.mfu is not None:
        summary["mfu"] = round(result.mfu, 4)
    return summary


__all__ = ["build_model", "build_model_for", "checkpoint_root", "deterministic_mode", "find_resume_checkpoint",
           "fingerprint", "input_kwargs", "online_augment", "pick_device", "prepare_splits", "run", "text_split",
           "tokenizer_config"]

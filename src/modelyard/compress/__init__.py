"""Stage 6, shrink: ModelRef × DatasetRef → compressed variants, each gated by an accuracy budget.

For every variant of the recipe's ``compress:`` section (int8 dynamic / static, magnitude
or structured pruning, distillation, ONNX fp32 / int8) the stage builds the variant, saves
it into a staging folder, **loads it back through the runtime** (the same code evaluation
and serving use, so what is judged is what would be served), scores it on the held-out
split and compares it with its parent. A variant within ``budget.max_drop`` points is
published (lineage: ``compressed_from`` the parent) and registered as a new version of the
model, tagged with its method and parent; a rejected one is reported with its numbers and
its staging folder discarded; one that fails (ONNX checker, parity) is reported as failed.

    yard compress digits-cnn@staging recipe-with-compress-section.yaml
"""

from __future__ import annotations

import copy
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from modelyard.compress.export import onnx_variant
from modelyard.compress.gate import metric_drop, score, within_budget
from modelyard.compress.measure import folder_bytes, median_ms, parameter_count
from modelyard.compress.prune import (
    check_structured,
    magnitude_prune,
    make_permanent,
    structured_prune,
    weight_sparsity,
)
from modelyard.compress.quantize import check_dynamic, check_static, dynamic_variant, static_variant
from modelyard.config.compress import (
    CompressConfig,
    DistillVariant,
    Int8DynamicVariant,
    Int8StaticVariant,
    OnnxVariant,
    PruneVariant,
    StudentConfig,
)
from modelyard.config.recipe import Recipe
from modelyard.core.atomic import atomic_write_json
from modelyard.core.errors import ArtifactError, ConfigError, DataError
from modelyard.core.refs import DatasetRef, ModelRef
from modelyard.data.artifact import Dataset, open_dataset
from modelyard.plugins import MODELS, load_builtins
from modelyard.plugins.metrics import check_fits
from modelyard.plugins.models import modality_of
from modelyard.runtime.backends import format_of
from modelyard.runtime.package import (
    TOKENIZER_DIR,
    LoadedModel,
    build_from_spec,
    load_model,
    load_model_dir,
    model_tokenizer,
    save_model,
)
from modelyard.runtime.quantized import save_quantized
from modelyard.store.context import RunContext
from modelyard.train import array_split, online_augment, pick_device, text_split
from modelyard.train.distill import DistillSettings, distill
from modelyard.train.loop import BatchAugment, LoopSettings, TensorData, fit, seed_everything
from modelyard.train.objectives import build_objective
from modelyard.train.optim import build_optimizer, build_schedule

log = logging.getLogger("modelyard.compress")

# Factory keywords that describe the inputs, not the architecture: a student of another plugin inherits them.
INPUT_KWARGS = ("num_features", "in_channels", "image_size", "vocab_size", "max_length", "num_outputs")


@dataclass
class VariantResult:
    """What happened to one variant."""

    name: str
    method: str
    status: str  # accepted | rejected | failed
    reason: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    drop: float | None = None  # points on the budget metric (negative: better than the parent)
    size_bytes: int | None = None
    parameters: int | None = None
    latency_ms: dict[str, float] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    artifact: str | None = None
    version: str | None = None


@dataclass
class CompressResult:
    """The parent's figures and every variant's outcome."""

    parent: str
    parent_uri: str | None
    budget_metric: str
    max_drop: float
    split: str
    parent_metrics: dict[str, float]
    parent_size_bytes: int
    parent_parameters: int | None
    parent_latency_ms: dict[str, float]
    variants: list[VariantResult]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (run summary, ``--json``)."""
        return asdict(self)


def run(recipe: Recipe, model: ModelRef, data: DatasetRef, *, ctx: RunContext, name: str | None = None
        ) -> CompressResult:
    """Make, check and (if within budget) register every variant of ``recipe.compress``.

    Args:
        recipe: the validated recipe; its ``compress:`` section says what to make.
        model: the fp32 parent (an artifact of this store).
        data: the dataset the parent was trained on (held-out split for the gate, train for
            calibration, fine-tuning and distillation).
        ctx: the compress run's context.
        name: registry name of the variants (default: the recipe's name).

    Raises:
        ConfigError: no ``compress:`` section, a metric or method that does not fit the model
            (the layer is named), a parent that is itself compressed.
        DataError: empty splits (calibration, held-out), task or label mismatch.
    """
    cfg = recipe.compress
    if cfg is None:
        raise ConfigError("the recipe has no compress: section", where="compress",
                          hint="add compress: {variants: [{method: int8-dynamic}]}")
    if recipe.task not in ("classification", "regression"):
        raise ConfigError(f"compression of {recipe.task} models is not supported yet (classification and "
                          "regression are)", where="compress")
    load_builtins()
    check_fits([cfg.budget.metric], recipe.task, where="compress.budget.metric")
    name = name or recipe.name
    store = ctx.store
    dataset = open_dataset(store, data)
    parent = load_model(store, model)
    if format_of(parent.spec) != "torch":
        raise ConfigError(f"model {model.short} is already a {format_of(parent.spec)} variant; compress its fp32 "
                          "parent instead", where="MODEL")
    if parent.spec.get("task") != dataset.schema.task or parent.spec.get("label_names") != dataset.schema.label_names:
        raise DataError(f"model {model.short} and dataset {data.short} disagree on the task or the labels")
    store.artifacts.link_input(ctx.run_id, model)
    store.artifacts.link_input(ctx.run_id, data)
    _check_applicable(cfg, parent)

    metrics = list(dict.fromkeys([cfg.budget.metric, *recipe.evaluate.metrics]))
    check_fits(metrics, recipe.task)
    held = split_tensors(dataset, parent, cfg.split)
    # Parity probe: another batch size than the export example, token batches trimmed to their longest row.
    probe, _ = held.take(torch.arange(min(32, len(held))))
    parent_scores = score(parent.module, held, task=recipe.task, metrics=metrics)
    parent_versions = store.models.versions_of_artifact(model.id)
    parent_uri = parent_versions[0].uri if parent_versions else None
    result = CompressResult(parent=model.id, parent_uri=parent_uri, budget_metric=cfg.budget.metric,
                            max_drop=cfg.budget.max_drop, split=cfg.split, parent_metrics=parent_scores,
                            parent_size_bytes=folder_bytes(parent.path),
                            parent_parameters=parameter_count(parent.module),
                            parent_latency_ms=_latency(parent.module, held), variants=[])
    ctx.metrics.log(0, {f"parent/{k}": v for k, v in parent_scores.items()})
    ctx.progress.start("compress", len(cfg.variants))
    for step, variant in enumerate(cfg.variants, start=1):
        outcome = _one_variant(variant, cfg, recipe, parent, dataset, held, probe, ctx=ctx, name=name,
                               parent_uri=parent_uri, parent_scores=parent_scores)
        result.variants.append(outcome)
        figures = {f"{outcome.name}/{k}": v for k, v in outcome.metrics.items()}
        if outcome.drop is not None:
            figures[f"{outcome.name}/drop_points"] = outcome.drop
        if outcome.size_bytes:
            figures[f"{outcome.name}/size_ratio"] = result.parent_size_bytes / outcome.size_bytes
        ctx.metrics.log(step, figures)
        ctx.progress.advance(1, variant=outcome.name, status=outcome.status)
        log.info("variant %s: %s %s", outcome.name, outcome.status, outcome.reason)
    ctx.progress.stop()
    store.runs.set_summary(ctx.run_id, {"compress": result.to_dict(), "accepted":
                                        [v.name for v in result.variants if v.status == "accepted"]})
    return result


def split_tensors(dataset: Dataset, parent: LoadedModel, split: str) -> TensorData:
    """One split of ``dataset`` as the parent's input tensors (text: encoded with the parent's tokenizer)."""
    task = str(parent.spec["task"])
    if dataset.schema.modality == "text":
        tokenizer = model_tokenizer(parent)
        if tokenizer is None:
            raise DataError("the text model has no saved tokenizer: it cannot be fed the dataset's texts")
        texts, labels = dataset.texts(split)  # balancing / augmentation apply to the train split, as in training
        return text_split(tokenizer, texts, labels, max_length=int(parent.spec["tokenizer"]["max_length"]), task=task)
    return array_split(*dataset.arrays(split), task)


def _check_applicable(cfg: CompressConfig, parent: LoadedModel) -> None:
    """Refuse methods that cannot apply to the parent before any work is done (names the variant)."""
    plugin = parent.spec["plugin"]
    for index, variant in enumerate(cfg.variants):
        where = f"compress.variants[{index}] ({variant.label})"
        try:
            if isinstance(variant, Int8StaticVariant):
                check_static(parent.module, variant.skip)
            elif isinstance(variant, Int8DynamicVariant):
                check_dynamic(parent.module, variant.layers)
            elif isinstance(variant, PruneVariant) and variant.method == "prune-structured":
                check_structured(plugin, variant.head_sparsity)
            elif isinstance(variant, DistillVariant):
                student_spec(parent.spec, variant.student)
        except ConfigError as exc:
            raise ConfigError(exc.message, where=where, hint=exc.hint) from None


def student_spec(parent_spec: dict[str, Any], student: StudentConfig) -> dict[str, Any]:
    """The student's spec: the teacher's plugin with overridden params, or another plugin with the same inputs.

    Raises:
        PluginError: unknown student plugin.
        ConfigError: a student taking other inputs than the teacher.
    """
    plugin = student.name or parent_spec["plugin"]
    MODELS.get(plugin)
    if modality_of(plugin) != modality_of(parent_spec["plugin"]):
        raise ConfigError(f"student {plugin!r} takes {modality_of(plugin)} inputs but the teacher "
                          f"{parent_spec['plugin']!r} takes {modality_of(parent_spec['plugin'])}",
                          where="compress.variants[].student.name")
    if plugin == parent_spec["plugin"]:
        kwargs = {**parent_spec["kwargs"], **student.params}
    else:
        kwargs = {k: v for k, v in parent_spec["kwargs"].items() if k in INPUT_KWARGS} | dict(student.params)
    return {**parent_spec, "plugin": plugin, "kwargs": kwargs}


def _latency(module: nn.Module, held: TensorData) -> dict[str, float]:
    one = tuple(t[:1] for t in held.inputs)
    many = tuple(t[:32] for t in held.inputs)
    return {"batch1_p50": round(median_ms(module, one), 4), "batch32_p50": round(median_ms(module, many), 4)}


def _one_variant(variant: Any, cfg: CompressConfig, recipe: Recipe, parent: LoadedModel, dataset: Dataset,
                 held: TensorData, probe: tuple[torch.Tensor, ...], *, ctx: RunContext, name: str,
                 parent_uri: str | None, parent_scores: dict[str, float]) -> VariantResult:
    outcome = VariantResult(name=variant.label, method=variant.method, status="failed")
    store = ctx.store
    with store.artifacts.staging() as folder:
        try:
            outcome.details = _build(variant, recipe, parent, dataset, held, probe, folder, ctx=ctx)
            if (parent.path / TOKENIZER_DIR).is_dir() and not (folder / TOKENIZER_DIR).exists():
                _copy_tree(parent.path / TOKENIZER_DIR, folder / TOKENIZER_DIR)
            # Judge the variant as it will be served: reloaded from its files by the runtime.
            loaded = load_model_dir(folder, ModelRef(id="0" * 64))
        except (ArtifactError, DataError) as exc:
            outcome.reason = str(exc)
            return outcome
        try:
            outcome.metrics = score(loaded.module, held, task=recipe.task, metrics=list(parent_scores))
        except (RuntimeError, AttributeError, TypeError, NotImplementedError) as exc:
            # e.g. an int8 embedding table that the model reads as `.weight` instead of calling it.
            outcome.reason = f"the reloaded variant does not run: {type(exc).__name__}: {str(exc).splitlines()[0]}"
            return outcome
        outcome.size_bytes = folder_bytes(folder)
        outcome.parameters = parameter_count(loaded.module)
        outcome.latency_ms = _latency(loaded.module, held)
        metric = cfg.budget.metric
        outcome.drop = metric_drop(parent_scores[metric], outcome.metrics[metric], metric=metric)
        if not within_budget(outcome.drop, cfg.budget.max_drop):
            outcome.status = "rejected"
            outcome.reason = (f"{metric} {outcome.metrics[metric]:.4f} vs parent {parent_scores[metric]:.4f}: "
                              f"drop {outcome.drop:.2f} points > budget {cfg.budget.max_drop:g}")
            return outcome
        outcome.status = "accepted"
        ref = store.artifacts.publish(folder, kind="model", run_id=ctx.run_id, parents=[parent.ref.id],
                                      relation="compressed_from",
                                      meta={"stage": "compress", "name": name, "method": variant.method,
                                            "variant": variant.label, "parent": parent.ref.id,
                                            "plugin": loaded.spec["plugin"], "format": format_of(loaded.spec)})
    outcome.artifact = ref.id
    if cfg.register_accepted:
        tags = {"compression.method": variant.method, "compression.variant": variant.label,
                "compression.parent": parent_uri or parent.ref.id[:12]}
        version = store.models.register(name, ModelRef(id=ref.id), run_id=ctx.run_id,
                                        description=f"{variant.label} of {parent_uri or parent.ref.short}",
                                        metrics={f"{cfg.split}/{k}": v for k, v in outcome.metrics.items()},
                                        alias=cfg.alias, tags=tags)
        outcome.version = version.uri
    return outcome


def _build(variant: Any, recipe: Recipe, parent: LoadedModel, dataset: Dataset, held: TensorData,
           probe: tuple[torch.Tensor, ...], folder: Path, *, ctx: RunContext) -> dict[str, Any]:
    """Write one variant into ``folder``; returns method-specific figures."""
    fp32 = parent.module
    spec = dict(parent.spec)
    seed_everything(recipe.seed)
    if isinstance(variant, Int8DynamicVariant):
        quantized, qspec = dynamic_variant(fp32, spec, variant)
        save_quantized(folder, quantized, qspec)
        return {"per_channel": variant.per_channel, "layers": list(variant.layers)}
    if isinstance(variant, Int8StaticVariant):
        train = split_tensors(dataset, parent, "train")
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(recipe.seed))
        rows = order[:variant.calibration_rows]
        calibration = tuple(t[rows] for t in train.inputs) if len(train) else ()
        quantized, qspec = static_variant(fp32, spec, variant, calibration)
        save_quantized(folder, quantized, qspec)
        return {"per_channel": variant.per_channel, "calibration_rows": len(rows)}
    if isinstance(variant, PruneVariant):
        return _prune(variant, recipe, parent, dataset, folder, ctx=ctx)
    if isinstance(variant, DistillVariant):
        return _distill(variant, recipe, parent, dataset, folder, ctx=ctx)
    if isinstance(variant, OnnxVariant):
        example = _export_example(held)
        with ctx.store.artifacts.staging() as scratch:
            onnx_spec, diff = onnx_variant(fp32, spec, variant, example=example, probe=probe, folder=folder,
                                           scratch=scratch)
        atomic_write_json(folder / "spec.json", {"spec_version": 1, **onnx_spec})
        return {"parity_max_abs": diff, "exporter": variant.exporter, "opset": variant.opset}
    raise ConfigError(f"unknown compression method {getattr(variant, 'method', variant)!r}")


def _export_example(held: TensorData) -> tuple[torch.Tensor, ...]:
    """Two rows to trace; for token data, one of them padded so the masked-attention path is recorded."""
    example = tuple(t[:2].clone() for t in held.inputs)
    if held.mask_index is not None and example[0].shape[0] == 2 and example[0].shape[1] > 2:
        mask = example[held.mask_index]
        mask[1, mask.shape[1] // 2:] = 0
    return example


def _augment(recipe: Recipe, dataset: Dataset, parent: LoadedModel) -> BatchAugment | None:
    """The recipe's online augmentation for re-training a variant (as in training: train split only)."""
    tokenizer = model_tokenizer(parent) if dataset.schema.modality == "text" else None
    return online_augment(recipe, dataset, tokenizer)


def _fine_tune(module: nn.Module, variant: PruneVariant, recipe: Recipe, parent: LoadedModel, dataset: Dataset, *,
               ctx: RunContext) -> dict[str, float]:
    device = pick_device(recipe.train.device)
    train = split_tensors(dataset, parent, "train")
    valid = split_tensors(dataset, parent, "valid")
    module.to(device)
    objective = build_objective(recipe.task).to(device)
    optimizer = build_optimizer(module, recipe.train.optimizer.model_copy(update={"lr": variant.lr}))
    schedule = recipe.train.schedule
    settings = LoopSettings(epochs=variant.fine_tune_epochs, batch_size=min(variant.batch_size, len(train)),
                            grad_clip=recipe.train.grad_clip, log_every_steps=recipe.train.log_every_steps,
                            seed=recipe.seed, task=recipe.task, monitor=False)
    result = fit(module, train=train, valid=valid, objective=objective, optimizer=optimizer,
                 make_schedule=lambda total, per_epoch: build_schedule(optimizer, schedule, total, per_epoch),
                 settings=settings, ctx=ctx, device=device, augment=_augment(recipe, dataset, parent))
    module.to("cpu").eval()
    return {"fine_tune_steps": result.steps, **{f"fine_tune_{k}": v for k, v in result.best_valid.items()}}


def _prune(variant: PruneVariant, recipe: Recipe, parent: LoadedModel, dataset: Dataset, folder: Path, *,
           ctx: RunContext) -> dict[str, Any]:
    spec = dict(parent.spec)
    details: dict[str, Any] = {"sparsity": variant.sparsity}
    if variant.method == "prune-magnitude":
        module = copy.deepcopy(parent.module)
        magnitude_prune(module, variant.sparsity, permanent=variant.fine_tune_epochs == 0)
        if variant.fine_tune_epochs:
            details |= _fine_tune(module, variant, recipe, parent, dataset, ctx=ctx)
            make_permanent(module)
        details["weight_sparsity"] = round(weight_sparsity(module), 4)
    else:
        module, spec = structured_prune(parent.module, spec, variant.sparsity, build_from_spec,
                                        head_sparsity=variant.head_sparsity)
        details["head_sparsity"] = variant.head_sparsity
        if variant.fine_tune_epochs:
            details |= _fine_tune(module, variant, recipe, parent, dataset, ctx=ctx)
        details["kwargs"] = {k: v for k, v in spec["kwargs"].items() if parent.spec["kwargs"].get(k) != v}
    save_model(folder, module.eval(), spec)
    return details


def _distill(variant: DistillVariant, recipe: Recipe, parent: LoadedModel, dataset: Dataset, folder: Path, *,
             ctx: RunContext) -> dict[str, Any]:
    spec = student_spec(parent.spec, variant.student)
    seed_everything(recipe.seed)
    try:
        student = build_from_spec(spec)
    except ArtifactError as exc:
        raise ConfigError(f"the student rejects its params: {exc.message}",
                          where="compress.variants[].student.params") from None
    device = pick_device(recipe.train.device)
    train = split_tensors(dataset, parent, "train")
    valid = split_tensors(dataset, parent, "valid")
    teacher = parent.module.to(device)
    student.to(device)
    settings = LoopSettings(epochs=variant.epochs, batch_size=min(variant.batch_size, len(train)),
                            grad_clip=recipe.train.grad_clip, log_every_steps=recipe.train.log_every_steps,
                            seed=recipe.seed, task=recipe.task, monitor=False)
    result = distill(student, teacher, train=train, valid=valid, settings=settings,
                     distill_settings=DistillSettings(temperature=variant.temperature, alpha=variant.alpha,
                                                      lr=variant.lr), ctx=ctx, device=device,
                     augment=_augment(recipe, dataset, parent))
    teacher.to("cpu")
    student.to("cpu").eval()
    save_model(folder, student, spec)
    return {"student": spec["plugin"], "student_kwargs": spec["kwargs"], "steps": result.steps,
            "best_epoch": result.best_epoch, "teacher_parameters": parameter_count(parent.module),
            **{f"student_{k}": v for k, v in result.best_valid.items()}}


def _copy_tree(source: Path, target: Path) -> None:
    import shutil

    shutil.copytree(source, target, symlinks=False)


__all__ = ["CompressResult", "VariantResult", "run", "split_tensors", "student_spec"]

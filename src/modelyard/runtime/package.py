"""The model artifact: ``weights.safetensors`` + ``spec.json`` (+ manifest). No pickle.

``spec.json`` names the registered plugin and every keyword it was built with, the task,
the input schema and the label names, so a model loads without its training data. A
text model also holds its fitted tokenizer in ``tokenizer/`` (JSON files, see
``plugins/tokenizers``); :func:`model_tokenizer` reads it back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_model as load_safetensors_model
from safetensors.torch import save_model as save_safetensors_model
from torch import nn

from modelyard.core.atomic import atomic_write_json
from modelyard.core.errors import ArtifactError
from modelyard.core.manifest import looks_like_pickle
from modelyard.core.refs import ModelRef
from modelyard.plugins import MODELS, load_builtins
from modelyard.plugins.tokenizers.base import Tokenizer, load_tokenizer
from modelyard.store.project import Store

WEIGHTS = "weights.safetensors"
TOKENIZER_DIR = "tokenizer"
SPEC = "spec.json"
SPEC_VERSION = 1


def save_model(folder: Path, model: nn.Module, spec: dict[str, Any], *, tokenizer: Tokenizer | None = None) -> None:
    """Write ``model``'s weights and ``spec`` (and the fitted ``tokenizer``) into a staging folder.

    ``spec`` must hold ``plugin`` (registered name) and ``kwargs`` (the factory's arguments).
    """
    if tokenizer is not None:
        tokenizer.save(folder / TOKENIZER_DIR)
    for key in ("plugin", "kwargs", "task"):
        if key not in spec:
            raise ArtifactError(f"model spec lacks {key!r}")
    # save_model (not save_file) handles tied / shared tensors such as GPT's embeddings.
    save_safetensors_model(model, str(folder / WEIGHTS))
    atomic_write_json(folder / SPEC, {"spec_version": SPEC_VERSION, **spec})


@dataclass
class LoadedModel:
    """A model module in eval mode with its spec."""

    ref: ModelRef
    module: nn.Module
    spec: dict[str, Any]
    path: Path


def build_from_spec(spec: dict[str, Any]) -> nn.Module:
    """Build an untrained module from a spec (plugin name + kwargs)."""
    load_builtins()
    factory = MODELS.get(spec["plugin"])
    try:
        return factory(**spec["kwargs"])  # type: ignore[no-any-return]
    except TypeError as exc:
        raise ArtifactError(f"model plugin {spec['plugin']!r} rejects the spec's arguments: {exc}") from exc


def load_model_dir(path: Path, ref: ModelRef, *, device: str | torch.device = "cpu") -> LoadedModel:
    """Load a model from an already verified artifact folder."""
    spec_path, weights = path / SPEC, path / WEIGHTS
    if not spec_path.is_file():
        raise ArtifactError("model artifact has no spec.json", where=str(path))
    variant_spec = json.loads(spec_path.read_text("utf-8"))
    if variant_spec.get("format", "torch") != "torch":
        # A compressed variant (torch int8, ONNX Runtime): runtime/backends.py rebuilds it.
        from modelyard.runtime.backends import load_variant_module

        return LoadedModel(ref=ref, module=load_variant_module(path, variant_spec, device=device),
                           spec=variant_spec, path=path)
    if not weights.is_file():
        raise ArtifactError("model artifact has no weights.safetensors", where=str(path))
    if looks_like_pickle(weights):
        raise ArtifactError("weights file is a pickle, not safetensors: refused", where=str(weights))
    spec = json.loads(spec_path.read_text("utf-8"))
    module = build_from_spec(spec)
    try:
        load_safetensors_model(module, str(weights), strict=True, device=str(device))
    except (SafetensorError, RuntimeError, OSError) as exc:
        raise ArtifactError(f"cannot load weights: {exc}", where=str(weights)) from exc
    module.to(device).eval()
    return LoadedModel(ref=ref, module=module, spec=spec, path=path)


def model_tokenizer(loaded: LoadedModel) -> Tokenizer | None:
    """The tokenizer saved with a text model (None for tabular and image models)."""
    folder = loaded.path / TOKENIZER_DIR
    return load_tokenizer(folder) if folder.is_dir() else None


def load_model(store: Store, ref: ModelRef, *, device: str | torch.device = "cpu") -> LoadedModel:
    """Verify every file's hash, refuse pickles, rebuild the module and load its weights.

    Raises:
        ArtifactError: tampered, incomplete or pickle-based artifacts.
    """
    path = store.artifacts.path(ref)
    return load_model_dir(path, ref, device=device)

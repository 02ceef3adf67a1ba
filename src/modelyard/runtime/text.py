"""Text models on strings: the saved tokenizer, texts → ``(input_ids, attention_mask)``, batched outputs.

A text model's artifact holds the tokenizer fitted at training time (``tokenizer/``) and its
``max_length`` in ``spec.json``; :func:`text_encoder` reads both back, so texts are encoded
exactly as in training. Eager torch batches are padded to their longest row (as training
batches were trimmed to theirs); compressed variants (int8, ONNX) get ``max_length`` rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from modelyard.core.errors import ArtifactError
from modelyard.plugins.tokenizers.base import Tokenizer
from modelyard.runtime.package import LoadedModel, model_tokenizer

IGNORE = -100  # next-token targets to leave out (padding, the last position)


def spec_max_length(spec: dict[str, Any], *, where: str = "spec.json") -> int:
    """The ``max_length`` a text model was trained with (``tokenizer.max_length``, else ``kwargs``).

    Raises:
        ArtifactError: the spec names none.
    """
    value = (spec.get("tokenizer") or {}).get("max_length") or (spec.get("kwargs") or {}).get("max_length")
    if not isinstance(value, int) or value < 2:
        raise ArtifactError("text model spec names no max_length (tokenizer.max_length)", where=where)
    return value


@dataclass(frozen=True)
class TextEncoder:
    """The tokenizer of a text model and the length its texts are cut to."""

    tokenizer: Tokenizer
    max_length: int
    pad_to_longest: bool = True

    def encode(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """``(input_ids, attention_mask)``, int64 ``(B, T)`` each."""
        return self.tokenizer.encode_batch([str(t) for t in texts], self.max_length,
                                           pad_to_longest=self.pad_to_longest)


def text_encoder(loaded: LoadedModel) -> TextEncoder:
    """The encoder saved with a text model.

    Raises:
        ArtifactError: the artifact has no ``tokenizer/`` folder or its spec no ``max_length``.
    """
    tokenizer = model_tokenizer(loaded)
    if tokenizer is None:
        raise ArtifactError("text model artifact has no tokenizer/ folder", where=str(loaded.path))
    eager = loaded.spec.get("format", "torch") == "torch"
    return TextEncoder(tokenizer, spec_max_length(loaded.spec, where=str(loaded.path)), pad_to_longest=eager)


def _device(model: LoadedModel) -> torch.device:
    # int8 and ONNX Runtime variants have no torch parameters: they take CPU tensors.
    first = next(iter(model.module.parameters()), None)
    return first.device if first is not None else torch.device("cpu")


@torch.inference_mode()
def predict_text_outputs(model: LoadedModel, encoder: TextEncoder, texts: Sequence[str], *,
                         batch_size: int = 128) -> np.ndarray:
    """Raw outputs ``(N, K)`` float32 of a pooled text model (classification logits or values)."""
    device = _device(model)
    outs = []
    for start in range(0, len(texts), batch_size):
        ids, mask = encoder.encode(texts[start:start + batch_size])
        out = model.module(torch.as_tensor(ids, device=device), torch.as_tensor(mask, device=device))
        outs.append(out.float().cpu().numpy())
    if not outs:
        return np.zeros((0, max(1, len(model.spec.get("label_names", [])))), dtype=np.float32)
    return np.concatenate(outs)


def next_token_targets(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``targets[:, t] = ids[:, t + 1]``; the last position and padding are :data:`IGNORE`."""
    targets = np.full_like(ids, IGNORE)
    targets[:, :-1] = np.where(mask[:, 1:] == 0, IGNORE, ids[:, 1:])
    return targets


@torch.inference_mode()
def next_token_probabilities(model: LoadedModel, encoder: TextEncoder, texts: Sequence[str], *,
                             batch_size: int = 64) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A causal language model's predictions for every target token of ``texts``.

    Returns:
        ``(targets, probabilities, rows)``: the target ids ``(M,)`` of the non-ignored
        positions, the model's next-token probabilities there ``(M, V)`` float32, and the
        text each position belongs to ``(M,)``.
    """
    device = _device(model)
    targets, probs, rows = [], [], []
    for start in range(0, len(texts), batch_size):
        ids, mask = encoder.encode(texts[start:start + batch_size])
        logits = model.module(torch.as_tensor(ids, device=device), torch.as_tensor(mask, device=device))  # (B,T,V)
        target = next_token_targets(ids, mask)
        keep = target != IGNORE
        picked = torch.as_tensor(keep, device=device)
        probs.append(torch.softmax(logits[picked].float(), dim=-1).cpu().numpy())
        targets.append(target[keep])
        rows.append(np.nonzero(keep)[0] + start)
    vocab = int(model.spec.get("kwargs", {}).get("num_outputs") or encoder.tokenizer.vocab_size)
    if not targets:
        return np.zeros(0, np.int64), np.zeros((0, vocab), np.float32), np.zeros(0, np.int64)
    return np.concatenate(targets), np.concatenate(probs), np.concatenate(rows)


__all__ = ["IGNORE", "TextEncoder", "next_token_probabilities", "next_token_targets", "predict_text_outputs",
           "spec_max_length", "text_encoder"]

"""The tokenizer interface every tokenizer plugin implements, and :func:`load_tokenizer`.

A tokenizer plugin is a class registered in ``TOKENIZERS`` whose constructor takes
keyword-only settings. It turns texts into fixed-shape id matrices for the token models:

    tok = TOKENIZERS.get("bpe")(vocab_size=8000).fit(texts)
    ids, mask = tok.encode_batch(["a text", "another"], max_length=128)  # (B, T) int64 each
    tok.save(folder)                     # tokenizer.json + tokenizer_meta.json, no pickle
    same = load_tokenizer(folder)        # dispatches on the saved kind

Special tokens come in two styles: ``bert`` — ``[PAD]`` = 0, ``[UNK]``, ``[CLS]``,
``[SEP]``, ``[MASK]``, every sequence wrapped as ``[CLS] … [SEP]`` — and ``gpt`` —
``<|endoftext|>`` = 0 (it pads as well: the attention mask tells padding apart), plus
``<|unk|>`` for the tokenizers that can meet unknown symbols (``char``, ``wordpiece``).
Sequences are padded on the right and truncated to ``max_length`` (keeping ``[SEP]``).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, Self

import numpy as np

from modelyard.core.atomic import atomic_write_json
from modelyard.core.errors import ArtifactError
from modelyard.plugins import TOKENIZERS, load_builtins

SpecialStyle = Literal["bert", "gpt"]
TOKENIZER_FILE = "tokenizer.json"
META_FILE = "tokenizer_meta.json"
META_VERSION = 1


@dataclass(frozen=True)
class SpecialTokens:
    """The special tokens of one style, in id order (the first one is id 0, the padding token)."""

    pad: str
    unk: str | None
    cls: str | None
    sep: str | None
    mask: str | None

    @property
    def ordered(self) -> list[str]:
        """Distinct special tokens in id order."""
        out: list[str] = []
        for token in (self.pad, self.unk, self.cls, self.sep, self.mask):
            if token is not None and token not in out:
                out.append(token)
        return out


def special_tokens(style: SpecialStyle, *, needs_unk: bool) -> SpecialTokens:
    """The special tokens of ``style``; ``needs_unk`` adds ``<|unk|>`` to the gpt style.

    Raises:
        ValueError: unknown style.
    """
    if style == "bert":
        return SpecialTokens(pad="[PAD]", unk="[UNK]", cls="[CLS]", sep="[SEP]", mask="[MASK]")
    if style == "gpt":
        return SpecialTokens(pad="<|endoftext|>", unk="<|unk|>" if needs_unk else None, cls=None, sep=None, mask=None)
    raise ValueError(f"special_tokens must be 'bert' or 'gpt', not {style!r}")


class Tokenizer(ABC):
    """What every tokenizer plugin offers.

    Attributes:
        kind: the registered name, saved in ``tokenizer_meta.json`` so :func:`load_tokenizer`
            knows which class reads the folder.
        trainable: whether :meth:`fit` learns a vocabulary (pretrained ones ignore it).
    """

    kind: ClassVar[str]
    trainable: ClassVar[bool] = True

    @abstractmethod
    def fit(self, texts: Iterable[str]) -> Self:
        """Learn the vocabulary from ``texts`` (any iterable of str, read once); returns ``self``."""

    @abstractmethod
    def encode_batch(self, texts: Sequence[str], max_length: int, *,
                     pad_to_longest: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Encode ``texts`` into ``(input_ids, attention_mask)``, both int64 ``(B, T)``.

        Args:
            texts: the texts.
            max_length: truncate to this many tokens (special tokens included).
            pad_to_longest: pad to the longest row of this batch instead of ``max_length``.

        Returns:
            ``input_ids`` (right-padded with :attr:`pad_id`) and ``attention_mask`` (1 = token, 0 = padding).
        """

    @abstractmethod
    def decode(self, ids: Iterable[int]) -> str:
        """Text of one row of ids; special and padding tokens are dropped."""

    @property
    @abstractmethod
    def vocab_size(self) -> int:
        """Number of ids (the model's ``vocab_size``)."""

    @property
    @abstractmethod
    def pad_id(self) -> int:
        """The id that pads rows."""

    @abstractmethod
    def save(self, folder: str | Path) -> None:
        """Write ``tokenizer.json`` and ``tokenizer_meta.json`` into ``folder`` (created)."""

    @classmethod
    @abstractmethod
    def load(cls, folder: str | Path) -> Self:
        """Read a tokenizer that :meth:`save` wrote."""


def write_meta(folder: Path, kind: str, settings: dict[str, Any]) -> None:
    """Write ``tokenizer_meta.json``: the kind plus the settings ``load`` needs."""
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_json(folder / META_FILE, {"kind": kind, "meta_version": META_VERSION, **settings})


def read_meta(folder: str | Path) -> dict[str, Any]:
    """Read ``tokenizer_meta.json`` of a saved tokenizer.

    Raises:
        ArtifactError: the folder has no (readable) meta file or it names no kind.
    """
    path = Path(folder) / META_FILE
    if not path.is_file():
        raise ArtifactError(f"no {META_FILE}: not a saved modelyard tokenizer", where=str(folder))
    try:
        meta = json.loads(path.read_text("utf-8"))
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"unreadable {META_FILE}: {exc}", where=str(path)) from exc
    if not isinstance(meta, dict) or "kind" not in meta:
        raise ArtifactError(f"{META_FILE} names no tokenizer kind", where=str(path))
    return meta


def load_tokenizer(folder: str | Path) -> Tokenizer:
    """Load any saved tokenizer, dispatching on the kind recorded in ``tokenizer_meta.json``.

    Raises:
        ArtifactError: not a saved tokenizer folder.
        PluginError: the recorded kind is not a registered tokenizer.
    """
    meta = read_meta(folder)
    load_builtins()
    tokenizer_class = TOKENIZERS.get(meta["kind"])
    return tokenizer_class.load(folder)  # type: ignore[no-any-return]


def pad_rows(rows: Sequence[Sequence[int]], length: int, pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Right-pad ``rows`` (each at most ``length`` long) into ``(ids, mask)`` int64 ``(B, length)``."""
    ids = np.full((len(rows), length), pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), length), dtype=np.int64)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = row
        mask[i, : len(row)] = 1
    return ids, mask


def as_id_list(ids: Iterable[int]) -> list[int]:
    """Plain ints from a list, a 1-D numpy array or a 1-D tensor."""
    if hasattr(ids, "tolist"):
        ids = ids.tolist()  # numpy / torch: one call instead of an element-wise loop
    return [int(i) for i in ids]


__all__ = ["META_FILE", "TOKENIZER_FILE", "SpecialStyle", "SpecialTokens", "Tokenizer", "as_id_list",
           "load_tokenizer", "pad_rows", "read_meta", "special_tokens", "write_meta"]

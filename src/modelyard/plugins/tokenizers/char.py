"""``char``: a character-level tokenizer in pure Python (no ``tokenizers`` dependency).

Each character seen by :meth:`CharTokenizer.fit` gets an id after the special tokens;
unseen characters map to the unknown token. ``tokenizer.json`` holds the vocabulary as a
JSON list (our own small format, not the ``tokenizers`` library's).
"""

from __future__ import annotations

import json
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Self

import numpy as np

from modelyard.core.atomic import atomic_write_json
from modelyard.core.errors import ArtifactError
from modelyard.plugins import TOKENIZERS
from modelyard.plugins.tokenizers.base import (
    TOKENIZER_FILE,
    SpecialStyle,
    Tokenizer,
    as_id_list,
    pad_rows,
    read_meta,
    write_meta,
)
from modelyard.plugins.tokenizers.base import special_tokens as special_tokens_of


@TOKENIZERS.register("char")
class CharTokenizer(Tokenizer):
    """One id per character.

    Args:
        vocab_size: keep at most this many ids (special tokens included), the most frequent
            characters first; ``None`` keeps every character seen.
        lowercase: lower-case texts before encoding (and fitting).
        special_tokens: ``bert`` ([PAD] [UNK] [CLS] [SEP] [MASK], rows wrapped in [CLS] … [SEP])
            or ``gpt`` (<|endoftext|> pads, <|unk|>).
    """

    kind = "char"

    def __init__(self, *, vocab_size: int | None = None, lowercase: bool = False,
                 special_tokens: SpecialStyle = "bert") -> None:
        self.max_vocab = vocab_size
        self.lowercase = lowercase
        self.style = special_tokens
        self.specials = special_tokens_of(special_tokens, needs_unk=True)
        self.vocab_: list[str] | None = None
        self._index: dict[str, int] = {}

    def _normalize(self, text: str) -> str:
        # NFC so that "é" typed as e + combining accent is the same character as the precomposed one.
        text = unicodedata.normalize("NFC", text)
        return text.lower() if self.lowercase else text

    def fit(self, texts: Iterable[str]) -> Self:
        """Count characters in ``texts`` and build the vocabulary."""
        counts: Counter[str] = Counter()
        for text in texts:
            counts.update(self._normalize(text))
        reserved = self.specials.ordered
        room = None if self.max_vocab is None else self.max_vocab - len(reserved)
        if room is not None and room < 1:
            raise ValueError(f"vocab_size {self.max_vocab} leaves no room after {len(reserved)} special tokens")
        # Most frequent first when capped; ties broken by the character so the vocabulary is deterministic.
        kept = [c for c, _ in sorted(counts.items(), key=lambda item: (-item[1], item[0]))][:room]
        self._set_vocab(reserved + sorted(kept))
        return self

    def _set_vocab(self, vocab: list[str]) -> None:
        self.vocab_ = vocab
        self._index = {token: i for i, token in enumerate(vocab)}

    def _require_fitted(self) -> list[str]:
        if self.vocab_ is None:
            raise RuntimeError("char tokenizer is not fitted: call fit(texts) first")
        return self.vocab_

    def encode_batch(self, texts: Sequence[str], max_length: int, *,
                     pad_to_longest: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Encode ``texts`` into ``(input_ids, attention_mask)`` int64 ``(B, T)`` (see :class:`Tokenizer`)."""
        self._require_fitted()
        specials = self.specials
        prefix = [self._index[specials.cls]] if specials.cls else []
        suffix = [self._index[specials.sep]] if specials.sep else []
        room = max_length - len(prefix) - len(suffix)
        if room < 0:
            raise ValueError(f"max_length {max_length} cannot hold the special tokens")
        unk = self._index[specials.unk] if specials.unk else 0
        rows = [prefix + [self._index.get(c, unk) for c in self._normalize(text)[:room]] + suffix
                for text in texts]
        length = max((len(r) for r in rows), default=0) if pad_to_longest else max_length
        return pad_rows(rows, length, self.pad_id)

    def decode(self, ids: Iterable[int]) -> str:
        """Characters of ``ids``, special tokens dropped."""
        vocab = self._require_fitted()
        special = set(range(len(self.specials.ordered)))
        return "".join(vocab[i] for i in as_id_list(ids) if i not in special and 0 <= i < len(vocab))

    @property
    def vocab_size(self) -> int:
        """Number of ids."""
        return len(self._require_fitted())

    @property
    def pad_id(self) -> int:
        """Always 0: the padding token comes first in both styles."""
        return 0

    def save(self, folder: str | Path) -> None:
        """Write the vocabulary (``tokenizer.json``) and the settings (``tokenizer_meta.json``)."""
        vocab = self._require_fitted()
        out = Path(folder)
        write_meta(out, self.kind, {"lowercase": self.lowercase, "special_tokens": self.style,
                                    "vocab_size": self.max_vocab})
        atomic_write_json(out / TOKENIZER_FILE, {"type": "modelyard-char", "vocab": vocab})

    @classmethod
    def load(cls, folder: str | Path) -> Self:
        """Read a folder written by :meth:`save`.

        Raises:
            ArtifactError: missing or malformed files.
        """
        meta = read_meta(folder)
        path = Path(folder) / TOKENIZER_FILE
        try:
            data = json.loads(path.read_text("utf-8"))
            vocab = data["vocab"]
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ArtifactError(f"cannot read the char vocabulary: {exc}", where=str(path)) from exc
        tokenizer = cls(vocab_size=meta.get("vocab_size"), lowercase=bool(meta.get("lowercase", False)),
                        special_tokens=meta.get("special_tokens", "bert"))
        if not isinstance(vocab, list) or vocab[: len(tokenizer.specials.ordered)] != tokenizer.specials.ordered:
            raise ArtifactError("char vocabulary does not start with its special tokens", where=str(path))
        tokenizer._set_vocab([str(token) for token in vocab])
        return tokenizer


__all__ = ["CharTokenizer"]

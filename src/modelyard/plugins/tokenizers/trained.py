"""``bpe`` and ``wordpiece``: subword tokenizers trained on your texts with the ``tokenizers`` library.

- ``bpe``: byte-level BPE (GPT-2's scheme): every byte is in the base alphabet, so there is
  no unknown token and ``decode(encode(text))`` gives the (normalised) text back.
- ``wordpiece``: BERT's scheme: BERT normalisation and pre-tokenisation, ``##`` continuation
  pieces, ``[UNK]`` for words it cannot spell.

Both save the library's own ``tokenizer.json`` (readable by ``tokenizers`` and
``transformers``) plus ``tokenizer_meta.json``. :class:`BackendTokenizer` holds what they share
with the pretrained ``hf`` tokenizer: encoding through a ``tokenizers.Tokenizer``.

``tokenizers`` (the ``text`` extra) is imported when a tokenizer is built, not at import.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import numpy as np

from modelyard.core.atomic import atomic_write_text
from modelyard.core.errors import ArtifactError
from modelyard.plugins import TOKENIZERS
from modelyard.plugins.tokenizers.base import (
    TOKENIZER_FILE,
    SpecialStyle,
    SpecialTokens,
    Tokenizer,
    as_id_list,
    read_meta,
    write_meta,
)
from modelyard.plugins.tokenizers.base import special_tokens as special_tokens_of

if TYPE_CHECKING:
    import tokenizers


class BackendTokenizer(Tokenizer):
    """Shared encoding, decoding and saving around a ``tokenizers.Tokenizer`` (``backend_``).

    Subclasses build ``backend_`` (in ``fit`` or from a folder) and set ``pad_token``.
    """

    def __init__(self) -> None:
        self.backend_: tokenizers.Tokenizer | None = None
        self.pad_token: str = "[PAD]"  # noqa: S105 - a token name, not a password

    def _require_fitted(self) -> tokenizers.Tokenizer:
        if self.backend_ is None:
            raise RuntimeError(f"{self.kind} tokenizer is not fitted: call fit(texts) first")
        return self.backend_

    def encode_batch(self, texts: Sequence[str], max_length: int, *,
                     pad_to_longest: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Encode ``texts`` into ``(input_ids, attention_mask)`` int64 ``(B, T)`` (see :class:`Tokenizer`)."""
        backend = self._require_fitted()
        length = None if pad_to_longest else max_length
        # The library's truncation knows the post-processor, so [CLS] … [SEP] survive truncation.
        # Settings are only written when they change: serving threads then only ever read them
        # (writing while another thread encodes would fail the Rust-side borrow check).
        truncation = {"max_length": max_length, "strategy": "longest_first", "stride": 0, "direction": "right"}
        if backend.truncation != truncation:
            backend.enable_truncation(max_length)
        padding = backend.padding
        if (padding is None or padding.get("length") != length or padding.get("pad_id") != self.pad_id
                or padding.get("direction") != "right"):
            backend.enable_padding(direction="right", pad_id=self.pad_id, pad_token=self.pad_token, length=length)
        encodings = backend.encode_batch([str(text) for text in texts])
        if not encodings:
            return np.zeros((0, length or 0), dtype=np.int64), np.zeros((0, length or 0), dtype=np.int64)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)  # (B, T)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)  # (B, T)
        return ids, mask

    def decode(self, ids: Iterable[int]) -> str:
        """Text of ``ids``, special and padding tokens dropped."""
        return self._require_fitted().decode(as_id_list(ids), skip_special_tokens=True)

    @property
    def vocab_size(self) -> int:
        """Number of ids, added (special) tokens included."""
        return int(self._require_fitted().get_vocab_size(with_added_tokens=True))

    @property
    def pad_id(self) -> int:
        """Id of :attr:`pad_token`."""
        pad = self._require_fitted().token_to_id(self.pad_token)
        if pad is None:
            raise ArtifactError(f"the padding token {self.pad_token!r} is not in the vocabulary")
        return int(pad)

    def _meta(self) -> dict[str, Any]:
        """Settings saved in ``tokenizer_meta.json`` (subclasses extend)."""
        return {"pad_token": self.pad_token}

    def save(self, folder: str | Path) -> None:
        """Write the library's ``tokenizer.json`` (without per-call padding/truncation) and the meta file."""
        backend = self._require_fitted()
        out = Path(folder)
        write_meta(out, self.kind, self._meta())
        # Padding/truncation are per-call settings of encode_batch, not part of the saved tokenizer.
        backend.no_padding()
        backend.no_truncation()
        atomic_write_text(out / TOKENIZER_FILE, backend.to_str())

    @classmethod
    def _read_backend(cls, folder: str | Path) -> tuple[tokenizers.Tokenizer, dict[str, Any]]:
        from tokenizers import Tokenizer as Backend

        meta = read_meta(folder)
        path = Path(folder) / TOKENIZER_FILE
        if not path.is_file():
            raise ArtifactError(f"no {TOKENIZER_FILE} in the tokenizer folder", where=str(folder))
        try:
            backend = Backend.from_file(str(path))
        except Exception as exc:  # the Rust side raises a bare Exception on bad JSON
            raise ArtifactError(f"cannot read {TOKENIZER_FILE}: {exc}", where=str(path)) from exc
        return backend, meta


class _TrainedTokenizer(BackendTokenizer):
    """Settings and save/load shared by ``bpe`` and ``wordpiece``."""

    needs_unk = False

    def __init__(self, *, vocab_size: int = 8000, lowercase: bool = True, special_tokens: SpecialStyle = "bert",
                 min_frequency: int = 2) -> None:
        super().__init__()
        self.target_vocab_size = vocab_size
        self.lowercase = lowercase
        self.style = special_tokens
        self.min_frequency = min_frequency
        self.specials: SpecialTokens = special_tokens_of(special_tokens, needs_unk=self.needs_unk)
        self.pad_token = self.specials.pad

    def _meta(self) -> dict[str, Any]:
        return {**super()._meta(), "vocab_size": self.target_vocab_size, "lowercase": self.lowercase,
                "special_tokens": self.style, "min_frequency": self.min_frequency}

    def _add_post_processor(self, backend: tokenizers.Tokenizer) -> None:
        from tokenizers import processors

        cls_token, sep_token = self.specials.cls, self.specials.sep
        if cls_token is None or sep_token is None:
            return  # gpt style: texts are encoded as they are
        cls_id, sep_id = backend.token_to_id(cls_token), backend.token_to_id(sep_token)
        backend.post_processor = processors.TemplateProcessing(
            single=f"{cls_token} $A {sep_token}", pair=f"{cls_token} $A {sep_token} $B:1 {sep_token}:1",
            special_tokens=[(cls_token, cls_id), (sep_token, sep_id)])

    @classmethod
    def load(cls, folder: str | Path) -> Self:
        """Read a folder written by :meth:`save`."""
        backend, meta = cls._read_backend(folder)
        tokenizer = cls(vocab_size=int(meta.get("vocab_size", 8000)), lowercase=bool(meta.get("lowercase", True)),
                        special_tokens=meta.get("special_tokens", "bert"),
                        min_frequency=int(meta.get("min_frequency", 2)))
        tokenizer.backend_ = backend
        return tokenizer


@TOKENIZERS.register("bpe")
class BPETokenizer(_TrainedTokenizer):
    """Byte-level BPE trained on your texts.

    Args:
        vocab_size: target vocabulary size, special tokens and the 256 byte symbols included.
        lowercase: lower-case texts (after NFC normalisation).
        special_tokens: ``bert`` or ``gpt`` style (see ``plugins.tokenizers.base``).
        min_frequency: a merge must occur at least this often.
    """

    kind = "bpe"

    def fit(self, texts: Iterable[str]) -> Self:
        """Train the merges on ``texts``."""
        from tokenizers import Tokenizer as Backend
        from tokenizers import decoders, models, normalizers, pre_tokenizers, trainers

        backend = Backend(models.BPE())
        steps = [normalizers.NFC()] + ([normalizers.Lowercase()] if self.lowercase else [])
        backend.normalizer = normalizers.Sequence(steps)
        backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        backend.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=self.target_vocab_size, min_frequency=self.min_frequency,
                                      special_tokens=self.specials.ordered, show_progress=False,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        backend.train_from_iterator(_strings(texts), trainer=trainer)
        self._add_post_processor(backend)
        self.backend_ = backend
        return self


@TOKENIZERS.register("wordpiece")
class WordPieceTokenizer(_TrainedTokenizer):
    """BERT-style WordPiece trained on your texts.

    Args:
        vocab_size: target vocabulary size, special tokens included.
        lowercase: lower-case texts (BERT normaliser).
        special_tokens: ``bert`` or ``gpt`` style (gpt adds ``<|unk|>``; see ``plugins.tokenizers.base``).
        min_frequency: a piece must occur at least this often.
    """

    kind = "wordpiece"
    needs_unk = True

    def fit(self, texts: Iterable[str]) -> Self:
        """Train the word pieces on ``texts``."""
        from tokenizers import Tokenizer as Backend
        from tokenizers import decoders, models, normalizers, pre_tokenizers, trainers

        assert self.specials.unk is not None  # needs_unk guarantees it
        backend = Backend(models.WordPiece(unk_token=self.specials.unk))
        backend.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True,
                                                        strip_accents=None, lowercase=self.lowercase)
        backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        backend.decoder = decoders.WordPiece()
        trainer = trainers.WordPieceTrainer(vocab_size=self.target_vocab_size, min_frequency=self.min_frequency,
                                            special_tokens=self.specials.ordered, show_progress=False)
        backend.train_from_iterator(_strings(texts), trainer=trainer)
        self._add_post_processor(backend)
        self.backend_ = backend
        return self


def _strings(texts: Iterable[str]) -> Iterator[str]:
    # The Rust trainer rejects non-str items (numpy str_, None) with an opaque error.
    for text in texts:
        yield str(text)


__all__ = ["BPETokenizer", "BackendTokenizer", "WordPieceTokenizer"]

"""``hf``: the pretrained tokenizer of a local Hugging Face model folder.

Reads the folder's ``tokenizer.json`` with the ``tokenizers`` library; a folder without
one (only ``vocab.txt`` / ``vocab.json`` + ``merges.txt``) is converted through
``transformers.AutoTokenizer`` (fast tokenizers only). Nothing is downloaded, and the
folder's own padding/truncation settings are replaced by ``encode_batch``'s.
Saved, it is a plain ``tokenizer.json`` + ``tokenizer_meta.json`` like the trained kinds.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from modelyard.core.errors import ArtifactError
from modelyard.plugins import TOKENIZERS
from modelyard.plugins.models.folders import resolve_model_folder
from modelyard.plugins.tokenizers.base import TOKENIZER_FILE
from modelyard.plugins.tokenizers.trained import BackendTokenizer

if TYPE_CHECKING:
    import tokenizers

# Tried in order when the folder does not say which token pads.
PAD_CANDIDATES = ("[PAD]", "<pad>", "<|endoftext|>", "</s>", "<|pad|>")


@TOKENIZERS.register("hf")
class HFTokenizer(BackendTokenizer):
    """The tokenizer shipped with a pretrained model (pass the same folder as ``hf-pretrained``'s ``path``).

    Args:
        path: local folder holding ``tokenizer.json`` (or files ``AutoTokenizer`` can convert).
    """

    kind = "hf"
    trainable = False

    def __init__(self, *, path: str | Path | None = None) -> None:
        super().__init__()
        self.path = None if path is None else str(path)
        if path is not None:
            folder = resolve_model_folder(path)
            self.backend_ = _read_folder(folder)
            self.pad_token = _find_pad_token(folder, self.backend_)

    def fit(self, texts: Iterable[str]) -> Self:
        """Nothing to learn: a pretrained vocabulary is kept as it is (``texts`` is not read)."""
        return self

    def _meta(self) -> dict[str, Any]:
        return {**super()._meta(), "source": self.path}

    @classmethod
    def load(cls, folder: str | Path) -> Self:
        """Read a folder written by :meth:`save`."""
        backend, meta = cls._read_backend(folder)
        tokenizer = cls()
        tokenizer.path = meta.get("source")
        tokenizer.backend_ = backend
        tokenizer.pad_token = str(meta.get("pad_token") or _find_pad_token(Path(folder), backend))
        return tokenizer


def _read_folder(folder: Path) -> tokenizers.Tokenizer:
    from tokenizers import Tokenizer as Backend

    if not folder.is_dir():
        raise ArtifactError("no tokenizer folder here", where=str(folder))
    if (folder / TOKENIZER_FILE).is_file():
        try:
            return Backend.from_file(str(folder / TOKENIZER_FILE))
        except Exception as exc:  # the Rust side raises a bare Exception on bad JSON
            raise ArtifactError(f"cannot read {TOKENIZER_FILE}: {exc}", where=str(folder)) from exc
    from transformers import AutoTokenizer

    try:
        converted = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"no {TOKENIZER_FILE} and transformers cannot read a tokenizer here: {exc}",
                            where=str(folder)) from exc
    backend = getattr(converted, "backend_tokenizer", None)
    if backend is None:
        raise ArtifactError(f"no {TOKENIZER_FILE} and only a slow (Python) tokenizer is available",
                            where=str(folder))
    return backend  # type: ignore[no-any-return]


def _find_pad_token(folder: Path, backend: tokenizers.Tokenizer) -> str:
    """The folder's padding token: its tokenizer.json padding, its config files, or a common name."""
    padding = backend.padding
    if padding and padding.get("pad_token") and backend.token_to_id(padding["pad_token"]) is not None:
        return str(padding["pad_token"])
    for name in ("special_tokens_map.json", "tokenizer_config.json"):
        path = folder / name
        if not path.is_file():
            continue
        try:
            token = json.loads(path.read_text("utf-8")).get("pad_token")
        except (json.JSONDecodeError, AttributeError):
            continue
        if isinstance(token, dict):  # {"content": "[PAD]", "lstrip": false, …}
            token = token.get("content")
        if isinstance(token, str) and backend.token_to_id(token) is not None:
            return token
    for token in PAD_CANDIDATES:
        if backend.token_to_id(token) is not None:
            return token
    raise ArtifactError("cannot tell which token pads (no pad_token in the folder and none of "
                        f"{', '.join(PAD_CANDIDATES)} in the vocabulary)", where=str(folder))


__all__ = ["HFTokenizer"]

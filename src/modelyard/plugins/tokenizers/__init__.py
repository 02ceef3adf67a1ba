"""Tokenizers: texts → ``(input_ids, attention_mask)`` int64 ``(B, T)`` for the token models.

Registered in ``TOKENIZERS``: ``bpe`` and ``wordpiece`` (trained with the ``tokenizers``
library), ``char`` (pure Python) and ``hf`` (a pretrained model folder's tokenizer). The
interface is :class:`Tokenizer` in ``base.py``; a saved tokenizer is ``tokenizer.json`` +
``tokenizer_meta.json`` and comes back with :func:`load_tokenizer`. No pickle.
"""

from __future__ import annotations

from modelyard.plugins.tokenizers.base import META_FILE, TOKENIZER_FILE, Tokenizer, load_tokenizer

__all__ = ["META_FILE", "TOKENIZER_FILE", "Tokenizer", "load_tokenizer"]

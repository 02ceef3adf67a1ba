"""The recipe's ``model:`` section."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from modelyard.config.base import Section


class TokenizerConfig(Section):
    """How texts become token ids (text datasets only); fitted on the train split, saved in the model."""

    name: str = Field(default="bpe", description="Registered tokenizer: bpe, wordpiece, char, hf (a model folder's).")
    max_length: int = Field(default=128, ge=2, description="Tokens per sequence (special tokens included).")
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="Tokenizer keyword arguments, e.g. {vocab_size: 8000} (bpe) or {path: ...} (hf; defaults to "
                    "model.params.path).")


class ModelConfig(Section):
    """Which registered model plugin to build, and its parameters."""

    name: str = Field(description="Registered model plugin name (see `yard plugins`), e.g. 'cnn' or 'mlp'.")
    params: dict[str, Any] = Field(
        default_factory=dict, description="Keyword arguments for the model factory (checked when it is built)."
    )
    tokenizer: TokenizerConfig | None = Field(
        default=None, description="Tokenizer for text data (null: bpe for from-scratch models, hf for hf-pretrained).")

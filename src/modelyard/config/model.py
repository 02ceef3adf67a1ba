"""The recipe's ``model:`` section."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from modelyard.config.base import Section


class ModelConfig(Section):
    """Which registered model plugin to build, and its parameters."""

    name: str = Field(description="Registered model plugin name (see `yard plugins`), e.g. 'cnn' or 'mlp'.")
    params: dict[str, Any] = Field(
        default_factory=dict, description="Keyword arguments for the model factory (checked when it is built)."
    )

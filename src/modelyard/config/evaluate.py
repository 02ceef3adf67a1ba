"""The recipe's ``evaluate:`` and ``register:`` sections."""

from __future__ import annotations

from pydantic import Field

from modelyard.config.base import Section


class EvaluateConfig(Section):
    """Stage 4: score the model on the test split."""

    metrics: list[str] = Field(
        default_factory=lambda: ["accuracy", "macro_f1"], description="Metric names (see `yard plugins`)."
    )


class RegisterConfig(Section):
    """Stage 7: register the trained model as NAME@vN."""

    enabled: bool = Field(default=True, description="Register the model at the end of the run.")
    alias: str | None = Field(default="staging", description="Alias to point at the new version (null: none).")

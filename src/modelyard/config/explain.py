"""The recipe's ``explain:`` section (stage 5)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from modelyard.config.base import Section

ExplainMethod = Literal["auto", "integrated-gradients", "saliency", "permutation", "shap"]


class ExplainConfig(Section):
    """Stage 5: attributions for the trained model on the test split."""

    enabled: bool = Field(default=True, description="Run the explanation stage in `yard run`.")
    methods: list[ExplainMethod] = Field(
        default_factory=lambda: list[ExplainMethod](["auto"]),
        description="auto: integrated-gradients for images and text; permutation + shap for tables.")
    examples: int = Field(default=6, ge=1, le=200, description="Test examples given local explanations.")
    steps: int = Field(default=32, ge=4, le=1024, description="Integrated Gradients: interpolation steps.")
    repeats: int = Field(default=5, ge=1, le=100, description="Permutation importance: shuffles per feature.")
    background: int = Field(default=64, ge=4, le=2000, description="SHAP: background rows from the train split.")
    gradient_rows: int = Field(default=32, ge=1, le=10_000,
                               description="Test rows in the global summaries of Integrated Gradients and SHAP.")
    shap_samples: int = Field(default=100, ge=10, le=10_000,
                              description="SHAP: expected-gradient samples per explained row.")
    top_tokens: int = Field(default=20, ge=1, le=500,
                            description="Text: tokens listed in the global mean |attribution| summary.")
    rows: int = Field(default=500, ge=10, le=100_000,
                      description="Test rows used for global summaries (a seeded sample when there are more).")
    seed: int = Field(default=0, description="Seed for sampling rows and shuffles.")

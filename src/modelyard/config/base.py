"""The base of every config section: strict, described, immutable after validation."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """A recipe section: unknown keys are errors; every field carries a description."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

"""The one exception tree of modelyard.

Every error a user can cause derives from :class:`YardError`. The CLI turns any
``YardError`` into one line on stderr and exit code 2; anything else is a bug and
keeps its traceback.
"""

from __future__ import annotations


class YardError(Exception):
    """Base of every error modelyard raises on purpose.

    Args:
        message: what went wrong, naming the file / field / value.
        where: optional location (file path, ``file:line``, field path).
        hint: optional suggestion for the fix.
    """

    code = "yard_error"

    def __init__(self, message: str, *, where: str | None = None, hint: str | None = None) -> None:
        self.message = message
        self.where = where
        self.hint = hint
        super().__init__(self.__str__())

    def __str__(self) -> str:
        text = f"{self.where}: {self.message}" if self.where else self.message
        if self.hint:
            text += f" ({self.hint})"
        return text


class ConfigError(YardError):
    """A recipe, override or option is invalid."""

    code = "config_error"


class DataError(YardError):
    """Input data cannot be read or fails validation."""

    code = "data_error"


class ArtifactError(YardError):
    """An artifact is missing, tampered with, or in a refused format (pickle)."""

    code = "artifact_error"


class StoreError(YardError):
    """The project store cannot be opened, migrated or written."""

    code = "store_error"


class NotFoundError(StoreError):
    """A run, model, version, alias or artifact does not exist."""

    code = "not_found"


class PluginError(ConfigError):
    """An unknown or misbehaving plugin."""

    code = "plugin_error"


class TrainingError(YardError):
    """Training cannot continue (NaN loss, diverged, incompatible resume)."""

    code = "training_error"


class AuthError(YardError):
    """Missing, invalid, revoked or insufficient credentials."""

    code = "auth_error"

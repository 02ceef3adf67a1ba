"""One small plugin registry for every kind of plugin (models, metrics, …).

    MODELS = Registry("model")

    @MODELS.register("mlp")
    def mlp(*, num_features: int, num_outputs: int, hidden: int = 128) -> nn.Module: ...

Unknown names fail with close matches. Third-party packages register through the
entry-point group ``modelyard.<kind>s`` (e.g. ``modelyard.models``).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

from modelyard.core.errors import PluginError

T = TypeVar("T", bound=Callable[..., Any])


class Registry(Generic[T]):
    """A name -> factory mapping with did-you-mean errors.

    Args:
        kind: singular noun used in messages and in the entry-point group name.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._entry_points_loaded = False

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator registering ``factory`` under ``name`` (names are unique)."""

        def decorate(factory: T) -> T:
            if name in self._items and self._items[name] is not factory:
                raise PluginError(f"{self.kind} {name!r} is already registered")
            self._items[name] = factory
            return factory

        return decorate

    def _load_entry_points(self) -> None:
        if self._entry_points_loaded:
            return
        self._entry_points_loaded = True
        for ep in entry_points(group=f"modelyard.{self.kind}s"):
            if ep.name not in self._items:
                self._items[ep.name] = ep.load()

    def get(self, name: str) -> T:
        """Return the factory for ``name``.

        Raises:
            PluginError: unknown name, with close matches when there are any.
        """
        if name not in self._items:
            self._load_entry_points()
        try:
            return self._items[name]
        except KeyError:
            raise PluginError(unknown_name_message(self.kind, name, self.names())) from None

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __len__(self) -> int:
        return len(self._items)


def unknown_name_message(kind: str, name: str, known: list[str]) -> str:
    """``unknown model 'cnnn' (did you mean 'cnn'?)`` or the list of known names."""
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    if close:
        return f"unknown {kind} {name!r} (did you mean {', '.join(repr(c) for c in close)}?)"
    return f"unknown {kind} {name!r} (known: {', '.join(known) or 'none'})"

"""One generic registry that backbones, strategies, datasets and matrices use.

Example:
    >>> from bench.registry import BACKBONES
    >>> sorted(BACKBONES.names())  # doctest: +SKIP
    ['attention_unet', 'scarnet', 'transunet', 'unet']
    >>> BACKBONES.get("attention_unte")  # doctest: +SKIP
    RegistryError: unknown backbone 'attention_unte'; did you mean 'attention_unet'? ...

Built-in entries live in ordinary modules that call ``register`` at import
time. Each registry imports its built-in module the first time it is read, so
importing ``bench.registry`` stays cheap and never pulls in torch.
"""

from __future__ import annotations

import difflib
import importlib
import logging
from collections.abc import Callable, Iterator
from importlib import metadata
from typing import Generic, TypeVar, overload

from bench.errors import ConfigError, RegistryError

__all__ = [
    "Registry",
    "BACKBONES",
    "STRATEGIES",
    "DATASETS",
    "MATRICES",
    "load_plugin",
    "load_entry_point_plugins",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")


class Registry(Generic[T]):
    """A name → object mapping with "did you mean" on unknown names.

    Args:
        kind: singular noun used in messages, e.g. ``"backbone"``.
        builtins: module that registers the built-in entries when imported.
        entry_point_group: package entry-point group that third-party
            packages use to register entries, loaded on first read.
    """

    def __init__(
        self, kind: str, builtins: str | None = None, entry_point_group: str | None = None
    ) -> None:
        self.kind = kind
        self._builtins = builtins
        self._entry_point_group = entry_point_group
        self._entries: dict[str, T] = {}
        self._loaded = False

    @overload
    def register(self, name: str) -> Callable[[T], T]: ...

    @overload
    def register(self, name: str, obj: T) -> T: ...

    def register(self, name: str, obj: T | None = None):
        """Register ``obj`` under ``name``; without ``obj``, return a decorator.

        Raises:
            ConfigError: ``name`` is already registered to a different object.
        """
        if obj is None:
            return lambda target: self.register(name, target)

        existing = self._entries.get(name)
        if existing is not None and existing is not obj:
            raise ConfigError(
                f"{self.kind} {name!r} is already registered ({existing!r}); "
                f"choose another name for {obj!r}"
            )
        self._entries[name] = obj
        logger.debug("registered %s %r", self.kind, name)
        return obj

    def get(self, name: str) -> T:
        """Return the entry called ``name``.

        Raises:
            RegistryError: ``name`` is unknown; the message lists close matches
                and every registered name.
        """
        self._load()
        try:
            return self._entries[name]
        except KeyError:
            raise RegistryError(self._unknown_message(name)) from None

    def names(self) -> list[str]:
        """Return the registered names in registration order."""
        self._load()
        return list(self._entries)

    ls = names

    def items(self) -> Iterator[tuple[str, T]]:
        self._load()
        return iter(list(self._entries.items()))

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._entries

    def __len__(self) -> int:
        self._load()
        return len(self._entries)

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        if self._builtins:
            importlib.import_module(self._builtins)
        if self._entry_point_group:
            _load_entry_points(self._entry_point_group)

    def _unknown_message(self, name: str) -> str:
        known = sorted(self._entries)
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        listing = ", ".join(known) if known else "none"
        return f"unknown {self.kind} {name!r}{hint} (registered: {listing})"


def _load_entry_points(group: str) -> None:
    for entry_point in metadata.entry_points(group=group):
        try:
            entry_point.load()
        except Exception as error:  # a broken plug-in must not break the harness
            logger.warning("could not load plug-in %s from %s: %s", entry_point.name, group, error)


def load_plugin(module: str) -> None:
    """Import ``module`` so that its ``register`` calls run (the CLI's ``--plugin``).

    Raises:
        ConfigError: the module cannot be imported.
    """
    try:
        importlib.import_module(module)
    except ImportError as error:
        raise ConfigError(
            f"cannot import plug-in module {module!r}: {error}; "
            "check that it is installed or on PYTHONPATH"
        ) from None


def load_entry_point_plugins() -> None:
    """Load every installed ``scarbench.backbones`` plug-in."""
    _load_entry_points("scarbench.backbones")


BACKBONES: Registry = Registry("backbone", "bench.models", "scarbench.backbones")
STRATEGIES: Registry = Registry("strategy", "bench.training.strategies")
DATASETS: Registry = Registry("dataset", "bench.data.datasets")
MATRICES: Registry = Registry("matrix", "bench.runs.matrices")

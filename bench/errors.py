"""Exceptions that scarbench raises for bad input and failed operations.

Every message names the file or case, the offending value and what to do next.
The CLI prints a ``ScarbenchError`` as one line and exits with status 2, so
none of these should ever surface as a traceback.
"""

from __future__ import annotations

__all__ = [
    "ScarbenchError",
    "ConfigError",
    "ManifestError",
    "DataError",
    "RegistryError",
    "CheckpointError",
    "RunError",
]


class ScarbenchError(Exception):
    """Base class of every error that scarbench reports to the user."""


class ConfigError(ScarbenchError):
    """An invalid option, preset, hyper-parameter or matrix definition."""


class ManifestError(ScarbenchError):
    """A manifest or dataset descriptor that is missing, malformed or inconsistent."""


class DataError(ScarbenchError):
    """An image or mask file that cannot be read or contains invalid values."""


class RegistryError(ScarbenchError, KeyError):
    """An unknown name looked up in a registry."""

    def __str__(self) -> str:
        # KeyError.__str__ quotes its argument; show the message as written.
        return str(self.args[0]) if self.args else ""


class CheckpointError(ScarbenchError):
    """A checkpoint that belongs to another task or code version, or is corrupt."""


class RunError(ScarbenchError):
    """A run folder that is missing, locked, or belongs to a different run."""

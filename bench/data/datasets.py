"""Built-in datasets, registered into ``bench.registry.DATASETS`` when imported.

Each entry is a zero-argument callable that returns the path of a dataset
descriptor YAML.

Example:
    >>> from bench.registry import DATASETS
    >>> DATASETS.names()  # doctest: +SKIP
"""

from __future__ import annotations

__all__: list[str] = []

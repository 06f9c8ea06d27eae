"""Segmentation backbones, one module per architecture, registered in ``BACKBONES``.

Example:
    >>> import torch
    >>> from bench.models import build_backbone
    >>> model = build_backbone("transunet", "small", image_size=64)
    >>> model(torch.zeros(1, 1, 64, 64)).shape
    torch.Size([1, 1, 64, 64])

Importing this package registers the built-in backbones in the order that
``bench list backbones`` shows them: ``unet``, ``attention_unet``,
``transunet`` and ``scarnet``.
"""

from __future__ import annotations

import importlib

from bench.models.base import (
    BackboneSpec,
    build_backbone,
    count_parameters,
    describe_backbone,
    register_backbone,
)

__all__ = [
    "BackboneSpec",
    "build_backbone",
    "count_parameters",
    "describe_backbone",
    "register_backbone",
    "BUILTIN_MODULES",
]

# Modules whose import registers a built-in backbone, the floor first.
BUILTIN_MODULES = (
    "bench.models.unet",
    "bench.models.attention_unet",
    "bench.models.transunet",
    "bench.models.scarnet",
)

for _module in BUILTIN_MODULES:
    importlib.import_module(_module)

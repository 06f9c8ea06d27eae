"""Backbone specs, the builder that validates their options, and size descriptions.

Example:
    >>> import torch
    >>> from bench.models import build_backbone, describe_backbone
    >>> model = build_backbone("attention_unet", "small", image_size=64)
    >>> model(torch.zeros(2, 1, 64, 64)).shape
    torch.Size([2, 1, 64, 64])
    >>> describe_backbone("unet", "small")["parameters"]  # doctest: +SKIP
    488241

Every backbone maps ``(N, 1, H, W)`` float images to ``(N, 1, H, W)`` scar
logits, with ``H`` and ``W`` multiples of 16 (four halvings of resolution).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from bench.errors import ConfigError
from bench.registry import BACKBONES

__all__ = [
    "BackboneSpec",
    "register_backbone",
    "build_backbone",
    "describe_backbone",
    "SIZE_MULTIPLE",
]

logger = logging.getLogger(__name__)

# Every backbone halves the resolution four times, so H and W must divide by 16.
SIZE_MULTIPLE = 16


@dataclass(frozen=True)
class BackboneSpec:
    """A registered backbone: its presets and the function that builds it.

    Attributes:
        name: registry name, e.g. ``"attention_unet"``.
        description: one line for ``bench list backbones``.
        presets: preset name → keyword arguments of ``builder``. Every backbone
            has ``"small"`` (CPU training) and ``"base"`` (paper scale).
        builder: called as ``builder(image_size=..., **preset, **options)`` and
            returning a module that maps ``(N, 1, H, W)`` to ``(N, 1, H, W)`` logits.
        reference: citation of the architecture.
        options: names of the extra keyword options that ``build_backbone``
            accepts for this backbone, e.g. ``("encoder_weights",)``.
    """

    name: str
    description: str
    presets: dict[str, dict[str, Any]]
    builder: Callable[..., nn.Module]
    reference: str = ""
    options: tuple[str, ...] = field(default=())


def register_backbone(spec: BackboneSpec) -> BackboneSpec:
    """Register ``spec`` in ``BACKBONES`` under ``spec.name`` and return it."""
    return BACKBONES.register(spec.name, spec)


def build_backbone(
    name: str,
    preset: str = "small",
    *,
    image_size: int = 64,
    in_channels: int = 1,
    **options: Any,
) -> nn.Module:
    """Build backbone ``name`` with preset ``preset`` for square ``image_size`` inputs.

    Args:
        name: registered backbone name (see ``bench list backbones``).
        preset: preset of that backbone, ``"small"`` or ``"base"`` for the built-ins.
        image_size: input height and width in pixels, a multiple of 16. Backbones
            with a position embedding size it to this grid.
        in_channels: input channels. Only single-channel LGE slices (1) are supported.
        **options: backbone-specific options, e.g. ``encoder_weights=PATH`` for
            ``scarnet``.

    Returns:
        A module mapping ``(N, 1, H, W)`` float images to ``(N, 1, H, W)`` scar logits.
        It raises ``ConfigError`` when called on input of another shape.

    Raises:
        RegistryError: ``name`` is not registered.
        ConfigError: unknown preset or option, a size that is not a multiple of 16,
            or ``in_channels`` other than 1.
    """
    spec: BackboneSpec = BACKBONES.get(name)
    config = _preset_config(spec, preset)
    _check_image_size(image_size)
    _check_in_channels(in_channels)
    _check_options(spec, options)

    model = spec.builder(image_size=image_size, **config, **options)
    model.register_forward_pre_hook(_check_input_shape)
    logger.debug("built backbone %s/%s for %d px inputs", name, preset, image_size)
    return model


def describe_backbone(name: str, preset: str, image_size: int = 64) -> dict[str, Any]:
    """Count parameters and forward FLOPs of one backbone preset.

    FLOPs come from ``torch.utils.flop_counter.FlopCounterMode`` on one image in
    eval mode. It counts a multiply-add as two FLOPs and covers matrix products
    and convolutions, but not element-wise operations such as normalisation.

    Returns:
        A dict with ``backbone``, ``preset``, ``parameters``, ``image_size`` and
        ``mflops_per_image`` (forward pass, megaFLOPs per image).
    """
    from torch.utils.flop_counter import FlopCounterMode

    model = build_backbone(name, preset, image_size=image_size).eval()
    image = torch.zeros(1, 1, image_size, image_size)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(image)

    return {
        "backbone": name,
        "preset": preset,
        "parameters": count_parameters(model),
        "image_size": image_size,
        "mflops_per_image": counter.get_total_flops() / 1e6,
    }


def count_parameters(model: nn.Module) -> int:
    """Return the number of trainable parameters of ``model``."""
    return sum(parameter.numel() for parameter in model.parameters() if parameter.requires_grad)


def _preset_config(spec: BackboneSpec, preset: str) -> dict[str, Any]:
    if preset not in spec.presets:
        raise ConfigError(
            f"unknown preset {preset!r} for backbone {spec.name!r}. "
            f"Supported presets: {', '.join(spec.presets)}"
        )
    return dict(spec.presets[preset])


def _check_image_size(image_size: int) -> None:
    if not isinstance(image_size, int) or image_size <= 0 or image_size % SIZE_MULTIPLE:
        raise ConfigError(
            f"invalid image_size {image_size!r}. Backbones need a positive multiple of "
            f"{SIZE_MULTIPLE} pixels, e.g. 64 or 128"
        )


def _check_in_channels(in_channels: int) -> None:
    if in_channels != 1:
        raise ConfigError(
            f"invalid in_channels {in_channels!r}. Backbones take single-channel LGE "
            "slices, so in_channels must be 1"
        )


def _check_options(spec: BackboneSpec, options: dict[str, Any]) -> None:
    unknown = sorted(set(options) - set(spec.options))
    if unknown:
        supported = ", ".join(spec.options) if spec.options else "none"
        raise ConfigError(
            f"unknown option(s) {', '.join(unknown)} for backbone {spec.name!r}. "
            f"Supported options: {supported}"
        )


def _check_input_shape(module: nn.Module, inputs: tuple[Any, ...]) -> None:
    image = inputs[0]
    if image.ndim != 4 or image.shape[1] != 1:
        raise ConfigError(
            f"invalid input shape {tuple(image.shape)}. Backbones take (N, 1, H, W) "
            "single-channel images"
        )
    height, width = image.shape[-2:]
    if height % SIZE_MULTIPLE or width % SIZE_MULTIPLE:
        raise ConfigError(
            f"invalid input size {height}x{width}. Height and width must be multiples "
            f"of {SIZE_MULTIPLE} pixels"
        )

from __future__ import annotations

import pytest

from bench.errors import ConfigError, RegistryError
from bench.registry import Registry, load_plugin


def test_register_and_get():
    registry: Registry = Registry("widget")
    registry.register("alpha", 1)

    @registry.register("beta")
    def beta():
        return 2

    assert registry.get("alpha") == 1
    assert registry.get("beta") is beta
    assert registry.names() == ["alpha", "beta"]
    assert "alpha" in registry
    assert len(registry) == 2


def test_unknown_name_suggests_close_match():
    registry: Registry = Registry("backbone")
    registry.register("attention_unet", object())
    registry.register("transunet", object())

    with pytest.raises(RegistryError) as caught:
        registry.get("attention_unte")

    message = str(caught.value)
    assert "unknown backbone 'attention_unte'" in message
    assert "did you mean 'attention_unet'" in message
    assert "transunet" in message


def test_duplicate_registration_rejected():
    registry: Registry = Registry("strategy")
    registry.register("standard", object())

    with pytest.raises(ConfigError, match="already registered"):
        registry.register("standard", object())


def test_plugin_import_error_is_clear():
    with pytest.raises(ConfigError, match="no_such_plugin_module"):
        load_plugin("no_such_plugin_module")

"""Matrices: built-ins, YAML files, command-line overrides and seed lists."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from bench.cli import main
from bench.errors import ConfigError, RegistryError
from bench.registry import MATRICES
from bench.runs.matrices import (
    FULL_EPOCHS,
    STANDARD_BACKBONES,
    load_matrix_yaml,
    parse_seeds,
    resolve_matrix,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0", (0,)), ("0,1,2", (0, 1, 2)), ("0-2", (0, 1, 2)), ("3, 5", (3, 5)), ("0-1,4", (0, 1, 4))],
)
def test_parse_seeds_valid(text, expected):
    assert parse_seeds(text) == expected


@pytest.mark.parametrize("text", ["", "a", "0,,x", "1.5", "-1", "2-0", "0,0", "0,1-2,2"])
def test_parse_seeds_invalid(text):
    with pytest.raises(ConfigError, match="seed"):
        parse_seeds(text)


def test_parse_seeds_from_yaml_types():
    assert parse_seeds([0, 1]) == (0, 1)
    assert parse_seeds(7) == (7,)
    with pytest.raises(ConfigError):
        parse_seeds(True)
    with pytest.raises(ConfigError):
        parse_seeds([0.5])


def test_builtin_matrices_registered():
    assert {"smoke", "emidec-cpu", "full"} <= set(MATRICES.names())
    smoke = MATRICES.get("smoke")
    assert smoke.dataset == "synthetic"
    assert smoke.preset == "small"
    assert smoke.backbones == STANDARD_BACKBONES
    assert smoke.strategies == ("standard", "curriculum")
    assert smoke.seeds == (0,)


def test_full_matrix_is_study_settings():
    full = MATRICES.get("full")
    assert full.preset == "base"
    assert full.seeds == (0, 1, 2)
    assert full.epochs == FULL_EPOCHS == 1000
    assert full.train["learning_rate"] == 1e-4
    assert full.train["w_fg"] == [0.6, 0.75, 0.8]
    assert full.train["stage_batch_sizes"] == [32, 4, 4]


def test_emidec_matrix_needs_dataset():
    matrix = MATRICES.get("emidec-cpu")
    assert matrix.dataset is None
    assert "bench data import emidec" in matrix.dataset_hint
    assert "--scar-only" in matrix.dataset_hint
    assert "bench data difficulty" in matrix.dataset_hint


def test_overrides_replace_fields():
    matrix = resolve_matrix(
        "smoke", backbones="unet", strategies="standard", seeds="1-2", epochs=5, device="cpu"
    )
    assert matrix.backbones == ("unet",)
    assert matrix.strategies == ("standard",)
    assert matrix.seeds == (1, 2)
    assert matrix.epochs == 5
    assert matrix.train["device"] == "cpu"
    assert MATRICES.get("smoke").train == {"learning_rate": 1e-3}


def test_dataset_override_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    relative = resolve_matrix("emidec-cpu", dataset="data/emidec/emidec.yaml")
    registered = resolve_matrix("smoke", dataset="synthetic")

    assert relative.dataset == str(tmp_path / "data" / "emidec" / "emidec.yaml")
    assert registered.dataset == "synthetic"


def test_unknown_matrix_suggests_name():
    with pytest.raises(RegistryError, match="did you mean 'smoke'"):
        resolve_matrix("smok")


def test_invalid_epoch_override():
    with pytest.raises(ConfigError, match="epoch"):
        resolve_matrix("smoke", epochs=0)


def test_yaml_matrix_loads(tmp_path):
    (tmp_path / "data").mkdir()
    path = tmp_path / "mine.yaml"
    path.write_text(
        "name: mine\n"
        "dataset: data/tiny.yaml\n"
        "backbones: [unet, attention_unet]\n"
        "strategies: standard\n"
        "seeds: 0-1\n"
        "epochs: 2\n"
        "test_fraction: 0.25\n"
        "train: {learning_rate: 0.001, checkpoint_every: 1}\n"
    )
    matrix = load_matrix_yaml(path)
    assert matrix.name == "mine"
    assert matrix.dataset == str((tmp_path / "data" / "tiny.yaml").resolve())
    assert matrix.backbones == ("unet", "attention_unet")
    assert matrix.strategies == ("standard",)
    assert matrix.seeds == (0, 1)
    assert matrix.epochs == 2
    assert matrix.test_fraction == 0.25
    assert matrix.train == {"learning_rate": 0.001, "checkpoint_every": 1}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("backbones: [unet]\nstrategies: [standard]\nepoch: 3\n", "unknown key"),
        ("strategies: [standard]\n", "missing required key 'backbones'"),
        ("backbones: [unet]\nstrategies: [standard]\nseeds: 0,a\n", "invalid seed"),
        ("backbones: [unet]\nstrategies: [standard]\ntest_fraction: 1.5\n", "test_fraction"),
        ("backbones: [unet]\nstrategies: [standard]\ntrain: [1]\n", "'train' must be a mapping"),
        ("- unet\n", "must contain a mapping"),
        ("backbones: [unet\n", "not valid YAML"),
    ],
)
def test_yaml_matrix_invalid(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as raised:
        load_matrix_yaml(path)
    assert str(path) in str(raised.value)


def test_yaml_matrix_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        resolve_matrix(str(tmp_path / "absent.yaml"))


def test_list_matrices_command():
    result = CliRunner().invoke(main, ["list", "matrices"])
    assert result.exit_code == 0, result.output
    assert "smoke" in result.output
    assert "emidec-cpu" in result.output
    assert "24 tasks" in result.output

"""Tasks: ids, expansion order, config hashes and validation before anything starts."""

from __future__ import annotations

import pytest

from bench.errors import ConfigError, RegistryError
from bench.runs.matrices import resolve_matrix
from bench.runs.tasks import build_tasks, task_id


def test_task_id_format():
    assert (
        task_id("attention_unet", "small", "curriculum", 0)
        == "attention_unet-small--curriculum--seed0"
    )


def test_build_tasks_order_and_ids():
    matrix = resolve_matrix("smoke", backbones="unet,attention_unet", seeds="0,1")
    tasks = build_tasks(matrix)
    assert [task.task_id for task in tasks] == [
        "unet-small--standard--seed0",
        "unet-small--standard--seed1",
        "unet-small--curriculum--seed0",
        "unet-small--curriculum--seed1",
        "attention_unet-small--standard--seed0",
        "attention_unet-small--standard--seed1",
        "attention_unet-small--curriculum--seed0",
        "attention_unet-small--curriculum--seed1",
    ]
    assert tasks[0].train_config["epochs"] == matrix.epochs
    assert tasks[0].train_config["backbone"] == "unet"


def test_config_hash_follows_hyperparameters():
    base = build_tasks(resolve_matrix("smoke", backbones="unet", strategies="standard"))[0]
    again = build_tasks(resolve_matrix("smoke", backbones="unet", strategies="standard"))[0]
    longer = build_tasks(
        resolve_matrix("smoke", backbones="unet", strategies="standard", epochs=9)
    )[0]
    on_cpu = build_tasks(
        resolve_matrix("smoke", backbones="unet", strategies="standard", device="cpu")
    )[0]
    assert base.config_hash == again.config_hash
    assert longer.task_id == base.task_id
    assert longer.config_hash != base.config_hash
    assert on_cpu.config_hash == base.config_hash


def test_full_matrix_builds_study_configs():
    tasks = build_tasks(resolve_matrix("full"))
    assert len(tasks) == 24
    config = tasks[0].train_config
    assert config["preset"] == "base"
    assert config["epochs"] == 1000
    assert list(config["w_bg"]) == [0.4, 0.25, 0.2]


def test_unknown_backbone_suggests_name():
    with pytest.raises(RegistryError, match="did you mean 'unet'"):
        build_tasks(resolve_matrix("smoke", backbones="unte"))


def test_unknown_strategy_suggests_name():
    with pytest.raises(RegistryError, match="did you mean 'curriculum'"):
        build_tasks(resolve_matrix("smoke", backbones="unet", strategies="curiculum"))


def test_unknown_preset_lists_presets(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text("backbones: [unet]\nstrategies: [standard]\npreset: huge\n")
    with pytest.raises(ConfigError, match="no preset 'huge'"):
        build_tasks(resolve_matrix(str(path)))


def test_unknown_training_option(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text("backbones: [unet]\nstrategies: [standard]\ntrain: {learnig_rate: 0.1}\n")
    with pytest.raises(ConfigError, match="unknown training option 'learnig_rate'"):
        build_tasks(resolve_matrix(str(path)))


def test_training_option_set_by_matrix(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text("backbones: [unet]\nstrategies: [standard]\ntrain: {seed: 3}\n")
    with pytest.raises(ConfigError, match="set per task"):
        build_tasks(resolve_matrix(str(path)))


def test_invalid_training_value(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text("backbones: [unet]\nstrategies: [standard]\ntrain: {learning_rate: -1}\n")
    with pytest.raises(ConfigError, match="learning_rate"):
        build_tasks(resolve_matrix(str(path)))

"""Configs: YAML + flag overrides, and errors that name the bad field."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ConfigDict

from searchprime.config import load_config
from searchprime.errors import ConfigError


class Inner(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_turns: int = 10


class Outer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = "x"
    agent: Inner = Inner()


def test_yaml_then_overrides(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("name: run1\nagent:\n  max_turns: 5\n")
    loaded = load_config(Outer, cfg, {"agent.max_turns": 7, "name": None})
    assert loaded.name == "run1" and loaded.agent.max_turns == 7


def test_unknown_key_is_named(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("agent:\n  max_turn: 5\n")
    with pytest.raises(ConfigError, match=r"c.yaml: agent.max_turn: Extra inputs"):
        load_config(Outer, cfg)


def test_bad_value_is_named(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("agent:\n  max_turns: many\n")
    with pytest.raises(ConfigError, match=r"agent.max_turns"):
        load_config(Outer, cfg)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(Outer, tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a list\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(Outer, bad)

"""`searchprime experiment` options reach the study's config before any stage runs."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from searchprime.cli.main import app
from searchprime.errors import ConfigError

CONFIG = (
    "world: {seed: 1, entities: 300, tasks: 900}\n"
    "teachers: {base_pool: 40, prime_pool: 120}\n"
    "sft: {model: tiny, base_n: 6, epochs: 1}\n"
    "arms: [{name: rand, strategy: random, n: 4}]\n"
    "eval: {samples: 2, samples_models: [base, rand]}\n"
)


def test_samples_models_is_split_on_commas_and_checked_against_the_study(tmp_path: Path) -> None:
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(CONFIG)
    out = tmp_path / "run"
    args = ["experiment", str(cfg), "--out", str(out), "--samples-models", "base,rnd"]
    result = CliRunner().invoke(app, args)
    assert isinstance(result.exception, ConfigError)
    assert "eval.samples_models: 'rnd': no model of this study" in str(result.exception)
    assert "'base'" not in str(result.exception)  # the first name was taken as one model
    assert not out.exists()  # refused before any stage ran

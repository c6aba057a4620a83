"""A study's results travel without its weights (``--carry``): what is packed, how it comes
back, and a study resumed from it on a "fresh machine" (an empty output folder) that trains only
what something still to do needs."""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from searchprime.cli.main import app
from searchprime.experiment import ExperimentConfig, run_experiment
from searchprime.experiment.carry import has_weights, pack, unpack
from searchprime.experiment.provenance import read_stamps, weights_id
from searchprime.report.load import load_run
from tests.experiment.tiny import TINY_RL, TINY_SFT


def _tree(out: Path) -> None:
    files = {
        "experiment.json": "{}\n",
        "stages.jsonl": '{"stage": "world"}\n',
        "report.json": "{}\n",
        "eval/base.jsonl": '{"a": 1}\n{"a": 2}\n',
        "eval/base.entropy.json": "{}\n",
        "eval/base.jsonl.lock": '{"pid": 1}',
        "eval/.base.json.tmp123": "{",
        "sft/base/searchprime_sft.json": "{}\n",
        "sft/base/config.json": "{}\n",
        "sft/base/model.safetensors": "weights",
        "sft/base/checkpoint-2/model.safetensors": "weights",
        "rl/direct/searchprime_rl.json": "{}\n",
        "rl/direct/steps.jsonl": '{"step": 1}\n',
        "rl/direct/model.safetensors": "weights",
        "rl/direct/episodes/step-1.jsonl": "{}\n",
        "rl/tasks.jsonl": "{}\n",
        "world/tasks/dev.jsonl": "{}\n",
    }
    for rel, text in files.items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_text(text)


def test_pack_takes_results_not_weights_and_is_byte_stable(tmp_path):
    out, dest = tmp_path / "out", tmp_path / "carry"
    _tree(out)
    written = pack(out, dest)
    got = sorted(str(p.relative_to(dest)) for p in written)
    assert got == [
        "eval/base.entropy.json.gz",
        "eval/base.jsonl.gz",
        "experiment.json.gz",
        "report.json.gz",
        "rl/direct/searchprime_rl.json.gz",
        "rl/direct/steps.jsonl.gz",
        "sft/base/searchprime_sft.json.gz",
        "stages.jsonl.gz",
    ]
    assert gzip.decompress((dest / "eval/base.jsonl.gz").read_bytes()) == b'{"a": 1}\n{"a": 2}\n'
    # nothing changed: nothing rewritten, and the bytes are those of a second pack elsewhere
    assert pack(out, dest) == []
    pack(out, tmp_path / "again")
    assert (tmp_path / "again/eval/base.jsonl.gz").read_bytes() == (
        dest / "eval/base.jsonl.gz"
    ).read_bytes()
    # a grown file is rewritten, and only it
    with (out / "eval/base.jsonl").open("a") as f:
        f.write('{"a": 3}\n')
    assert pack(out, dest) == [dest / "eval/base.jsonl.gz"]


def test_pack_keeps_whole_lines_of_a_file_being_written(tmp_path):
    out, dest = tmp_path / "out", tmp_path / "carry"
    (out / "eval").mkdir(parents=True)
    (out / "eval/m.jsonl").write_bytes(b'{"a": 1}\n{"a": 2')
    pack(out, dest)
    assert gzip.decompress((dest / "eval/m.jsonl.gz").read_bytes()) == b'{"a": 1}\n'


def test_unpack_restores_missing_and_extended_files_and_keeps_diverged_ones(tmp_path):
    out, dest = tmp_path / "out", tmp_path / "carry"
    _tree(out)
    pack(out, dest)
    fresh = tmp_path / "fresh"
    restored = unpack(dest, fresh)
    assert len(restored) == 8
    assert (fresh / "eval/base.jsonl").read_text() == '{"a": 1}\n{"a": 2}\n'
    assert not (fresh / "sft/base/model.safetensors").exists()
    assert not has_weights(fresh / "sft/base") and has_weights(out / "sft/base")
    # an older copy of an append-only file is extended; a file that went its own way stays
    (fresh / "eval/base.jsonl").write_text('{"a": 1}\n')
    (fresh / "report.json").write_text('{"mine": true}\n')
    assert unpack(dest, fresh) == [fresh / "eval/base.jsonl"]
    assert (fresh / "eval/base.jsonl").read_text() == '{"a": 1}\n{"a": 2}\n'
    assert json.loads((fresh / "report.json").read_text()) == {"mine": True}
    assert unpack(tmp_path / "nothing-here", fresh) == []


def test_a_damaged_carried_file_is_named(tmp_path):
    dest = tmp_path / "carry"
    (dest / "eval").mkdir(parents=True)
    (dest / "eval/m.jsonl.gz").write_bytes(b"not gzip")
    with pytest.raises(ValueError, match=r"eval/m\.jsonl\.gz: not a readable gzip file"):
        unpack(dest, tmp_path / "out")


TINY = {
    "name": "carried",
    "world": {"seed": 2, "entities": 300, "tasks": 900},
    "teachers": {"base_pool": 40, "prime_pool": 20},
    "sft": TINY_SFT,
    "arms": [],
    "prompt_arms": [{"name": "handbook", "model": "base", "prompt": "handbook"}],
    "eval": {
        "dev_n": 2,
        "max_turns": 2,
        "max_batch": 2,
        "max_tokens": 16,
        "samples": 2,
        "samples_tasks": 1,
        "samples_models": ["base"],
    },
    "rl": {
        **TINY_RL,
        "runs": [
            {"name": "direct-rl", "start_from": "base"},
            {"name": "prompted-rl", "start_from": "base", "prompt": "handbook"},
        ],
    },
}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _ledger(carry: Path) -> set[tuple[str, str]]:
    text = gzip.decompress((carry / "stages.jsonl.gz").read_bytes()).decode()
    return {(e["stage"], e["event"]) for e in map(json.loads, text.splitlines())}


def _ems(report: dict) -> dict[str, float]:
    return {name: row["em"] for name, row in report["arms"].items()}


@pytest.mark.slow
def test_a_carried_study_goes_on_elsewhere_training_only_what_it_needs(tmp_path):
    cfg = ExperimentConfig.model_validate({**TINY, "only": ["direct-rl"]})
    carry = tmp_path / "carry"
    first = run_experiment(cfg, tmp_path / "machine-1", log=lambda _m: None, carry=carry)
    base_weights = _sha(tmp_path / "machine-1/sft/base/model.safetensors")
    assert not list(carry.rglob("*.safetensors"))

    # a fresh machine with the carried folder only (through the CLI): the report comes back
    # whole, no model is trained (nothing still to do needs one), the ledger's history stays
    yaml = tmp_path / "study.yaml"
    yaml.write_text(json.dumps(TINY))
    args = ["experiment", str(yaml), "--out", str(tmp_path / "machine-2"), "--carry", str(carry)]
    shown = CliRunner().invoke(app, [*args, "--only", "direct-rl"], terminal_width=200)
    assert shown.exit_code == 0, shown.output
    assert "base: evaluated; nothing still to do needs its weights" in shown.output
    again = json.loads((tmp_path / "machine-2/report.json").read_text())
    assert _ems(again) == _ems(first)
    assert again["arms"]["base"]["pass_at_k"] == first["arms"]["base"]["pass_at_k"]
    assert again["arms"]["direct-rl"]["entropy"] == first["arms"]["direct-rl"]["entropy"]
    assert again["arms"]["direct-rl"]["rl"] == first["arms"]["direct-rl"]["rl"]
    assert not (tmp_path / "machine-2/sft/base/model.safetensors").exists()
    assert not (tmp_path / "machine-2/rl/direct-rl/model.safetensors").exists()
    assert ("rl direct-rl", "done") in _ledger(carry)

    # the rest of the study on a third machine: base is trained again for the handbook arm and
    # the RL run that start from it (the same weights: the SFT is seeded), direct-rl is not
    logs: list[str] = []
    cfg3 = ExperimentConfig.model_validate(TINY)
    third = run_experiment(cfg3, tmp_path / "machine-3", log=logs.append, carry=carry)
    assert any(
        "base: evaluated, but its weights are not here; training it again" in m for m in logs
    )
    assert _sha(tmp_path / "machine-3/sft/base/model.safetensors") == base_weights
    assert has_weights(tmp_path / "machine-3/rl/prompted-rl")
    assert not (tmp_path / "machine-3/rl/direct-rl/model.safetensors").exists()
    assert _ems(third)["direct-rl"] == _ems(first)["direct-rl"]
    assert {"handbook", "prompted-rl"} <= set(third["arms"])
    assert (carry / "eval/prompted-rl.labelled.jsonl.gz").is_file()
    ledger = _ledger(carry)
    assert {("rl direct-rl", "done"), ("rl prompted-rl", "done")} <= ledger
    # the retraining is work of its own in the ledger, not a revisit of the first SFT
    assert ("sft base again", "done") in ledger and ("rl direct-rl again", "start") not in ledger


@pytest.mark.slow
def test_an_unfinished_eval_is_finished_only_by_the_weights_that_began_it(tmp_path):
    """Rollouts of one evaluation come from one set of weights: a model trained again goes on
    with its unfinished evaluation when it came out the same bits (the SFT is seeded), and
    starts it afresh when not."""
    cfg = ExperimentConfig.model_validate({**TINY, "only": ["direct-rl", "handbook"], "eval": {
        **TINY["eval"], "samples": 1}})  # fmt: skip
    carry = tmp_path / "carry"
    run_experiment(cfg, tmp_path / "machine-1", log=lambda _m: None, carry=carry)
    ev = tmp_path / "machine-1/eval"
    # each evaluation file is stamped with the weights that wrote it
    base_id = weights_id(tmp_path / "machine-1/sft/base")
    assert base_id is not None and read_stamps(ev, "base") == {
        "rollouts": base_id,
        "entropy": base_id,
    }
    assert read_stamps(ev, "handbook") == read_stamps(ev, "base")  # base under another prompt
    rl_id = weights_id(tmp_path / "machine-1/rl/direct-rl")
    assert rl_id is not None
    assert read_stamps(ev, "direct-rl") == {"rollouts": rl_id, "entropy": rl_id}
    # as if base's and direct-rl's first trainings had other bits than the next ones will have
    other = {"rollouts": "feedfacefeedface", "entropy": "feedfacefeedface"}
    for name in ("base", "direct-rl"):
        (carry / f"eval/{name}.weights.json.gz").write_bytes(
            gzip.compress(json.dumps(other).encode(), mtime=0)
        )
    # the machine vanished halfway through direct-rl's and handbook's dev rollouts
    first = {}
    for name in ("direct-rl", "handbook"):
        first[name] = (ev / f"{name}.jsonl").read_text().splitlines()[0] + "\n"
        for kind in ("labelled.jsonl", "grounded.jsonl", "entropy.jsonl", "entropy.json"):
            (carry / f"eval/{name}.{kind}.gz").unlink(missing_ok=True)
        (carry / f"eval/{name}.jsonl.gz").write_bytes(gzip.compress(first[name].encode(), mtime=0))

    logs: list[str] = []
    # base's pass@k is asked for now: it comes from base trained again, and the report says so
    cfg2 = cfg.model_copy(update={"eval": cfg.eval.model_copy(update={"samples": 2})})
    again = run_experiment(cfg2, tmp_path / "machine-2", log=logs.append, carry=carry)
    out = tmp_path / "machine-2"
    assert weights_id(out / "sft/base") == base_id
    # handbook's stamp names base's weights as they are again: its file goes on
    assert (out / "eval/handbook.jsonl").read_text().startswith(first["handbook"])
    assert len((out / "eval/handbook.jsonl").read_text().splitlines()) == 2
    assert not (out / "eval/stale/handbook.jsonl").exists()
    # direct-rl's stamp names other weights: its file starts afresh
    assert (out / "eval/stale/direct-rl.jsonl").read_text() == first["direct-rl"]
    assert any("set aside direct-rl.jsonl" in m for m in logs)
    assert read_stamps(out / "eval", "direct-rl") == {
        "rollouts": weights_id(out / "rl/direct-rl"),
        "entropy": weights_id(out / "rl/direct-rl"),
    }
    assert again["arms"]["base"]["weights"] == {**other, "samples": base_id}
    assert any("note: base's samples came from another training of its recipe" in m for m in logs)
    notes = load_run(out, trajectories=False).notes
    assert any(n.startswith("base: its samples came from another training") for n in notes)
    assert not any(n.startswith(("direct-rl:", "handbook:")) for n in notes)
    assert has_weights(out / "rl/direct-rl") and has_weights(out / "sft/base")
    # the evaluation ran whole on the new weights; base's finished one stayed as carried
    assert len((out / "eval/direct-rl.jsonl").read_text().splitlines()) == 2
    assert again["arms"]["direct-rl"]["n"] == 2
    assert not (out / "eval/stale/base.jsonl").exists()
    assert (
        gzip.decompress((carry / "eval/direct-rl.jsonl.gz").read_bytes())
        == (out / "eval/direct-rl.jsonl").read_bytes()
    )

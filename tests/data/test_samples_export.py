"""Sample shapes (what is prompt, what is trained) and the exported files."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
from sp_trajs import make_traj, population
from typer.testing import CliRunner

from searchprime.data.export import export_samples
from searchprime.data.prime import prime
from searchprime.data.samples import build_samples, trajectory_samples, turn_samples
from searchprime.data.select import SelectionConfig
from searchprime.errors import RecordError
from searchprime.records import Task, write_jsonl

STEPS = [
    ("search", "a"),
    ("search", "b"),
    ("invalid", "x"),
    ("search", "c"),
    ("summary", "so far c"),
    ("search", "d"),
    ("answer", "Paris"),
]


def test_turn_samples_are_context_to_output() -> None:
    t = make_traj("t1", steps=STEPS)
    samples = turn_samples(t)
    assert [s.turns for s in samples] == [[0], [1], [3], [4], [5], [6]]  # invalid turn 2 skipped
    for s in samples:
        turn = t.turns[s.turns[0]]
        assert s.prompt == [t.messages[i] for i in turn.context]
        assert [m.role for m in s.completion] == ["assistant"]
        assert s.completion[0].content == turn.output
    # the invalid output stays visible as context of the next turn
    assert any(m.content.startswith("I am not sure") for m in samples[2].prompt)
    # after the summary the context restarts
    assert len(samples[4].prompt) == 2


def test_trajectory_segments() -> None:
    t = make_traj("t1", steps=STEPS)
    segs = trajectory_samples(t)
    # [0,1] | invalid | [3,4] (summary output closes nothing; next context restarts) | [5,6]
    assert [s.turns for s in segs] == [[0, 1], [3, 4], [5, 6]]
    first = segs[0]
    assert [m.role for m in first.prompt] == ["system", "user"]
    assert [m.role for m in first.completion] == ["assistant", "user", "assistant"]
    assert first.completion[1].content.startswith("<information>")
    assert first.completion[-1].content == t.turns[1].output
    for s in segs:
        assert s.completion[-1].role == "assistant"
        outputs = [t.turns[i].output for i in s.turns]
        assert [m.content for m in s.completion if m.role == "assistant"] == outputs
    assert all("I am not sure" not in m.content for s in segs for m in s.completion)


def test_bad_context_is_a_record_error() -> None:
    t = make_traj("t9")
    t.turns[1].context.append(99)
    with pytest.raises(RecordError, match=r"trajectory t9#0: turns\[1\].context: index 99"):
        build_samples([t], "turn")


def test_trl_and_llamafactory_exports(tmp_path) -> None:
    trajs = [make_traj("t1", steps=STEPS), make_traj("t2")]
    samples = build_samples(trajs, "turn")
    facts = export_samples(
        "trl", tmp_path / "trl", samples=samples, trajectories=trajs, shape="turn"
    )
    rows = [json.loads(x) for x in (tmp_path / "trl" / "train.jsonl").read_text().splitlines()]
    assert len(rows) == facts["samples"] == len(samples) == 8
    assert set(rows[0]) == {"prompt", "completion"}
    assert rows[0]["completion"] == [{"role": "assistant", "content": trajs[0].turns[0].output}]
    assert facts["files"] == ["train.jsonl", "samples.jsonl", "sft_config.yaml"]
    ids = (tmp_path / "trl" / "samples.jsonl").read_text().splitlines()
    assert json.loads(ids[0])["id"] == "t1#0#t0"

    for style in ("alpaca", "sharegpt"):
        d = tmp_path / style
        facts = export_samples(
            f"llamafactory-{style}", d, samples=samples, trajectories=trajs, shape="turn", name="sp"
        )
        info = json.loads((d / "dataset_info.json").read_text())
        data = json.loads((d / "data.json").read_text())
        assert info["sp"]["file_name"] == "data.json" and info["sp"]["formatting"] == style
        assert facts["llamafactory_mask_history"] is True
        # the summary turn's sample restarts the chat; all 8 alternate properly
        assert len(data) == 8
        if style == "alpaca":
            row = data[1]
            assert set(row) == {"instruction", "input", "output", "system", "history"}
            assert row["output"] == trajs[0].turns[1].output
            assert row["history"][0][1] == trajs[0].turns[0].output
            assert row["system"].startswith("You are a search agent")
        else:
            conv = data[1]["conversations"]
            assert [c["from"] for c in conv] == ["human", "gpt", "human", "gpt"]
            assert conv[-1]["value"] == trajs[0].turns[1].output


def test_llamafactory_trajectory_shape_drops_unmaskable(tmp_path) -> None:
    trajs = [make_traj("t1", steps=STEPS)]
    samples = build_samples(trajs, "trajectory")
    facts = export_samples(
        "llamafactory-sharegpt", tmp_path, samples=samples, trajectories=trajs, shape="trajectory"
    )
    # segment [3,4] starts after the invalid turn: its prompt holds assistant messages
    assert facts["samples"] == 2 and facts["dropped_unmaskable"] == 1
    data = json.loads((tmp_path / "data.json").read_text())
    assert [c["from"] for c in data[0]["conversations"]] == ["human", "gpt", "human", "gpt"]


def test_verl_parquet(tmp_path) -> None:
    trajs = [make_traj("t1"), make_traj("t1", attempt=1), make_traj("t2", answer="Rome")]
    facts = export_samples("verl", tmp_path, samples=[], trajectories=trajs, shape="turn")
    table = pq.read_table(tmp_path / "train.parquet")
    assert facts["rows"] == table.num_rows == 2
    rows = table.to_pylist()
    # the layout of `train rl --export-verl`'s rows: the bundle's agent loop takes these too
    from searchprime.rl.verl.rows import AGENT_NAME, task_rows

    assert set(rows[0]) == {"data_source", "prompt", "ability", "reward_model", "extra_info"} | {
        "agent_name"
    }
    ours = task_rows([Task(id="t2", question="q?", answers=["Rome"])], split="train")[0]
    assert set(rows[1]) == set(ours) and set(rows[1]["extra_info"]) == set(ours["extra_info"])
    assert rows[1]["agent_name"] == AGENT_NAME and rows[1]["extra_info"]["answers"] == ["Rome"]
    assert rows[1]["reward_model"] == {"style": "rule", "ground_truth": {"target": ["Rome"]}}
    assert [m["role"] for m in rows[0]["prompt"]] == ["system", "user"]
    assert rows[1]["extra_info"]["task_id"] == "t2" and rows[1]["extra_info"]["index"] == 1


def test_prime_writes_card(tmp_path) -> None:
    path = tmp_path / "trajs.jsonl"
    write_jsonl(path, population())
    card = prime([path], SelectionConfig(strategy="behavior", n=6, seed=4), tmp_path / "out")
    saved = json.loads((tmp_path / "out" / "selection.json").read_text())
    assert saved["counts"]["selected"] == 6 and saved["extra"]["samples"] == 18
    assert card.extra["shape"] == "turn"


def test_cli_prime(tmp_path) -> None:
    from searchprime.cli.main import app

    path = tmp_path / "trajs.jsonl"
    write_jsonl(path, population())
    out = tmp_path / "arm"
    args = ["prime", str(path), "--strategy", "behavior-incorrect", "--n", "5", "--seed", "1"]
    args += ["--shape", "trajectory", "--format", "trl", "--out", str(out)]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "funnel: read 40" in res.output
    lines = (out / "train.jsonl").read_text().splitlines()
    assert len(lines) == 5 * 3  # 5 trajectories of 3 turns, one row per turn
    assert all([m["role"] for m in json.loads(x)["completion"]] == ["assistant"] for x in lines)
    last = json.loads(lines[2])["prompt"]
    assert [m["role"] for m in last] == ["system", "user", "assistant", "user", "assistant", "user"]
    res = CliRunner().invoke(app, args[:-2] + ["--n", "50", "--out", str(out)])
    assert res.exit_code != 0 and "fewer than n=50" in str(res.exception)

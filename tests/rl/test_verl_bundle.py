"""The verl bundle without verl: files, parquet rows of both layouts, and a reward that scores
every data source exactly as ``searchprime score`` does (loaded by path, as verl loads it)."""

from __future__ import annotations

import importlib.util
import json
import random
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from searchprime.agent import prompts
from searchprime.agent.actions import parse_action
from searchprime.cli.main import app
from searchprime.eval.metrics import split_golds
from searchprime.eval.score import score_one
from searchprime.records import Trajectory
from searchprime.rl.verl import BUNDLE_FILES, final_answer
from searchprime.tasks import load_tasks


def _export(shared_data: Path, out: Path, *extra: str) -> None:
    tasks = shared_data / "mhqa_sample.json"
    res = CliRunner().invoke(
        app, ["train", "rl", "--export-verl", str(out), "--tasks", str(tasks), *extra]
    )
    assert res.exit_code == 0, res.output


def _reward_module(path: Path):
    spec = importlib.util.spec_from_file_location("bundle_reward", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bundle_rows_keep_sources_and_the_loops_prompt(shared_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "b"
    _export(shared_data, out, "--index", str(tmp_path / "idx"), "--max-turns", "5")
    assert sorted(p.name for p in out.iterdir()) == sorted(BUNDLE_FILES)
    tasks = {t.id: t for t in load_tasks(shared_data / "mhqa_sample.json")}
    train = pq.read_table(out / "train.parquet").to_pylist()
    val = pq.read_table(out / "val.parquet").to_pylist()
    assert len(train) + len(val) == len(tasks) and len(val) == len(tasks) // 10
    assert {r["extra_info"]["task_id"] for r in train + val} == set(tasks)
    system = prompts.system_prompt("explicit", "full")
    for row in train + val:
        task = tasks[row["extra_info"]["task_id"]]
        assert row["data_source"] == task.data_source  # the original source, not a verl one
        assert row["prompt"] == [
            {"role": "system", "content": system},
            {"role": "user", "content": prompts.first_user_message(task.question)},
        ]
        assert row["reward_model"] == {"style": "rule", "ground_truth": {"target": task.answers}}
        assert row["agent_name"] == "searchprime_agent"
    assert {r["extra_info"]["split"] for r in val} == {"val"}
    card = json.loads((out / "bundle.json").read_text())
    assert card["metric"] == "em" and sum(card["data_sources"].values()) == len(tasks)
    loop = (out / "agent_loop.yaml").read_text()
    assert "max_turns: 5" in loop and "max_tokens: 1024" in loop  # flag, then the paper's
    server = (out / "search_server.yaml").read_text()
    assert f"index: {(tmp_path / 'idx').resolve()}" in server
    script = (out / "run_grpo.sh").read_text()
    for setting in ("rollout.n=8", "train_batch_size=32", "optim.lr=1e-6", "kl_loss_coef=0.001",
                    "kl_loss_type=low_var_kl", "clip_ratio=0.2", "entropy_coeff=0.001",
                    "loss_agg_mode=token-mean", "rollout.temperature=1.0",
                    "val_kwargs.temperature=0.4"):  # fmt: skip
        assert setting in script


def test_bp_layout_is_the_papers(shared_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "bp"
    _export(shared_data, out, "--layout", "bp", "--reward", "f1")
    raw = {str(r["id"]): r for r in json.loads((shared_data / "mhqa_sample.json").read_text())}
    rows = pq.read_table(out / "train.parquet").to_pylist()
    for row in rows:
        src = raw[row["extra_info"]["id"]]
        assert row["data_source"] == "webwalker" and row["ability"] == "agent"
        assert row["prompt"] == [{"role": "user", "content": src["question"]}]
        assert row["extra_info"]["answer"] == src["answer"]
        assert row["reward_model"]["ground_truth"] == src["answer"]
    reward = _reward_module(out / "reward.py")
    assert reward.METRIC == "f1"
    row = rows[0]
    gold = split_golds(row["extra_info"]["answer"])[0]
    got = reward.compute_score(
        "webwalker", f"<answer>{gold} indeed</answer>", None, row["extra_info"]
    )
    assert 0 < got["score"] == got["f1"] < 1 and got["em"] == 0.0


def test_layout_without_export_is_refused() -> None:
    from searchprime.errors import ConfigError

    res = CliRunner().invoke(app, ["train", "rl", "--layout", "bp"])
    assert isinstance(res.exception, ConfigError) and "--export-verl" in str(res.exception)


# ----------------------------------------------------------------------------- the reward


def _variants(gold: str, rng: random.Random) -> list[str]:
    words = gold.split()
    return [
        gold,
        gold.upper(),
        f"The {gold}.",
        f"  {gold}  !",
        f"{gold} and more",
        " ".join(reversed(words)),
        words[0] if words else "x",
        f"a {gold.lower()}",
        "".join(rng.sample(gold, len(gold))),
        "unknown",
    ]


_OBS = prompts.information_message("Doc 1 (Title: X) text with <answer> tags </answer> inside")
_REMIND = prompts.with_reminders(_OBS, [prompts.turns_left_reminder(1)])


def _responses(answer: str) -> list[tuple[list[str], str]]:
    """(turn texts, decoded response) pairs: one turn, several turns, invalid last turns."""
    glue = "\nuser\n{obs}\nassistant\n"
    shapes = [
        [f"<think>I know it.</think>\n<answer> {answer} </answer>"],
        [f"<answer>{answer}</answer>"],
        [f"Free thinking first. <answer>{answer}</answer>"],
        [
            "<think>look</think>\n<search> q </search>",
            f"<think>ok</think>\n<answer>{answer}</answer>",
        ],
        ["<search> q </search>", "<search> r </search>", f"<answer>{answer}</answer>"],
        ["<search> q </search>", f"<search> x<answer>{answer}</answer>"],  # unbalanced: invalid
        ["<search> q </search>", f"<think>a</think><think>b</think><answer>{answer}</answer>"],
        ["<search> q </search>", "<search> r </search>"],  # out of turns, no answer
        [f"<answer>{answer}</answer>", "<answer></answer>"],  # empty answer: invalid
    ]
    out = []
    for turns in shapes:
        text = turns[0]
        for i, turn in enumerate(turns[1:]):
            text += glue.format(obs=_REMIND if i % 2 else _OBS) + turn
        out.append((turns, text + "<|im_end|>"))
    return out


def test_compute_score_equals_score_one_on_many_answers(shared_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "b"
    _export(shared_data, out)
    reward = _reward_module(out / "reward.py")
    rows = pq.read_table(out / "train.parquet").to_pylist()
    rng = random.Random(0)
    checked = 0
    for row in rows:
        golds = row["reward_model"]["ground_truth"]["target"]
        for answer in _variants(golds[0], rng) + _variants(golds[-1], rng)[:3]:
            for turns, response in _responses(answer):
                action = parse_action(turns[-1])  # what the agent loop took as the answer
                loop_answer = action.content if action.kind == "answer" else None
                traj = Trajectory(task_id="t", question="q", answers=golds,
                                  termination="answer", final_answer=loop_answer)  # fmt: skip
                want = score_one(traj, split_golds(golds))
                assert final_answer(response) == loop_answer, response
                got = reward.compute_score(row["data_source"], response,
                                           row["reward_model"]["ground_truth"],
                                           dict(row["extra_info"]))  # fmt: skip
                assert (got["em"], got["cover_em"], got["f1"]) == (
                    want.em,
                    want.cover_em,
                    want.f1,
                ), response
                assert got["score"] == got["em"]
                checked += 1
    assert checked > 5000


@pytest.mark.parametrize(
    "gt, extra, want",
    [
        ({"target": ["Paris", "paris city"]}, None, ["Paris", "paris city"]),
        ("Paris<|answer_split|>Lutetia", None, ["Paris", "Lutetia"]),
        (["Paris"], None, ["Paris"]),
        (None, {"answer": "a<|answer_split|>b"}, ["a", "b"]),
        (None, {"answers": ["x"]}, ["x"]),
        (2, None, ["2"]),
    ],
)
def test_every_ground_truth_shape(gt, extra, want) -> None:
    from searchprime.rl.verl import golds_of

    assert golds_of(gt, extra) == want


def test_the_loops_answer_wins_over_the_text() -> None:
    from searchprime.rl.verl import compute_score
    from searchprime.rl.verl.reward import ANSWER_KEY

    gt = {"target": ["1897"]}
    assert compute_score("sandbox", "<answer>1897</answer>", gt)["em"] == 1.0
    assert compute_score("sandbox", "<answer>1897</answer>", gt, {ANSWER_KEY: None})["em"] == 0.0
    assert compute_score("tq", "", gt, {ANSWER_KEY: "1897"})["em"] == 1.0
    with pytest.raises(ValueError, match="metric"):
        compute_score("tq", "", gt, metric="bleu")


def test_prime_format_verl_rows_work_with_the_bundle() -> None:
    """Rows of ``prime --format verl`` (another writer) feed the same loop and reward."""
    from searchprime.data.export import verl_rows
    from searchprime.records import Action, Message, Turn
    from searchprime.rl.verl import compute_score
    from searchprime.rl.verl.episode import task_from_row

    msgs = [Message(role="system", content="rules"),
            Message(role="user", content="Question: Who wrote it?\n"),
            Message(role="assistant", content="<answer>Ann Lee</answer>")]  # fmt: skip
    turn = Turn(index=0, context=[0, 1], output=msgs[2].content,
                action=Action(kind="answer", content="Ann Lee"))  # fmt: skip
    traj = Trajectory(task_id="x1", question="Who wrote it?", answers=["Ann Lee", "A. Lee"],
                      data_source="tq", messages=msgs, turns=[turn], termination="answer",
                      final_answer="Ann Lee")  # fmt: skip
    row = verl_rows([traj])[0]
    task = task_from_row(row)
    assert (task.id, task.question, task.answers) == ("x1", "Who wrote it?", ["Ann Lee", "A. Lee"])
    got = compute_score(
        row["data_source"], "<answer>a. lee</answer>", row["reward_model"]["ground_truth"]
    )
    assert got["em"] == 1.0

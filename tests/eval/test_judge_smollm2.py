"""The LLM judge end to end against the real SmolLM2-135M over the OpenAI API on 127.0.0.1.

A 135M model is a poor judge: this checks plumbing (HTTP, JSON parsing or unknown),
caching (a rerun makes zero calls) and that unparseable output is recorded as unknown.
"""

from __future__ import annotations

import pytest
from tests.conftest import json_values

from searchprime.eval.judge import LLMJudge
from searchprime.eval.score import score_file
from searchprime.records import Trajectory, read_jsonl, write_jsonl

pytestmark = pytest.mark.slow


def _traj(tid: str, answer: str, golds: list[str]) -> Trajectory:
    return Trajectory(
        task_id=tid,
        question="Who wrote the play Hamlet?",
        answers=golds,
        final_answer=answer,
        termination="answer",
        data_source="demo",
    )


def _stated_verdict(reply: str) -> bool | None | str:
    """What the reply says, read here: True/False when a JSON object states "correct" or
    "incorrect"; None when it never names a judgement; "unclear" otherwise."""
    if "judgement" not in reply and "judgment" not in reply:
        return None
    for value in json_values(reply):
        if isinstance(value, dict) and value.get("judgement") in ("correct", "incorrect"):
            return value["judgement"] == "correct"
    return "unclear"


def test_judge_and_score_against_smollm2(tmp_path, smol_llm, counting) -> None:
    src = tmp_path / "t.jsonl"
    cases = {"1": ("Shakespeare", "William Shakespeare"), "2": ("Goethe", "Shakespeare")}
    write_jsonl(src, [_traj(tid, pred, [gold]) for tid, (pred, gold) in cases.items()])
    llm = counting(smol_llm)
    cache = tmp_path / "judge.sqlite"
    judge = LLMJudge(llm, cache=cache, max_tokens=32, retries=0)
    report = score_file(src, tmp_path / "s.jsonl", judge=judge)
    assert llm.calls == 2 and report.judge_calls == llm.calls
    # each trajectory was put to the judge once, with its own answer and golds
    said = {
        tid: [r for p, r in llm.exchanges if f"Gold answers: {g}\nPredicted answer: {a}\n" in p]
        for tid, (a, g) in cases.items()
    }
    assert all(len(replies) == 1 for replies in said.values()), said
    got = [t.scores for t in read_jsonl(tmp_path / "s.jsonl", Trajectory)]
    for tid, s in zip(cases, got, strict=True):
        reply = said[tid][0]
        stated = _stated_verdict(reply)
        if stated is None or (stated == "unclear" and s.judge is None):
            # unparseable is unknown, never "incorrect", with the raw reply kept for inspection
            assert s.judge is None
            assert s.judge_rationale == f"unparseable judge reply: {reply[:200]!r}"
        elif stated != "unclear":
            assert s.judge is stated, (reply, s)
    assert report.overall.judge_unknown == sum(1 for s in got if s.judge is None)
    assert report.overall.em == 0.0 and report.overall.n == 2

    calls = llm.calls
    again = LLMJudge(llm, cache=cache, max_tokens=32, retries=0)
    report2 = score_file(src, tmp_path / "s2.jsonl", judge=again)
    assert llm.calls == calls and report2.judge_calls == 0 and report2.judge_cache_hits == calls
    assert [t.scores for t in read_jsonl(tmp_path / "s2.jsonl", Trajectory)] == got


def test_score_cli_with_judge_url(tmp_path, smol_llm) -> None:
    from typer.testing import CliRunner

    from searchprime.cli.main import app

    src = tmp_path / "t.jsonl"
    write_jsonl(src, [_traj("1", "Shakespeare", ["William Shakespeare"])])
    args = ["score", str(src), "--out", str(tmp_path / "s.jsonl"), "--judge-url", smol_llm.base_url]
    args += ["--judge-max-tokens", "24", "--judge-retries", "0"]
    runner = CliRunner(env={"COLUMNS": "200"})
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "judge (searchprime prompts) calls 1 (cache hits 0)" in res.output
    res = runner.invoke(app, args)  # rerun: the default cache next to --out answers
    assert res.exit_code == 0 and "judge (searchprime prompts) calls 0 (cache hits 1)" in res.output
    assert (tmp_path / "s.jsonl.judge-cache.sqlite").exists()

"""The LLM judge end to end against the real SmolLM2-135M over the OpenAI API on 127.0.0.1.

A 135M model is a poor judge: this checks plumbing (HTTP, JSON parsing or unknown),
caching (a rerun makes zero calls) and that unparseable output is recorded as unknown.
"""

from __future__ import annotations

import pytest

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


def test_judge_and_score_against_smollm2(tmp_path, smol_llm, counting) -> None:
    src = tmp_path / "t.jsonl"
    write_jsonl(
        src,
        [_traj("1", "Shakespeare", ["William Shakespeare"]), _traj("2", "Goethe", ["Shakespeare"])],
    )
    llm = counting(smol_llm)
    cache = tmp_path / "judge.sqlite"
    judge = LLMJudge(llm, cache=cache, max_tokens=32, retries=0)
    report = score_file(src, tmp_path / "s.jsonl", judge=judge)
    assert llm.calls == 2 and report.judge_calls == llm.calls
    got = [t.scores for t in read_jsonl(tmp_path / "s.jsonl", Trajectory)]
    for s in got:
        assert s.judge in (True, False, None)
        if s.judge is None:  # unparseable is unknown, with the raw reply kept for inspection
            assert s.judge_rationale.startswith("unparseable judge reply")
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
    assert "judge calls 1 (cache hits 0)" in res.output
    res = runner.invoke(app, args)  # rerun: the default cache next to --out answers
    assert res.exit_code == 0 and "judge calls 0 (cache hits 1)" in res.output
    assert (tmp_path / "s.jsonl.judge-cache.sqlite").exists()

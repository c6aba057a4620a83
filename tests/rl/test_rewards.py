"""Rewards are pure functions of a scored trajectory; the judge and prefilter feed them."""

from __future__ import annotations

import asyncio
import json

import pytest

from searchprime.agent.loop import AgentConfig, default_sampling
from searchprime.errors import ConfigError
from searchprime.eval.judge import LLMJudge
from searchprime.records import (
    Action,
    BehaviorEvidence,
    BehaviorLabels,
    Scores,
    Task,
    Trajectory,
    Turn,
)
from searchprime.rl.episodes import EpisodeRunner
from searchprime.rl.rewards import get_reward, register_reward, weighted_reward
from searchprime.search.bm25 import BM25Search

from ..scripted_llm import ScriptedLLM
from .toy import ScriptedSampler


def _traj(kinds: list[str], termination: str, answer: str | None, em: float) -> Trajectory:
    turns = [
        Turn(index=i, context=[0, 1], output="x", action=Action(kind=k, content="q"))
        for i, k in enumerate(kinds)
    ]
    return Trajectory(
        task_id="t",
        question="q?",
        answers=["417"],
        turns=turns,
        termination=termination,
        final_answer=answer,
        scores=Scores(em=em, f1=0.5 if answer else 0.0),
    )


def test_answer_rewards_count_only_answered_episodes():
    good = _traj(["search", "answer"], "answer", "417", 1.0)
    assert get_reward("em")(good) == 1.0 and get_reward("f1")(good) == 0.5
    # a stale score on an episode that did not end with an answer is worth nothing
    cut = _traj(["search", "search"], "max_turns", None, 1.0)
    assert get_reward("em")(cut) == 0.0 and get_reward("f1")(cut) == 0.0
    assert get_reward("format")(_traj(["invalid", "search", "answer"], "answer", "1", 0)) == (
        pytest.approx(2 / 3)
    )
    assert get_reward("format")(_traj([], "error", None, 0.0)) == 0.0
    assert weighted_reward(good, {"em": 1.0, "format": 0.5}) == 1.5


def test_answered_reward_separates_answers_from_loops():
    wrong = _traj(["search", "answer"], "answer", "12", 0.0)
    loop = _traj(["search", "search"], "max_turns", None, 0.0)
    assert get_reward("answered")(wrong) == 1.0 and get_reward("answered")(loop) == 0.0
    # a group of wrong answers and loops is no longer all-equal under em + answered
    weights = {"em": 1.0, "answered": 0.2}
    assert weighted_reward(wrong, weights) == pytest.approx(0.2)
    assert weighted_reward(loop, weights) == 0.0
    assert get_reward("answered")(_traj(["answer"], "error", None, 0.0)) == 0.0


def test_behavior_reward_is_the_share_of_labelled_behaviors():
    t = _traj(["search", "answer"], "answer", "417", 1.0)
    assert get_reward("behavior")(t) == 0.0
    t.labels = BehaviorLabels(
        annotator="rules",
        behaviors={
            "information_verification": BehaviorEvidence(present=True),
            "adaptive_search": BehaviorEvidence(present=False),
        },
    )
    assert get_reward("behavior")(t) == 0.25


def test_registry_takes_user_rewards_and_rejects_unknown_ones():
    @register_reward("test_turns")
    def turns(traj):
        return float(len(traj.turns))

    assert get_reward("test_turns")(_traj(["search", "answer"], "answer", "1", 0)) == 2.0
    assert get_reward("py:searchprime.rl.rewards:em") is get_reward("em")
    with pytest.raises(ConfigError, match="unknown reward 'nope'"):
        get_reward("nope")
    with pytest.raises(ConfigError, match="cannot import"):
        get_reward("py:no.such.module:fn")


def _judge_reply(messages, _i) -> str:
    lines = dict(line.split(": ", 1) for line in messages[-1].content.splitlines() if ": " in line)
    verdict = "correct" if lines["Predicted answer"] == lines["Gold answers"] else "incorrect"
    return json.dumps({"rationale": "compared", "judgement": verdict})


def test_judge_reward_uses_the_llm_judge_on_each_episode(toy, tmp_path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(toy.model))
    judge_llm = ScriptedLLM(_judge_reply)
    runner = EpisodeRunner(
        ScriptedSampler(tok, ["<answer>417</answer>"]),
        tok,
        BM25Search.load(toy.index),
        AgentConfig(
            max_turns=2,
            prompt="compact",
            thinking="none",
            context_budget_tokens=None,
            sampling=default_sampling(),
        ),
        judge=LLMJudge(judge_llm, cache=tmp_path / "judge.sqlite"),
    )
    tasks = [
        Task(id="a", question="What is the code of A?", answers=["417"]),
        Task(id="b", question="What is the code of B?", answers=["999"]),
    ]
    try:
        episodes = runner.run(tasks, [1, 2], [0, 0])
    finally:
        runner.close()
    assert [e.trajectory.scores.judge for e in episodes] == [True, False]
    assert [get_reward("judge")(e.trajectory) for e in episodes] == [1.0, 0.0]
    assert len(judge_llm.requests) == 2


def test_prefilter_keeps_tasks_with_mixed_outcomes(toy, toy_policy, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from searchprime.rl.config import PrefilterSettings
    from searchprime.rl.hf_sampler import HFSampler
    from searchprime.rl.prefilter import prefilter_tasks
    from searchprime.tasks import load_tasks

    tok = AutoTokenizer.from_pretrained(str(toy_policy))
    model = AutoModelForCausalLM.from_pretrained(str(toy_policy))
    sampler = HFSampler(model, tok, max_batch=16)
    agent = AgentConfig(
        max_turns=2,
        prompt="compact",
        thinking="none",
        context_budget_tokens=None,
        sampling=default_sampling().model_copy(update={"temperature": 1.0, "max_tokens": 24}),
    )
    runner = EpisodeRunner(sampler, tok, BM25Search.load(toy.index), agent)
    tasks = load_tasks(toy.tasks)[:8]
    try:
        kept, card = prefilter_tasks(
            tasks,
            runner,
            PrefilterSettings(samples=4),
            {"toy_searched": 1.0},
            tmp_path / "prefilter.json",
        )
        asyncio.set_event_loop(None)
    finally:
        runner.call(sampler.aclose())
        runner.close()
    rates = card["pass_rate"]
    assert set(rates) == {t.id for t in tasks}
    assert all(r in (0.0, 0.25, 0.5, 0.75, 1.0) for r in rates.values())
    assert [t.id for t in kept] == [t.id for t in tasks if 0 < rates[t.id] < 1]
    assert card["kept"] == len(kept) > 0
    # cached: a resumed run trains on the same tasks without sampling again
    again, _ = prefilter_tasks(
        tasks,
        None,
        PrefilterSettings(samples=4),
        {"toy_searched": 1.0},
        tmp_path / "prefilter.json",
    )
    assert [t.id for t in again] == [t.id for t in kept]
    # keep: varied reads the cached rewards; with a 0/1 reward it keeps the same tasks
    assert all(len(v) == 4 for v in card["rewards"].values())
    varied, card2 = prefilter_tasks(
        tasks,
        None,
        PrefilterSettings(samples=4, keep="varied"),
        {"toy_searched": 1.0},
        tmp_path / "prefilter.json",
    )
    assert [t.id for t in varied] == [t.id for t in kept] and card2["keep"] == "varied"


def test_prefilter_varied_keeps_tasks_a_shaping_reward_hides(tmp_path):
    """Next to a shaping reward every episode 'passes'; the rewards still differ."""
    from searchprime.rl.config import PrefilterSettings
    from searchprime.rl.prefilter import prefilter_tasks

    tasks = [Task(id=f"t{i}", question="q?", answers=["a"]) for i in range(3)]
    rewards = {"t0": [1.2, 0.2, 0.2, 0.2], "t1": [0.2] * 4, "t2": [1.2] * 4}
    card = {
        "samples": 4,
        "low": 0.0,
        "high": 1.0,
        "rewards": rewards,
        "pass_rate": {k: 1.0 for k in rewards},
    }
    cache = tmp_path / "prefilter.json"
    cache.write_text(json.dumps(card))
    kept, out = prefilter_tasks(tasks, None, PrefilterSettings(keep="varied"), {}, cache)
    assert [t.id for t in kept] == ["t0"] and out["kept"] == 1
    with pytest.raises(ConfigError, match=r"kept none of 3 tasks \(pass rate strictly"):
        prefilter_tasks(tasks, None, PrefilterSettings(), {}, cache)
    # a card without rewards (older runs) still serves pass_rate
    del card["rewards"]
    card["pass_rate"]["t1"] = 0.5
    cache.write_text(json.dumps(card))
    kept, _ = prefilter_tasks(tasks, None, PrefilterSettings(), {}, cache)
    assert [t.id for t in kept] == ["t1"]

"""The agent loop with a scripted policy and a real BM25 index."""

from __future__ import annotations

import asyncio
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from searchprime.agent import prompts
from searchprime.agent.loop import AgentConfig, run_agent
from searchprime.errors import LLMError, SearchError
from searchprime.llm.base import Completion
from searchprime.records import Message, Trajectory
from searchprime.search.format import format_hits
from tests.agent.helpers import QUESTION_RE, ScriptedLLM, make_tasks, searcher_policy

TASK = make_tasks(1)[0]


def run(llm, search, **cfg) -> Trajectory:
    return asyncio.run(run_agent(TASK, llm, search, AgentConfig(**cfg), attempt=2, seed=7))


def test_search_then_answer(bm25) -> None:
    llm = ScriptedLLM(searcher_policy)
    traj = run(llm, bm25)
    assert traj.termination == "answer" and traj.final_answer == "Asha Venn"
    assert traj.key == (TASK.id, 2) and traj.answers == ["Asha Venn"]
    assert [t.action.kind for t in traj.turns] == ["search", "answer"]
    first, second = traj.turns
    # the first user message holds the question line the scripted teachers look for
    assert traj.messages[0].role == "system" and "<search>" in traj.messages[0].content
    assert QUESTION_RE.search(traj.messages[1].content).group(1) == TASK.question
    # the stripped stop sequence was restored before parsing
    assert (
        first.output.endswith("</search>") and first.action.content == "who founded Orvane Telmar"
    )
    assert first.action.think == "I should look up the port."
    assert first.hits and first.hits[0].doc_id == "orvane-enc"  # real BM25 ranking
    assert first.observation == f"<information>\n{format_hits(first.hits)}\n</information>"
    assert "[Source: encyclopedia | orbis-wiki.org]" in first.observation
    assert first.context == [0, 1] and second.context == [0, 1, 2, 3]
    assert [m.role for m in traj.messages] == ["system", "user", "assistant", "user", "assistant"]
    # the model saw exactly the messages its turn's context names
    for turn, (msgs, params) in zip(traj.turns, llm.requests, strict=True):
        assert msgs == [traj.messages[i] for i in turn.context]
        assert params.seed == 7  # the attempt seed, unchanged each turn
        assert {"</search>", "</answer>", "</summary>"} <= set(params.stop)
    assert first.input_tokens == llm.count_tokens(llm.requests[0][0])
    assert traj.policy == {"kind": "scripted"} and traj.search["kind"] == "bm25"
    assert traj.agent["max_turns"] == 10 and traj.meta["seed"] == 7
    assert traj.started_at <= traj.finished_at and first.search_latency_s > 0
    Trajectory.model_validate_json(traj.model_dump_json())  # round-trips


def test_invalid_response_gets_format_reminder_and_counts(bm25) -> None:
    outs = ["I would search for it.", "<search>a</search><answer>b</answer>", "<answer>Asha Venn"]
    llm = ScriptedLLM(lambda m, i: outs[i])
    traj = run(llm, bm25, max_turns=5)
    assert [t.action.kind for t in traj.turns] == ["invalid", "invalid", "answer"]
    assert traj.turns[0].observation.startswith(prompts.FORMAT_REMINDER)
    assert traj.turns[0].action.error.startswith("no action")
    assert traj.meta["n_invalid"] == 2 and traj.final_answer == "Asha Venn"
    assert traj.turns[2].context == [0, 1, 2, 3, 4, 5]


def test_max_turns_with_search_and_turns_left_reminders(bm25) -> None:
    llm = ScriptedLLM(lambda m, i: f"<search>filler town {i}</search>")
    traj = run(llm, bm25, max_turns=5, search_reminder_after=3, turns_left_reminder=2)
    assert traj.termination == "max_turns" and traj.final_answer is None
    assert len(traj.turns) == 5 and traj.n_searches == 5
    obs = [t.observation for t in traj.turns]
    assert all(o.startswith("<information>\n") for o in obs)
    search_note = prompts.search_reminder(3).split(" 3 ")[0]
    assert [search_note in o for o in obs] == [False, False, True, True, True]
    assert "you have made 4 searches in a row" in obs[3]
    # turns left after turn t: 5 - (t + 1) -> reminders when 2 and 1 remain, not at the end
    assert [("turns left" in o or "turn left" in o) for o in obs] == [
        False,
        False,
        True,
        True,
        False,
    ]
    assert "you have 1 turn left" in obs[3]
    # reminders come after the closing information tag, in the same user message
    assert obs[2].index("</information>") < obs[2].index("Note:")


def test_summary_replaces_history(bm25) -> None:
    seen_after_summary: list[list[Message]] = []

    def policy(messages: list[Message], i: int) -> str:
        if prompts.SUMMARY_REMINDER in messages[-1].content:
            return "<think>Too long.</think><summary>Searched filler towns; no founder yet."
        if messages[-1].content.startswith(prompts.SUMMARY_ACK):
            seen_after_summary.append(messages)
            return "<answer>unknown</answer>"
        return f"<search>filler town {i} market mill bridges</search>"

    llm = ScriptedLLM(policy)
    # the system prompt alone is ~500 tokens by the scripted estimate; three results pass 900
    traj = run(llm, bm25, context_budget_tokens=900, search_reminder_after=0)
    kinds = [t.action.kind for t in traj.turns]
    assert kinds[-2:] == ["summary", "answer"], kinds
    s = len(kinds) - 2
    summary_turn = traj.turns[s]
    assert prompts.SUMMARY_REMINDER in traj.turns[s - 1].observation
    assert summary_turn.action.content == "Searched filler towns; no founder yet."
    summary_idx = summary_turn.context[-1] + 1
    assert traj.messages[summary_idx].content == summary_turn.output
    assert traj.turns[s + 1].context == [0, 1, summary_idx, summary_idx + 1]
    assert len(traj.messages) == summary_idx + 3  # nothing was deleted: the log is append-only
    assert all(t.input_tokens for t in traj.turns)
    (msgs,) = seen_after_summary
    assert [m.role for m in msgs] == ["system", "user", "assistant", "user"]
    assert msgs[2].content.startswith("<think>Too long.")


def test_internal_reasoning_and_policy_meta(bm25) -> None:
    def policy(messages, i):
        if i == 0:
            return Completion(
                text="<search>Orvane Telmar</search>",
                reasoning="Need the founder first.",
                completion_tokens=9,
                meta={"behaviors": ["adaptive_search"]},
            )
        return Completion(text="<answer>Asha Venn</answer>", reasoning="Found it.")

    traj = run(ScriptedLLM(policy), bm25, thinking="internal")
    t0, t1 = traj.turns
    assert t0.reasoning == "Need the founder first." and t1.reasoning == "Found it."
    assert t0.action.think is None and t0.output_tokens == 9
    assert t0.policy_meta == {"behaviors": ["adaptive_search"]}
    assert "<think>" not in traj.messages[0].content


def test_policy_failure_is_recorded_not_raised(bm25) -> None:
    def policy(messages, i):
        if i == 1:
            raise LLMError("POST /chat/completions failed after 6 attempts: HTTP 503")
        return "<search>Orvane</search>"

    traj = run(ScriptedLLM(policy), bm25)
    assert traj.termination == "error" and len(traj.turns) == 1
    assert "turn 1: policy failed: LLMError: POST /chat" in traj.error


def test_context_overflow_from_server_is_context_limit(bm25) -> None:
    def policy(messages, i):
        raise LLMError("HTTP 400: This model's maximum context length is 8192 tokens")

    traj = run(ScriptedLLM(policy), bm25)
    assert traj.termination == "context_limit" and traj.turns == []


def test_search_failure_is_recorded(scripted) -> None:
    class Broken:
        name = "broken"

        async def search(self, queries, topk):
            raise SearchError("retriever unreachable")

        def describe(self):
            raise RuntimeError("no describe either")

        async def aclose(self):
            pass

    traj = run(ScriptedLLM(searcher_policy), Broken())
    assert traj.termination == "error" and "search failed: SearchError: retriever" in traj.error
    assert traj.turns[0].action.kind == "search" and traj.turns[0].observation is None
    assert traj.search["describe_error"] == "RuntimeError: no describe either"


def test_context_limit_tokens(bm25) -> None:
    llm = ScriptedLLM(lambda m, i: "<search>filler town market mill river bridges</search>")
    traj = run(llm, bm25, context_budget_tokens=None, context_limit_tokens=800)
    assert traj.termination == "context_limit"
    assert traj.turns and all(t.input_tokens <= 800 for t in traj.turns)
    assert "context_limit_tokens" in traj.error


def test_config_validation() -> None:
    cfg = AgentConfig(sampling={"stop": ["\n\n"], "temperature": 0})
    assert cfg.sampling.stop == ["\n\n", "</search>", "</summary>", "</answer>"]
    with pytest.raises(ValueError, match="extra"):
        AgentConfig(max_turn=3)
    with pytest.raises(ValueError):
        AgentConfig(thinking="loud")
    with pytest.raises(ValueError, match="context_limit_tokens"):
        AgentConfig(context_budget_tokens=100, context_limit_tokens=50)


def test_no_search_results_are_explicit(scripted) -> None:
    class Empty:
        name = "empty"

        async def search(self, queries, topk):
            return [[] for _ in queries]

        def describe(self):
            return {"kind": "empty"}

        async def aclose(self):
            pass

    outs = ["<search>zzzz</search>", "<answer>none</answer>"]
    traj = run(ScriptedLLM(lambda m, i: outs[i]), Empty())
    assert re.fullmatch(
        r"<information>\nNo results found\.\n</information>", traj.turns[0].observation
    )


class _CannedSearch:
    name = "canned"

    async def search(self, queries, topk):
        from searchprime.records import SearchHit

        return [[SearchHit(doc_id="d1", title="T", text=f"about {q}")] for q in queries]

    def describe(self):
        return {"kind": "canned"}

    async def aclose(self):
        pass


PIECES = ["<search>", "</search>", "<answer>", "</answer>", "<summary>", "</summary>",
          "<think>", "</think>", "<information>", "q", " ", "\n", "x y"]  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.sampled_from(PIECES), max_size=8).map("".join), min_size=1,
                max_size=8),
       st.integers(1, 6), st.sampled_from(["explicit", "internal", "none"]))  # fmt: skip
def test_property_any_outputs_give_a_consistent_trajectory(
    outputs: list[str], max_turns: int, thinking: str
) -> None:
    llm = ScriptedLLM(lambda m, i: outputs[i % len(outputs)])
    traj = run(llm, _CannedSearch(), max_turns=max_turns, thinking=thinking,
               context_budget_tokens=600)  # fmt: skip
    assert 1 <= len(traj.turns) <= max_turns
    assert (traj.termination == "answer") == (traj.final_answer is not None)
    assert traj.termination in ("answer", "max_turns")
    for turn, (msgs, _) in zip(traj.turns, llm.requests, strict=True):
        assert turn.context[:2] == [0, 1] and turn.context == sorted(set(turn.context))
        assert msgs == [traj.messages[i] for i in turn.context]
        assert msgs[-1].role == "user" and traj.messages[turn.context[-1] + 1].role == "assistant"
        assert (turn.observation is None) == (turn.action.kind == "answer")
    Trajectory.model_validate_json(traj.model_dump_json())


class _AsyncCountingLLM(ScriptedLLM):
    """A backend with both counters, like OpenAIChat: the loop must await the async one."""

    def __init__(self) -> None:
        super().__init__(searcher_policy)
        self.async_counts = 0

    def count_tokens(self, messages):
        raise AssertionError("the loop called the blocking count_tokens")

    async def acount_tokens(self, messages) -> int:
        self.async_counts += 1
        await asyncio.sleep(0)  # a real await: the loop may run other agents meanwhile
        return 1000 + len(messages)


def test_loop_awaits_acount_tokens_when_the_backend_has_it(bm25) -> None:
    llm = _AsyncCountingLLM()
    traj = run(llm, bm25)
    assert traj.termination == "answer"
    assert [t.input_tokens for t in traj.turns] == [1002, 1004]
    assert llm.async_counts == 2  # the first context, then the one after the search

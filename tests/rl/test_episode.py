"""One episode = one exact token sequence: what the sampler drew, environment tokens masked."""

from __future__ import annotations

import asyncio
import math

import pytest

from searchprime.agent.loop import AgentConfig, default_sampling, run_agent
from searchprime.llm.tokens import render_chat
from searchprime.records import Task
from searchprime.rl.episode import EpisodeLLM
from searchprime.rl.rewards import get_reward
from searchprime.search.bm25 import BM25Search

from .toy import ScriptedSampler


@pytest.fixture(scope="module")
def tok(toy):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(toy.model))


@pytest.fixture(scope="module")
def search(toy):
    return BM25Search.load(toy.index)


def _agent(max_turns: int = 4) -> AgentConfig:
    return AgentConfig(
        max_turns=max_turns,
        prompt="compact",
        thinking="none",
        context_budget_tokens=None,
        sampling=default_sampling().model_copy(update={"temperature": 1.0}),
    )


def _task(toy) -> Task:
    import json

    first = json.loads(toy.tasks.read_text().splitlines()[0])
    return Task(id=first["id"], question=first["question"], answers=first["answers"])


def _run(toy, tok, search, sampler, **kw):
    llm = EpisodeLLM(sampler, tok, max_length=kw.pop("max_length", None))
    traj = asyncio.run(run_agent(_task(toy), llm, search, _agent(**kw), seed=1))
    return llm, traj


def test_sampler_inputs_are_prompt_plus_completion_prefixes(toy, tok, search):
    name = _task(toy).question.split("of ")[-1].rstrip("?")
    sampler = ScriptedSampler(
        tok, [f"<search>{name} code</search>", "<answer>417</answer>"], eos=[False, True]
    )
    llm, traj = _run(toy, tok, search, sampler)
    seq = llm.tokens()
    assert traj.termination == "answer" and seq.broken is None
    full = seq.prompt_ids + seq.completion_ids
    # every sampler input is the recorded sequence up to that turn, token for token
    for k, prompt in enumerate(sampler.calls):
        assert full[: len(prompt)] == prompt, f"turn {k}"
    assert sampler.calls[0] == seq.prompt_ids
    # the sampled ids are kept as sampled: characters, not the tokenizer's merges
    first = sampler.char_ids(f"<search>{name} code</search>")
    assert seq.completion_ids[: len(first)] == first
    text = render_chat(tok, traj.messages[: traj.turns[1].context[-1] + 1])
    canonical = tok(text, add_special_tokens=False)["input_ids"]
    assert canonical != sampler.calls[1], "re-tokenizing would have changed the sequence"
    assert tok.decode(sampler.calls[1], skip_special_tokens=False) == text
    # masks and logprobs: 1 / sampler value on sampled ids, 0 / NaN on environment ids
    n_sampled = sum(len(sampler.char_ids(t)) for t in sampler.texts) + 1  # + the final eos
    assert sum(seq.env_mask) == n_sampled
    for m, lp in zip(seq.env_mask, seq.logprobs, strict=True):
        assert (m == 1 and lp == -0.5) or (m == 0 and math.isnan(lp))
    env = [i for i, m in zip(seq.completion_ids, seq.env_mask, strict=True) if m == 0]
    env_text = tok.decode(env, skip_special_tokens=False)
    assert "<information>" in env_text and name in env_text and "<search>" not in env_text
    assert seq.completion_ids[-1] == tok.eos_token_id and seq.env_mask[-1] == 1


def test_tag_closed_by_the_loop_keeps_the_sequence(toy, tok, search):
    # the policy ends its turn with <search> left open; the loop closes it before its EOS
    sampler = ScriptedSampler(tok, ["<search>code", "<answer>1</answer>"])
    llm, traj = _run(toy, tok, search, sampler)
    seq = llm.tokens()
    assert traj.turns[0].action.kind == "search" and traj.termination == "answer"
    assert seq.broken is None and llm.reopened == 1
    full = seq.prompt_ids + seq.completion_ids
    assert full[: len(sampler.calls[1])] == sampler.calls[1]
    first = sampler.char_ids("<search>code")
    # the first EOS became an environment token after the closing tag
    after = seq.completion_ids[len(first) :]
    assert tok.decode(after[:4], skip_special_tokens=False).startswith("</search>")
    assert seq.env_mask[: len(first)] == [1] * len(first)
    assert seq.env_mask[len(first)] == 0


def test_summary_rewrites_history_and_stops_the_sequence(toy, tok, search):
    texts = ["<search>code</search>", "<summary>nothing yet</summary>", "<answer>1</answer>"]
    sampler = ScriptedSampler(tok, texts)
    llm, traj = _run(toy, tok, search, sampler)
    seq = llm.tokens()
    assert traj.termination == "answer" and len(traj.turns) == 3
    assert seq.broken is not None and "turn 2: the history was rewritten" in seq.broken
    # trained on the turns before the break only
    assert sum(seq.env_mask) == sum(len(sampler.char_ids(t)) + 1 for t in texts[:2])


def test_out_of_turns_scores_zero_and_is_trained(toy, tok, search):
    sampler = ScriptedSampler(tok, ["<search>code</search>"], eos=[True])
    llm, traj = _run(toy, tok, search, sampler, max_turns=3)
    seq = llm.tokens()
    assert traj.termination == "max_turns" and len(sampler.calls) == 3
    from searchprime.eval.score import score_one

    traj.scores = score_one(traj, traj.answers)
    assert get_reward("em")(traj) == 0.0 and get_reward("f1")(traj) == 0.0
    assert sum(seq.env_mask) == 3 * (len(sampler.char_ids("<search>code</search>")) + 1)


def test_max_length_ends_the_episode_as_context_limit(toy, tok, search):
    sampler = ScriptedSampler(tok, ["<search>code</search>"])
    llm, traj = _run(toy, tok, search, sampler, max_length=200, max_turns=6)
    assert traj.termination == "context_limit"
    assert all(len(p) < 200 for p in sampler.calls)
    seq = llm.tokens()
    assert len(seq.prompt_ids) + len(seq.completion_ids) <= 200 + 1


def test_hf_sampler_matches_the_trainer_on_a_stitched_sequence(toy, tok, search):
    """The hf sampler's logprobs equal the trainer's teacher-forced ones (< 1e-4)."""
    import torch
    from transformers import AutoModelForCausalLM

    from searchprime.rl.hf_sampler import HFSampler
    from searchprime.rl.logprobs import sequence_logprobs

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(str(toy.model), dtype=torch.float32)
    sampler = HFSampler(model, tok, max_batch=4)
    llm, traj = _run(toy, tok, search, sampler, max_turns=3)
    seq = llm.tokens()
    assert len(traj.turns) >= 2 and seq.broken is None
    full = seq.prompt_ids + seq.completion_ids
    trainer = sequence_logprobs(model, full, len(seq.prompt_ids))
    gaps = [
        abs(a - b)
        for a, b, m in zip(trainer, seq.logprobs, seq.env_mask, strict=True)
        if m == 1 and not math.isnan(b)
    ]
    assert len(gaps) >= 10
    assert max(gaps) < 1e-4
    asyncio.run(sampler.aclose())

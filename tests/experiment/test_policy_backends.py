"""Trained checkpoints become LLM backends for the dev rollouts: transformers or llama.cpp."""

from __future__ import annotations

import asyncio

import pytest

from searchprime.agent.loop import default_sampling
from searchprime.experiment import EvalSection, ExperimentConfig, open_policy
from searchprime.records import Message

PROMPT = [Message(role="user", content="What is the capital of France? Answer in one word.")]


def _ask(llm) -> str:
    params = default_sampling().model_copy(update={"temperature": 0.0, "max_tokens": 8})
    return asyncio.run(llm.complete(PROMPT, params)).text


@pytest.mark.slow
def test_llamacpp_backend_serves_the_checkpoint_and_caches_its_gguf(smollm2_dir) -> None:
    cfg = ExperimentConfig(eval=EvalSection(backend="llamacpp", max_batch=2, threads=1))
    with open_policy(cfg, smollm2_dir) as llm:
        first = _ask(llm)
        assert llm.count_tokens(PROMPT) > 10  # counted with the checkpoint's own tokenizer
    gguf = smollm2_dir / "model.f16.gguf"
    assert gguf.stat().st_size > 100_000_000
    stamp = gguf.stat().st_mtime_ns
    with open_policy(cfg, smollm2_dir) as llm:
        assert _ask(llm) == first  # greedy: the same answer from the cached export
    assert gguf.stat().st_mtime_ns == stamp
    assert "paris" in first.lower()


@pytest.mark.slow
def test_hf_and_llamacpp_backends_agree_on_a_greedy_answer(smollm2_dir) -> None:
    answers = []
    for backend in ("hf", "llamacpp"):
        cfg = ExperimentConfig(eval=EvalSection(backend=backend, max_batch=2, threads=1))
        with open_policy(cfg, smollm2_dir) as llm:
            answers.append(_ask(llm).strip().lower())
    assert answers[0] == answers[1]

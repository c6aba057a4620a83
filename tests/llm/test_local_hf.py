"""LocalHF on the packaged SmolLM2-135M GGUF: batching, stops, seeds, token counts."""

from __future__ import annotations

import asyncio

import pytest

from searchprime.errors import LLMError
from searchprime.llm.base import SamplingParams
from searchprime.records import Message

pytestmark = pytest.mark.slow  # loading (dequantizing) the GGUF takes 15-30 s on a busy CPU

QUESTIONS = ["What is the capital of France?", "Name a color.", "Say hi to Bob."]
GREEDY = SamplingParams(max_tokens=12, temperature=0.0)


@pytest.fixture(scope="module")
def local_llm(smollm2_gguf):
    torch = pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from searchprime.llm.local_hf import LocalHF

    threads = torch.get_num_threads()
    llm = LocalHF(smollm2_gguf, max_batch=8, threads=1, batch_wait_s=0.02)
    yield llm
    torch.set_num_threads(threads)


def user(text: str) -> list[Message]:
    return [Message(role="user", content=text)]


def test_batched_greedy_equals_one_at_a_time(local_llm):
    async def sequential():
        return [await local_llm.complete(user(q), GREEDY) for q in QUESTIONS]

    async def concurrent():
        return await asyncio.gather(*(local_llm.complete(user(q), GREEDY) for q in QUESTIONS))

    before = local_llm.stats["max_batch_seen"]
    alone = asyncio.run(sequential())
    assert local_llm.stats["max_batch_seen"] == max(before, 1)
    together = asyncio.run(concurrent())
    assert local_llm.stats["max_batch_seen"] == len(QUESTIONS)  # really one batch
    assert [c.text for c in together] == [c.text for c in alone]
    assert [c.completion_tokens for c in together] == [c.completion_tokens for c in alone]
    assert all(c.text.strip() for c in alone)
    counts = [local_llm.count_tokens(user(q)) for q in QUESTIONS]
    assert [c.prompt_tokens for c in alone] == counts


def test_stop_at_close_tag_keeps_the_tag(local_llm):
    messages = [
        Message(role="system", content="Repeat the user's text exactly."),
        Message(role="user", content="<search>capital of France</search> done"),
    ]
    free = asyncio.run(local_llm.complete(messages, SamplingParams(max_tokens=20, temperature=0)))
    if "</search>" not in free.text:
        pytest.skip(f"model did not repeat the tag: {free.text!r}")
    params = SamplingParams(max_tokens=20, temperature=0.0, stop=["</answer>", "</search>"])
    out = asyncio.run(local_llm.complete(messages, params))
    assert out.text == free.text[: free.text.index("</search>")] + "</search>"
    assert out.finish_reason == "stop"
    assert out.completion_tokens < free.completion_tokens


def test_seeded_sampling_is_reproducible_across_batches(local_llm):
    params = SamplingParams(max_tokens=10, temperature=1.0, seed=123)
    other = SamplingParams(max_tokens=6, temperature=0.7, top_p=0.9, seed=5)

    async def go():
        alone = await local_llm.complete(user(QUESTIONS[0]), params)
        mixed = await asyncio.gather(
            local_llm.complete(user(QUESTIONS[0]), params),
            local_llm.complete(user(QUESTIONS[1]), other),
            local_llm.complete(user(QUESTIONS[2]), GREEDY),
        )
        return alone, mixed

    alone, mixed = asyncio.run(go())
    assert mixed[0].text == alone.text
    assert mixed[1].completion_tokens <= 6 and mixed[2].completion_tokens <= 12


def test_logprobs_and_length_finish(local_llm):
    params = SamplingParams(max_tokens=3, temperature=0.0, logprobs=True)
    out = asyncio.run(local_llm.complete(user("Tell me a long story."), params))
    assert out.finish_reason == "length" and out.completion_tokens == 3
    assert out.logprobs is not None and len(out.logprobs) == 3
    assert all(lp <= 0.0 for lp in out.logprobs)


def test_prompt_too_long_fails_only_that_request(local_llm):
    huge = user("word " * (local_llm.max_context + 10))

    async def go():
        return await asyncio.gather(
            local_llm.complete(huge, GREEDY),
            local_llm.complete(user(QUESTIONS[0]), SamplingParams(max_tokens=2, temperature=0)),
            return_exceptions=True,
        )

    bad, good = asyncio.run(go())
    assert isinstance(bad, LLMError) and "context" in str(bad)
    assert not isinstance(good, BaseException) and good.completion_tokens <= 2


def test_count_tokens_matches_llama_cpp(local_llm):
    # llama.cpp reported 32 prompt tokens for this message with SmolLM2's template
    assert local_llm.count_tokens(user("hello world")) == 32
    assert local_llm.describe()["kind"] == "local"


def test_loads_a_hugging_face_folder(local_llm, tmp_path):
    """A tiny random Llama saved with SmolLM2's tokenizer: the folder path, via load_llm."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from searchprime.llm import LLMConfig, load_llm

    tok = local_llm.tokenizer
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=256,
        eos_token_id=tok.eos_token_id,
    )
    LlamaForCausalLM(config).save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    llm = load_llm(LLMConfig(kind="local", path=str(tmp_path), max_batch=2, threads=1))
    params = SamplingParams(max_tokens=5, temperature=0.0)

    async def go():
        return await asyncio.gather(*(llm.complete(user(q), params) for q in QUESTIONS[:2]))

    outs = asyncio.run(go())
    assert all(o.completion_tokens and o.completion_tokens <= 5 for o in outs)
    assert llm.describe()["gguf_file"] is None and llm.max_context == 256

"""LlamaCppSampler against the real llama.cpp server and the trainer's own log-probabilities."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import httpx
import pytest

from searchprime.errors import ConfigError, LLMError
from searchprime.llm.base import SamplingParams
from searchprime.rl.llamacpp_sampler import LlamaCppSampler, align_logprobs
from searchprime.rl.sampler import Sampled, TokenSampler

pytest.importorskip("xllamacpp")
torch = pytest.importorskip("torch")

STOPS = ["</search>", "</answer>"]
QUESTION = (
    "Answer the question. To search, write <search>query</search>; to answer, write "
    "<answer>text</answer>.\nQuestion: What is the capital of France?"
)
OBSERVATION = (
    "<information>\nDoc 1 (Title: Paris) [Source: wiki | en.wikipedia.org]\n"
    "Paris is the capital and largest city of France.\n</information>"
)
MAX_GAP = 0.02


@pytest.fixture(scope="module")
def tokenizer(smollm2_dir: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(smollm2_dir)


@pytest.fixture(scope="module")
def hf_model(smollm2_dir: Path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(smollm2_dir, dtype=torch.float32).eval()


@pytest.fixture(scope="module")
def sampler(smollm2_dir: Path, tmp_path_factory):
    with LlamaCppSampler(
        smollm2_dir,
        work_dir=tmp_path_factory.mktemp("llamacpp_sampler"),
        parallel=2,
        ctx_size=2048,
        threads=1,
    ) as made:
        yield made


def chat_ids(tokenizer, user: str, prefix: str = "") -> list[int]:
    """The chat prompt for ``user`` (plus an assistant ``prefix``) as token ids."""
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": user}], add_generation_prompt=True, tokenize=False
    )
    return tokenizer(text + prefix, add_special_tokens=False)["input_ids"]


def gaps(
    model, start: int, full: list[int], turns: list[tuple[int, Sampled]], temperature: float = 1.0
) -> list[list[float]]:
    """Per turn, |sampler logprob - trainer logprob| where the sampler's logprob is known.

    ``full`` is the whole sequence, ``turns`` (offset in ``full``, what was drawn there); one
    teacher-forced forward pass, as the trainer scores a stitched multi-turn episode.
    """
    from searchprime.rl.logprobs import sequence_logprobs

    ref = sequence_logprobs(model, full, start, temperature)
    out = []
    for offset, drawn in turns:
        assert full[offset : offset + len(drawn.ids)] == drawn.ids
        mine = ref[offset - start : offset - start + len(drawn.ids)]
        pairs = zip(drawn.logprobs, mine, strict=True)
        out.append([abs(a - b) for a, b in pairs if not math.isnan(a)])
    return out


def draw(sampler, prompts: list[list[int]], params: list[SamplingParams]) -> list[Sampled]:
    async def go():
        jobs = (sampler.sample(p, q) for p, q in zip(prompts, params, strict=True))
        return await asyncio.gather(*jobs)

    return asyncio.run(go())


def params_for(seeds, temperature: float = 1.0) -> list[SamplingParams]:
    return [
        SamplingParams(temperature=temperature, max_tokens=24, stop=STOPS, seed=seed)
        for seed in seeds
    ]


def test_parity_with_trainer_logprobs_single_and_stitched(sampler, tokenizer, hf_model):
    assert isinstance(sampler, TokenSampler)
    prompt = chat_ids(tokenizer, QUESTION)
    first = draw(sampler, [prompt] * 2, params_for(range(2)))
    for drawn in first:
        assert len(drawn.logprobs) == len(drawn.ids) >= 1
        assert drawn.finish_reason in ("stop", "length")

    # turn 2 continues the exact ids: prompt + sampled + environment tokens
    end_of_turn = tokenizer.convert_tokens_to_ids("<|im_end|>")
    env_text = "\n<|im_start|>user\n" + OBSERVATION + "<|im_end|>\n<|im_start|>assistant\n"
    stitched = []
    for drawn in first:
        env = tokenizer(env_text, add_special_tokens=False)["input_ids"]
        if drawn.ids[-1] != end_of_turn:
            env = [end_of_turn, *env]
        stitched.append(prompt + drawn.ids + env)
    second = draw(sampler, stitched, params_for(range(10, 12)))
    assert max(d.meta["cached_tokens"] for d in second) >= len(prompt)  # KV cache reused
    single, multi = [], []
    for one, context, two in zip(first, stitched, second, strict=True):
        turn1, turn2 = gaps(
            hf_model, len(prompt), context + two.ids, [(len(prompt), one), (len(context), two)]
        )
        single += turn1
        multi += turn2
    assert len(single) >= 20 and len(multi) >= 20
    assert sum(single) / len(single) < MAX_GAP, max(single)
    assert sum(multi) / len(multi) < MAX_GAP, max(multi)

    # T != 1: the sampler reports the tempered (post-sampling) distribution
    (cool,) = draw(sampler, [prompt], params_for([5], temperature=0.7))
    (tempered,) = gaps(hf_model, len(prompt), prompt + cool.ids, [(len(prompt), cool)], 0.7)
    assert sum(tempered) / len(tempered) < MAX_GAP, max(tempered)


def test_stop_string_eos_and_length_ids(sampler, tokenizer):
    end_of_turn = tokenizer.convert_tokens_to_ids("<|im_end|>")
    searching = chat_ids(tokenizer, QUESTION, "<search>capital of France")
    seen = set()
    for seed in range(12):
        drawn = asyncio.run(
            sampler.sample(
                searching, SamplingParams(temperature=1.0, max_tokens=24, stop=STOPS, seed=seed)
            )
        )
        kind = drawn.meta["stop_type"]
        text = tokenizer.decode(drawn.ids)
        if kind == "word":
            assert drawn.finish_reason == "stop"
            assert drawn.meta["stop_string"] == "</search>"
            assert "</search>" in text  # the stop string's tokens are in ids
            assert math.isnan(drawn.logprobs[-1])  # llama.cpp drops their probabilities
        elif kind == "eos":
            assert drawn.finish_reason == "stop"
            assert drawn.ids[-1] == end_of_turn  # the end-of-turn token is in ids
            assert not math.isnan(drawn.logprobs[-1])
        seen.add(kind)
        if {"word", "eos"} <= seen:
            break
    assert "word" in seen

    short = chat_ids(tokenizer, "Tell me a long story about a dragon.")
    drawn = asyncio.run(
        sampler.sample(short, SamplingParams(temperature=1.0, max_tokens=3, seed=1))
    )
    assert drawn.finish_reason == "length" and len(drawn.ids) == 3
    for seed in range(8):  # an end-of-turn token, if the search prompt did not give one
        if "eos" in seen:
            break
        drawn = asyncio.run(
            sampler.sample(
                chat_ids(tokenizer, "Reply with the single word yes."),
                SamplingParams(temperature=1.0, max_tokens=24, seed=seed),
            )
        )
        if drawn.meta["stop_type"] == "eos":
            assert drawn.ids[-1] == end_of_turn and drawn.finish_reason == "stop"
            seen.add("eos")
    assert "eos" in seen


def test_bad_requests_raise_clear_errors(sampler, tokenizer):
    prompt = chat_ids(tokenizer, QUESTION)
    params = SamplingParams(temperature=1.0, max_tokens=4)
    with pytest.raises(LLMError, match="exceeds the available context size"):
        asyncio.run(sampler.sample(prompt * (2048 // len(prompt) + 1), params))
    with pytest.raises(LLMError, match=r"prompt_ids\[1\].*not a token id"):
        asyncio.run(sampler.sample([1, sampler.vocab_size], params))
    with pytest.raises(ConfigError, match="top_p"):
        asyncio.run(sampler.sample(prompt, SamplingParams(top_p=0.9)))
    with pytest.raises(ConfigError, match="q8_0"):
        LlamaCppSampler(sampler.model_dir, work_dir=sampler.work_dir, dtype="q8_0")

    async def answered(handler, cap: int = 4096):
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            return await sampler._post(client, {}, cap)

    huge = httpx.Response(200, content=b"[" + b"1," * 10_000 + b"1]")
    with pytest.raises(LLMError, match="over 4096 bytes"):
        asyncio.run(answered(lambda request: huge))
    hostile = httpx.Response(500, content=b'{"error": {"message": "bad \\ud800\\u0007 thing"}}')
    with pytest.raises(LLMError, match=r"HTTP 500: bad \S thing") as caught:
        asyncio.run(answered(lambda request: hostile))
    str(caught.value).encode("utf-8")  # no lone surrogate, no control character
    with pytest.raises(LLMError, match="tokens"):
        sampler._parse({"tokens": [1, "x"], "stop_type": "eos"}, params, 0, 0.0)


def test_align_logprobs_by_id():
    # llama.cpp keeps one entry per completed UTF-8 character and none for stop-string tokens
    tokens = [10, 20, 21, 30, 40, 41, 42]
    entries = [{"id": 10, "logprob": -1.0}, {"id": 21, "prob": 0.5}, {"id": 30, "logprob": -2.0}]
    out = align_logprobs(tokens, entries)
    assert out[0] == -1.0 and out[2] == pytest.approx(math.log(0.5)) and out[3] == -2.0
    assert [math.isnan(v) for v in out] == [False, True, False, False, True, True, True]
    assert all(math.isnan(v) for v in align_logprobs([1, 2], [{"id": 3, "logprob": -1.0}]))


@pytest.mark.slow
def test_sync_weights_serves_the_new_weights(smollm2_dir, tokenizer, hf_model, tmp_path):
    from transformers import AutoModelForCausalLM

    trained = AutoModelForCausalLM.from_pretrained(smollm2_dir, dtype=torch.float32).eval()
    with torch.no_grad():  # a visible step: the tied embedding / lm_head gets noise
        weight = trained.model.embed_tokens.weight
        weight.add_(torch.randn(weight.shape, generator=torch.Generator().manual_seed(0)) * 0.02)
    sampler = LlamaCppSampler(smollm2_dir, work_dir=tmp_path, parallel=2, ctx_size=1024, threads=1)
    try:
        seconds = sampler.sync_weights(trained)
        assert set(sampler.last_sync) == {"save_s", "export_s", "restart_s"}
        assert seconds == pytest.approx(sum(sampler.last_sync.values()), rel=0.01)
        assert (tmp_path / "weights" / "tokenizer.json").is_file()
        prompt = chat_ids(tokenizer, QUESTION)
        params = params_for(range(2))
        drawn = draw(sampler, [prompt] * 2, params)
        new, old = [], []
        for x in drawn:
            (one,) = gaps(trained, len(prompt), prompt + x.ids, [(len(prompt), x)])
            (two,) = gaps(hf_model, len(prompt), prompt + x.ids, [(len(prompt), x)])
            new, old = new + one, old + two
        new_gap, old_gap = sum(new) / len(new), sum(old) / len(old)
        assert new_gap < MAX_GAP
        assert old_gap > 5 * new_gap and old_gap > 0.05, (new_gap, old_gap)
        assert sampler.describe()["syncs"] == 1

        sampler._server.close()  # the server dies under the sampler
        with pytest.raises(LLMError, match="cannot connect"):
            asyncio.run(sampler.sample(prompt, params[0]))
        asyncio.run(sampler.aclose())
        with pytest.raises(LLMError, match="sampler is closed"):
            asyncio.run(sampler.sample(prompt, params[0]))
    finally:
        sampler.close()

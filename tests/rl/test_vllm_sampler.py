"""The ``vllm`` sampler against a server speaking vLLM's ``/v1/completions`` token-id wire format.

vLLM needs CUDA and cannot be installed here, so the server is a stand-in on 127.0.0.1 that
answers in the format TRL 1.16's ``VLLMClient`` reads (``token_ids``, ``logprobs.tokens`` as
``token_id:N``, ``finish_reason``), decoding with the real tiny policy (the hf sampler behind
it), so the tokens and log-probabilities are a real model's.
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest

from searchprime.errors import ConfigError, LLMError
from searchprime.llm.base import SamplingParams
from searchprime.rl.vllm_sampler import VLLMSampler, parse_choice, request_body

from .test_episode import _run, search, tok  # noqa: F401  (fixtures)


class VLLMWire:
    """``GET /v1/models`` and ``POST /v1/completions`` over a live token sampler; ``script``
    lists replies to send instead for the first requests (``500``, ``"garbage"``)."""

    def __init__(self, sampler, tokenizer, script=()):
        self.sampler, self.tok, self.script = sampler, tokenizer, list(script)
        self.bodies: list[dict] = []
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        wire = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _send(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if self.path == "/v1/models":
                    self._send(200, json.dumps({"data": [{"id": "policy"}]}).encode())
                else:
                    self._send(404, b"{}")

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                wire.bodies.append(body)
                if wire.script:
                    fault = wire.script.pop(0)
                    if fault == 500:
                        return self._send(500, b'{"error": "engine busy"}')
                    return self._send(200, b'{"choices": [{"token_ids": "nope"}]}')
                self._send(200, json.dumps(wire.complete(body)).encode())

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def complete(self, body: dict) -> dict:
        assert body["model"] == "policy" and body["return_token_ids"] is True
        params = SamplingParams(
            max_tokens=body["max_tokens"],
            temperature=body["temperature"],
            stop=body.get("stop") or [],
            seed=body.get("seed"),
        )
        got = asyncio.run_coroutine_threadsafe(
            self.sampler.sample(body["prompt"], params), self.loop
        ).result(120)
        return {
            "choices": [
                {
                    "index": 0,
                    "text": self.tok.decode(got.ids),
                    "prompt_token_ids": body["prompt"],
                    "token_ids": got.ids,
                    "finish_reason": got.finish_reason,
                    "logprobs": {
                        "tokens": [f"token_id:{i}" for i in got.ids],
                        "token_logprobs": got.logprobs,
                        "top_logprobs": [
                            {f"token_id:{i}": lp}
                            for i, lp in zip(got.ids, got.logprobs, strict=True)
                        ],
                    },
                }
            ]
        }

    def close(self) -> None:
        self.server.shutdown()
        asyncio.run_coroutine_threadsafe(self.sampler.aclose(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)


@pytest.fixture(scope="module")
def policy(toy):
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    return AutoModelForCausalLM.from_pretrained(str(toy.model), dtype=torch.float32)


def test_episode_through_the_vllm_wire_matches_the_trainer(toy, tok, search, policy):  # noqa: F811
    """A whole multi-turn episode sampled over HTTP: every request is a token-id prompt that
    extends the last, and the logprobs equal the trainer's teacher-forced ones."""
    from searchprime.rl.hf_sampler import HFSampler
    from searchprime.rl.logprobs import sequence_logprobs

    wire = VLLMWire(HFSampler(policy, tok, max_batch=4), tok)
    try:
        sampler = VLLMSampler(wire.url, vocab_size=len(tok))
        llm, traj = _run(toy, tok, search, sampler, max_turns=3)
        assert sampler.model == "policy" and sampler.describe()["base_url"] == wire.url
        asyncio.run(sampler.aclose())
    finally:
        wire.close()
    seq = llm.tokens()
    assert len(traj.turns) >= 2 and seq.broken is None
    prompts = [b["prompt"] for b in wire.bodies]
    full = seq.prompt_ids + seq.completion_ids
    assert all(p == full[: len(p)] for p in prompts)  # token ids in, never re-tokenized text
    body = wire.bodies[0]
    assert (body["top_p"], body["top_k"], body["min_p"], body["logprobs"]) == (1.0, 0, 0.0, 0)
    assert body["include_stop_str_in_output"] is True and body["stop"]
    trainer = sequence_logprobs(policy, full, len(seq.prompt_ids))
    gaps = [
        abs(a - b)
        for a, b, m in zip(trainer, seq.logprobs, seq.env_mask, strict=True)
        if m == 1 and not math.isnan(b)
    ]
    assert len(gaps) >= 10 and max(gaps) < 1e-4


def test_retries_then_reports_a_masked_error(toy, tok, policy):  # noqa: F811
    from searchprime.rl.hf_sampler import HFSampler

    params = SamplingParams(max_tokens=4, temperature=1.0, seed=3)
    wire = VLLMWire(HFSampler(policy, tok, max_batch=4), tok, script=[500, "garbage"])
    try:
        sampler = VLLMSampler(wire.url, "policy", retries=2, backoff_s=0.01)
        got = asyncio.run(sampler.sample([1, 2, 3], params))  # 500, garbage, then an answer
        assert len(got.ids) >= 1 and len(got.logprobs) == len(got.ids)
        wire.script = [500, 500, 500]
        with pytest.raises(LLMError) as info:
            asyncio.run(sampler.sample([1, 2, 3], params))
        assert "failed after 3 attempts: HTTP 500" in str(info.value)
        assert "engine busy" in str(info.value)  # the server's own words, on one line
    finally:
        wire.close()
    gone = VLLMSampler("http://127.0.0.1:9", "policy", retries=0)
    with pytest.raises(LLMError, match="vllm-serve"):
        asyncio.run(gone.sample([1], params))


def test_reply_parsing_is_strict_about_ids_and_lenient_about_logprobs() -> None:
    from searchprime._http.retry import BadReply

    ok = {
        "choices": [
            {
                "token_ids": [5, 6, 7],
                "finish_reason": "length",
                "logprobs": {"tokens": ["token_id:5", "token_id:9"], "token_logprobs": [-0.5, -1]},
            }
        ]
    }
    got = parse_choice(ok, vocab_size=10)
    assert got.ids == [5, 6, 7] and got.finish_reason == "length"
    assert got.logprobs[0] == -0.5 and math.isnan(got.logprobs[1]) and math.isnan(got.logprobs[2])
    assert got.meta["missing_logprobs"] == 2
    for bad in ({"choices": []}, [], {"choices": [{"token_ids": [1, "x"]}]}):
        with pytest.raises(BadReply):
            parse_choice(bad)
    with pytest.raises(BadReply, match="beyond the vocabulary"):
        parse_choice({"choices": [{"token_ids": [10]}]}, vocab_size=10)
    body = request_body([1, 2], SamplingParams(max_tokens=8, stop=["</search>"], seed=4), "m")
    assert body["prompt"] == [1, 2] and body["stop"] == ["</search>"] and body["seed"] == 4
    with pytest.raises(LLMError, match="top_p must be 1"):
        request_body([1], SamplingParams(top_p=0.9), "m")


def test_run_config_picks_the_server() -> None:
    from searchprime.rl.grpo import _vllm_sampler

    cfg = SimpleNamespace(sampler=SimpleNamespace(url=None, served_model=None))
    args = SimpleNamespace(
        vllm_mode="server", vllm_server_base_url=None, vllm_server_host="10.0.0.7",
        vllm_server_port=8010,
    )  # fmt: skip
    assert _vllm_sampler(cfg, args, None).base_url == "http://10.0.0.7:8010"
    cfg.sampler.url = "http://gpu7:9000/"
    assert _vllm_sampler(cfg, args, None).base_url == "http://gpu7:9000"


def test_the_vllm_sampler_gets_server_mode_and_colocate_is_refused_at_load(tmp_path) -> None:
    """TRL's default vllm_mode is colocate, which has no server for the agent loop to call: a
    `train rl` YAML with the vllm sampler gets server mode, and an explicit colocate is
    refused when the YAML loads, naming the field (not when the run starts)."""
    from searchprime.config import load_config
    from searchprime.rl.config import RLRunConfig

    path = tmp_path / "rl.yaml"
    base = "model: m\ntasks: t\noutput_dir: o\nsearch: {kind: bm25, path: i}\n"
    path.write_text(base + "sampler: {kind: vllm}\n")
    assert load_config(RLRunConfig, path).trl["vllm_mode"] == "server"
    path.write_text(base + "sampler: {kind: vllm}\ntrl: {vllm_mode: colocate}\n")
    with pytest.raises(ConfigError, match=r"rl.yaml: .*trl.vllm_mode 'colocate' has no server"):
        load_config(RLRunConfig, path)
    path.write_text(base + "trl: {vllm_mode: colocate}\n")  # the hf sampler ignores it
    assert load_config(RLRunConfig, path).trl == {"vllm_mode": "colocate"}

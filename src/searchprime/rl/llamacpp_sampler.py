"""A :class:`~searchprime.rl.sampler.TokenSampler` on llama.cpp's server, fed the trainer's weights.

The policy (a Hugging Face Llama folder) is exported to an f16 GGUF in ``work_dir`` and served by
:class:`~searchprime.llm.serve.GGUFServer`; :meth:`LlamaCppSampler.sync_weights` saves the
trainer's live model, re-exports and restarts the server (a fresh server also drops the KV cache
of the old weights). Each :meth:`~LlamaCppSampler.sample` is one non-streaming ``POST /completion``
with ``prompt`` as token ids, ``samplers: ["temperature"]`` (plus ``top_k 0, top_p 1, min_p 0``
overriding llama.cpp's 40 / 0.95 / 0.05: the trainer scores the full distribution), ``n_probs 1``,
``return_tokens`` and ``cache_prompt`` (multi-turn prompts reuse their slot's KV cache).

What llama.cpp sends back, and how it is read, is noted in :mod:`searchprime.rl.llamacpp_wire`;
saving the live model for export is :mod:`searchprime.rl.llamacpp_weights`. Also measured:

- The same seed may draw a different sequence when the prompt's KV cache is reused (a prompt
  evaluated in one batch vs. one token at a time differs in the last bits).
- The KV cache is reused across turns while the episode's slot still holds it: a second turn
  sent right after the first reused prompt + all but the last sampled token (90 of 140 tokens);
  with 4 episodes over 2 slots only the shared first prompt was reused (67 of ~138).

Measured against fp32 transformers (:func:`~searchprime.rl.logprobs.sequence_logprobs`, one
forward over the stitched episode), f16, 8 two-turn episodes of <= 24 tokens a turn: mean |Δ|
0.0034 (max 0.022) on 169 first-turn tokens, 0.0034 (max 0.024) on 192 second-turn tokens;
T = 0.7: 0.0031, T = 0.4: 0.0013. After ``sync_weights`` of a model whose tied embedding got
N(0, 0.02) noise: 0.0029 against the new weights, 0.59 against the old. A sync took 8.5-10.2 s:
``save_pretrained`` 0.5-1.0 s, f16 export 6.9-7.5 s, restart 1.1-1.7 s (2 shared cores, load
3-4). q8_0 is refused (a gap of 0.34, /work/shared/RL.md).
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import AsyncIterator
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from searchprime.errors import ConfigError, LLMError
from searchprime.llm.base import SamplingParams
from searchprime.rl.llamacpp_weights import check_dtype, read_vocab_size, save_weights
from searchprime.rl.llamacpp_wire import (
    SEED_SPACE,
    align_logprobs,
    excerpt,
    parse_completion,
    request_body,
    server_error,
)
from searchprime.rl.sampler import Sampled

__all__ = ["LlamaCppSampler", "align_logprobs"]

#: KV-cache tokens per slot when ``ctx_size`` is not given.
CTX_PER_SLOT = 4096


async def _owned(client: httpx.AsyncClient) -> AsyncIterator[None]:
    """Keep ``client`` open until closed; ``asyncio.run`` finalises this at loop end, closing
    the sockets of a client nobody ``aclose()``-d inside its own loop."""
    try:
        yield
    finally:
        await client.aclose()


class LlamaCppSampler:
    """Samples token ids with llama.cpp from the policy in ``model_dir``; see the module notes.

    Args:
        model_dir: the policy as a Hugging Face Llama folder (``config.json`` + safetensors).
        work_dir: where the GGUF (``policy.<dtype>.gguf``) and synced weights (``weights/``) go.
        parallel: server slots, and the most requests in flight from this sampler.
        ctx_size: KV-cache tokens shared by the slots (default ``4096 * parallel``); one
            request may use all of them.
        threads: llama.cpp decoding threads (``None``: all cores; on a busy shared CPU fewer
            are faster, see :class:`~searchprime.llm.serve.GGUFServer`).
        dtype: GGUF weight type, ``"f16"`` (default) or ``"f32"``.
        timeout_s: longest wait for one request.
    """

    def __init__(
        self,
        model_dir: str | Path,
        *,
        work_dir: str | Path,
        parallel: int = 8,
        ctx_size: int | None = None,
        threads: int | None = None,
        dtype: str = "f16",
        timeout_s: float = 600.0,
    ):
        check_dtype(dtype)
        if parallel < 1:
            raise ConfigError(f"parallel: must be >= 1, got {parallel}")
        if not timeout_s > 0:
            raise ConfigError(f"timeout_s: must be > 0, got {timeout_s}")
        self.model_dir = Path(model_dir)
        self.vocab_size = read_vocab_size(self.model_dir)
        self.work_dir = Path(work_dir)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.parallel = parallel
        self.ctx_size = ctx_size if ctx_size is not None else CTX_PER_SLOT * parallel
        self.threads = threads
        self.dtype = dtype
        self.timeout_s = float(timeout_s)
        self.name = f"llamacpp:{self.model_dir.name}"
        self.gguf_path = self.work_dir / f"policy.{dtype}.gguf"
        self.syncs = 0
        self.last_sync: dict[str, float] = {}
        self._tokenizer_copied = False
        self._closed = False
        self._server: Any = None
        self._root_url = ""
        self._client: httpx.AsyncClient | None = None
        self._client_owner: Any = None
        self._client_loop: asyncio.AbstractEventLoop | None = None
        self._slots: asyncio.Semaphore | None = None
        self._rng = random.SystemRandom()

        from searchprime.train.gguf_export import export_gguf

        start = time.perf_counter()
        export_gguf(self.model_dir, self.gguf_path, dtype=dtype)  # type: ignore[arg-type]
        exported = time.perf_counter()
        self._start_server()
        self.startup = {
            "export_s": exported - start,
            "start_s": time.perf_counter() - exported,
        }

    # ------------------------------------------------------------------ server
    def _start_server(self) -> None:
        from searchprime.llm.serve import GGUFServer

        self._server = GGUFServer(
            self.gguf_path,
            parallel=self.parallel,
            ctx_size=self.ctx_size,
            threads=self.threads,
        )
        self._root_url = self._server.root_url

    def _stop_server(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()

    # ------------------------------------------------------------------ HTTP
    async def _session(self) -> tuple[httpx.AsyncClient, asyncio.Semaphore]:
        """This event loop's client and slot semaphore (a client cannot outlive its loop, and
        a trainer may run each step's rollout in a fresh ``asyncio.run``)."""
        loop = asyncio.get_running_loop()
        if self._client is not None and self._client_loop is loop and self._slots is not None:
            return self._client, self._slots
        old = self._client_owner
        client = httpx.AsyncClient(
            timeout=httpx.Timeout(self.timeout_s, connect=10.0),
            limits=httpx.Limits(max_connections=self.parallel),
            trust_env=False,  # a proxy from the environment must never see 127.0.0.1 traffic
        )
        owner = _owned(client)
        await owner.__anext__()
        self._client, self._client_owner, self._client_loop = client, owner, loop
        self._slots = asyncio.Semaphore(self.parallel)
        if old is not None:
            await _close_owner(old)
        return client, self._slots

    def _body(self, prompt_ids: list[int], params: SamplingParams, seed: int) -> dict[str, Any]:
        return request_body(prompt_ids, params, seed, name=self.name, vocab_size=self.vocab_size)

    async def _post(self, client: httpx.AsyncClient, body: dict[str, Any], cap: int) -> Any:
        url = f"{self._root_url}/completion"
        try:
            async with client.stream("POST", url, json=body) as response:
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > cap:
                        raise LLMError(
                            f"{self.name}: POST {url}: response over {cap} bytes, refused"
                        )
                    chunks.append(chunk)
                status = response.status_code
        except httpx.TimeoutException as exc:
            raise LLMError(
                f"{self.name}: POST {url}: no answer within {self.timeout_s:g} s"
            ) from exc
        except httpx.ConnectError as exc:
            raise LLMError(
                f"{self.name}: POST {url}: cannot connect (is the llama.cpp server running?)"
            ) from exc
        except httpx.HTTPError as exc:
            raise LLMError(
                f"{self.name}: POST {url}: {type(exc).__name__}: {excerpt(str(exc))}"
            ) from exc
        raw = b"".join(chunks)
        if status != 200:
            raise LLMError(f"{self.name}: POST {url}: HTTP {status}: {server_error(raw)}")
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise LLMError(
                f"{self.name}: POST {url}: response is not JSON: {excerpt(raw)}"
            ) from exc

    # ------------------------------------------------------------------ TokenSampler
    async def sample(self, prompt_ids: list[int], params: SamplingParams) -> Sampled:
        """Sample one continuation of ``prompt_ids``; raises :class:`LLMError` on failure."""
        if self._closed:
            raise LLMError(f"{self.name}: sampler is closed")
        seed = (
            params.seed % SEED_SPACE if params.seed is not None else self._rng.randrange(SEED_SPACE)
        )
        body = self._body(prompt_ids, params, seed)
        # generous for ~250 bytes of JSON per token; bounds what a broken server can send
        cap = 65536 + 2048 * params.max_tokens
        client, slots = await self._session()
        async with slots:
            if self._server is None:
                raise LLMError(f"{self.name}: no llama.cpp server running (closed or failed)")
            start = time.perf_counter()
            data = await self._post(client, body, cap)
            latency = time.perf_counter() - start
        return self._parse(data, params, seed, latency)

    def _parse(self, data: Any, params: SamplingParams, seed: int, latency: float) -> Sampled:
        return parse_completion(
            data, params, seed, latency, name=self.name, vocab_size=self.vocab_size
        )

    def sync_weights(self, model: Any) -> float:
        """Serve ``model``'s current weights: save, export GGUF, restart; return seconds.

        ``model`` is the trainer's live ``transformers`` Llama model. The parts are timed in
        ``self.last_sync`` (``save_s``, ``export_s``, ``restart_s``).
        """
        if self._closed:
            raise LLMError(f"{self.name}: sampler is closed")
        from searchprime.train.gguf_export import export_gguf

        weights = self.work_dir / "weights"
        start = time.perf_counter()
        save_weights(model, weights, None if self._tokenizer_copied else self.model_dir)
        self._tokenizer_copied = True
        saved = time.perf_counter()
        export_gguf(weights, self.gguf_path, dtype=self.dtype)  # type: ignore[arg-type]
        exported = time.perf_counter()
        self._stop_server()
        self._start_server()
        done = time.perf_counter()
        self.syncs += 1
        self.last_sync = {
            "save_s": saved - start,
            "export_s": exported - saved,
            "restart_s": done - exported,
        }
        return done - start

    def describe(self) -> dict[str, Any]:
        """Settings to record with each trajectory."""
        return {
            "sampler": "llamacpp",
            "server": "llama.cpp (xllamacpp)",
            "model_dir": str(self.model_dir),
            "gguf": str(self.gguf_path),
            "dtype": self.dtype,
            "parallel": self.parallel,
            "ctx_size": self.ctx_size,
            "threads": self.threads,
            "syncs": self.syncs,
            "last_sync": dict(self.last_sync),
        }

    async def aclose(self) -> None:
        """Close the HTTP client and stop the server (idempotent)."""
        owner, self._client_owner = self._client_owner, None
        self._client = self._client_loop = self._slots = None
        if owner is not None:
            await _close_owner(owner)
        self.close()

    def close(self) -> None:
        """Stop the server (idempotent); a client left in a running loop closes with it."""
        self._closed = True
        self._stop_server()

    def __enter__(self) -> LlamaCppSampler:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"serving {self._root_url}"
        return f"LlamaCppSampler({str(self.model_dir)!r}, {state})"


async def _close_owner(owner: Any) -> None:
    """Close a client through its :func:`_owned` generator from whatever loop is running."""
    try:
        await owner.aclose()
    except (RuntimeError, OSError, httpx.HTTPError):  # its event loop is gone: nothing to close
        pass

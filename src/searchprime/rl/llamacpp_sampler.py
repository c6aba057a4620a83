"""A :class:`~searchprime.rl.sampler.TokenSampler` on llama.cpp's server, fed the trainer's weights.

The policy (a Hugging Face Llama folder) is exported to an f16 GGUF in ``work_dir`` and served by
:class:`~searchprime.llm.serve.GGUFServer`; :meth:`LlamaCppSampler.sync_weights` saves the
trainer's live model, re-exports and restarts the server (a fresh server also drops the KV cache
of the old weights). Each :meth:`~LlamaCppSampler.sample` is one non-streaming ``POST /completion``
with ``prompt`` as token ids, ``samplers: ["temperature"]`` (plus ``top_k 0, top_p 1, min_p 0``
overriding llama.cpp's 40 / 0.95 / 0.05: the trainer scores the full distribution), ``n_probs 1``,
``return_tokens`` and ``cache_prompt`` (multi-turn prompts reuse their slot's KV cache).

What llama.cpp (xllamacpp 2026.10.11549) returns, measured on SmolLM2-135M:

- ``tokens`` holds every sampled id: the end-of-turn token (``<|im_end|>``, id 2) when it ended
  the turn, and every token of a matched stop string (``</search>`` -> ``</`` ``search`` ``>``),
  with ``len(tokens) == tokens_predicted``. It is used as is: ``Sampled.ids``.
- ``completion_probabilities`` (non-streaming) drops the stop string's tokens (it cuts as many
  entries as the stop string tokenizes to; the whole field is absent when only the stop string
  was sampled) and gives one entry for a UTF-8 character split over several tokens (the id of
  the token that completes it, the bytes of the whole character). Entries are matched to
  ``tokens`` by id in order; unmatched tokens get NaN (``meta["missing_logprobs"]``).
- Streaming (``stream: true``) would give a probability for each stop-string token, but its
  chunks silently drop the ids of tokens that end inside a UTF-8 character (a Chinese or emoji
  continuation lost 1-3 ids per character): exact ids matter more, so this module does not stream.
- Without ``post_sampling_probs`` the probabilities are the raw softmax (temperature 1) whatever
  the temperature: at T = 0.7 the mean |Δ| to the trainer's tempered log-probs was 0.32 (max 4.0).
  With it they are the sampling distribution (mean |Δ| 0.003 at T = 0.7 and 0.4), but decoding
  is ~15% slower (62 vs 75 tok/s), so it is sent only when T != 1; at T = 1 both are the same
  distribution (mean |Δ| to the trainer 0.0030 without, 0.0024 with). At T = 0 (greedy) every
  logprob is 0.0.
- When the context fills during decoding the server ends with ``stop_type: "limit"`` and
  ``truncated: true`` (finish ``"length"``, ``meta["context_full"]``); a prompt that does not fit
  is refused with HTTP 400, raised as :class:`~searchprime.errors.LLMError`.
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
import inspect
import json
import math
import random
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from searchprime.errors import ConfigError, LLMError
from searchprime.llm.base import SamplingParams
from searchprime.rl.sampler import Sampled

__all__ = ["LlamaCppSampler", "align_logprobs"]

#: GGUF weight types usable for sampling (q8_0 measured unusable: gap 0.34).
DTYPES = ("f16", "f32")
#: Files copied from ``model_dir`` next to the saved weights, so ``work_dir/weights`` is a
#: complete HF folder (``save_pretrained`` writes config, generation config and weights).
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "vocab.json",
    "merges.txt",
    "tokenizer.model",
)
#: KV-cache tokens per slot when ``ctx_size`` is not given.
CTX_PER_SLOT = 4096
#: Fields asked of the server (the full answer also echoes the prompt text and settings).
RESPONSE_FIELDS = [
    "tokens",
    "completion_probabilities",
    "stop_type",
    "stopping_word",
    "tokens_predicted",
    "tokens_evaluated",
    "truncated",
    "timings/cache_n",
]
_EXCERPT_CHARS = 300
_SEED_SPACE = 2**32 - 1  # llama.cpp seeds are uint32; 0xFFFFFFFF means "random"


def _excerpt(text: str | bytes) -> str:
    """A short, printable, single-line excerpt of server text (which may be hostile)."""
    if isinstance(text, bytes):
        text = text[: 4 * _EXCERPT_CHARS].decode("utf-8", errors="replace")
    text = text[: 4 * _EXCERPT_CHARS].encode("utf-8", errors="replace").decode("utf-8")
    text = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    return text[:_EXCERPT_CHARS]


def _server_error(raw: bytes) -> str:
    """llama.cpp's ``{"error": {"message": ...}}`` message, or an excerpt of the body."""
    try:
        message = json.loads(raw)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return _excerpt(raw)
    return _excerpt(str(message))


def _entry_logprob(entry: dict[str, Any]) -> float:
    """The log-probability in one ``completion_probabilities`` entry (NaN if unusable)."""
    value = entry.get("logprob")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = float(value)
        return value if math.isfinite(value) and value <= 1e-6 else math.nan
    prob = entry.get("prob")
    if isinstance(prob, (int, float)) and not isinstance(prob, bool) and 0.0 < prob <= 1.0 + 1e-6:
        return min(math.log(prob), 0.0)
    return math.nan


def align_logprobs(tokens: list[int], entries: list[Any]) -> list[float]:
    """Each token's log-probability from the entries llama.cpp kept, matched by id in order.

    Entries are a subsequence of ``tokens`` (missing: stop-string tokens, leading pieces of a
    split UTF-8 character); tokens without an entry get NaN. If the entries are not a
    subsequence, every value is NaN rather than risk shifted values.
    """
    out = [math.nan] * len(tokens)
    j = 0
    for i, token in enumerate(tokens):
        if j < len(entries) and isinstance(entries[j], dict) and entries[j].get("id") == token:
            out[i] = _entry_logprob(entries[j])
            j += 1
    if j != len(entries):
        return [math.nan] * len(tokens)
    return out


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
        if dtype == "q8_0":
            raise ConfigError(
                "dtype: q8_0 is not usable as an RL sampler (its logprobs are 0.34 off the "
                "trainer's, /work/shared/RL.md); use f16"
            )
        if dtype not in DTYPES:
            raise ConfigError(f"dtype: must be one of {', '.join(DTYPES)}, got {dtype!r}")
        if parallel < 1:
            raise ConfigError(f"parallel: must be >= 1, got {parallel}")
        if not timeout_s > 0:
            raise ConfigError(f"timeout_s: must be > 0, got {timeout_s}")
        self.model_dir = Path(model_dir)
        config_path = self.model_dir / "config.json"
        try:
            config = json.loads(config_path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"{config_path}: cannot read HF config ({exc.strerror})") from exc
        except ValueError as exc:
            raise ConfigError(f"{config_path}: not valid JSON ({exc})") from exc
        vocab = config.get("vocab_size") if isinstance(config, dict) else None
        if not isinstance(vocab, int) or vocab < 1:
            raise ConfigError(f"{config_path}: vocab_size: missing or not a positive integer")
        self.vocab_size = vocab
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
        if params.top_p != 1.0:
            raise ConfigError(
                f"top_p: the RL sampler draws from the full distribution, got {params.top_p}"
            )
        if not prompt_ids:
            raise LLMError(f"{self.name}: prompt_ids is empty")
        for i, token in enumerate(prompt_ids):
            if type(token) is not int or not 0 <= token < self.vocab_size:
                raise LLMError(
                    f"{self.name}: prompt_ids[{i}]: {token!r} is not a token id "
                    f"(0..{self.vocab_size - 1})"
                )
        body: dict[str, Any] = {
            "prompt": list(prompt_ids),
            "n_predict": params.max_tokens,
            "temperature": params.temperature,
            "samplers": ["temperature"],
            "top_k": 0,
            "top_p": 1.0,
            "min_p": 0.0,
            "stop": [s for s in params.stop if s],
            "seed": seed,
            "n_probs": 1,
            "return_tokens": True,
            "cache_prompt": True,
            "response_fields": RESPONSE_FIELDS,
        }
        if params.temperature != 1.0:
            body["post_sampling_probs"] = True
        return body

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
                f"{self.name}: POST {url}: {type(exc).__name__}: {_excerpt(str(exc))}"
            ) from exc
        raw = b"".join(chunks)
        if status != 200:
            raise LLMError(f"{self.name}: POST {url}: HTTP {status}: {_server_error(raw)}")
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise LLMError(
                f"{self.name}: POST {url}: response is not JSON: {_excerpt(raw)}"
            ) from exc

    # ------------------------------------------------------------------ TokenSampler
    async def sample(self, prompt_ids: list[int], params: SamplingParams) -> Sampled:
        """Sample one continuation of ``prompt_ids``; raises :class:`LLMError` on failure."""
        if self._closed:
            raise LLMError(f"{self.name}: sampler is closed")
        seed = (
            params.seed % _SEED_SPACE
            if params.seed is not None
            else self._rng.randrange(_SEED_SPACE)
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
        where = f"{self.name}: /completion response"
        if not isinstance(data, dict):
            raise LLMError(f"{where}: not a JSON object")
        tokens = data.get("tokens")
        if not isinstance(tokens, list):
            raise LLMError(f"{where}: tokens: missing (server without return_tokens?)")
        for i, token in enumerate(tokens):
            if type(token) is not int or not 0 <= token < self.vocab_size:
                raise LLMError(f"{where}: tokens[{i}]: {_excerpt(repr(token))} is not a token id")
        if len(tokens) > params.max_tokens:
            raise LLMError(f"{where}: {len(tokens)} tokens for max_tokens={params.max_tokens}")
        predicted = data.get("tokens_predicted")
        if isinstance(predicted, int) and predicted != len(tokens):
            raise LLMError(f"{where}: {len(tokens)} token ids for {predicted} predicted tokens")
        stop_type = data.get("stop_type")
        if stop_type in ("eos", "word"):
            finish = "stop"
        elif stop_type == "limit":
            finish = "length"
        else:
            raise LLMError(f"{where}: stop_type: unexpected {_excerpt(repr(stop_type))}")
        entries = data.get("completion_probabilities") or []
        if not isinstance(entries, list):
            entries = []
        logprobs = align_logprobs(tokens, entries)
        stopping = data.get("stopping_word")
        cache = data.get("timings/cache_n")
        prompt_n = data.get("tokens_evaluated")
        meta: dict[str, Any] = {
            "stop_type": stop_type,
            "stop_string": stopping if stop_type == "word" and stopping in params.stop else None,
            "seed": seed,
            "missing_logprobs": sum(1 for v in logprobs if math.isnan(v)),
            "context_full": data.get("truncated") is True,
            "prompt_tokens": prompt_n if isinstance(prompt_n, int) else None,
            "cached_tokens": cache if isinstance(cache, int) else None,
            "latency_s": latency,
        }
        return Sampled(ids=list(tokens), logprobs=logprobs, finish_reason=finish, meta=meta)

    def sync_weights(self, model: Any) -> float:
        """Serve ``model``'s current weights: save, export GGUF, restart; return seconds.

        ``model`` is the trainer's live ``transformers`` Llama model. The parts are timed in
        ``self.last_sync`` (``save_s``, ``export_s``, ``restart_s``).
        """
        if self._closed:
            raise LLMError(f"{self.name}: sampler is closed")
        save = getattr(model, "save_pretrained", None)
        if not callable(save):
            raise ConfigError(f"sync_weights: {type(model).__name__} has no save_pretrained")
        from searchprime.train.gguf_export import export_gguf

        weights = self.work_dir / "weights"
        start = time.perf_counter()
        weights.mkdir(parents=True, exist_ok=True)
        # a stale shard from an earlier (sharded) save would be exported with the new weights
        for old in [*weights.glob("*.safetensors"), *weights.glob("*.safetensors.index.json")]:
            old.unlink()
        kwargs = {}
        if "safe_serialization" in inspect.signature(save).parameters:
            kwargs["safe_serialization"] = True  # transformers 4.x; 5.x always writes safetensors
        save(weights, **kwargs)
        if not self._tokenizer_copied:
            for name in TOKENIZER_FILES:
                if (self.model_dir / name).is_file():
                    shutil.copy2(self.model_dir / name, weights / name)
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

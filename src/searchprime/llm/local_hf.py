"""A local Hugging Face causal LM as an LLM, batching the requests of concurrent agents.

Concurrent ``complete`` calls are queued; a background asyncio task waits ``batch_wait_s`` after
the first request, takes up to ``max_batch`` of them and decodes them together in a worker
thread (so the event loop keeps running the agents' searches). The decoding loop is our own,
over the model's KV cache, so each row keeps its own sampling settings honestly:

- per-row ``temperature`` (0 = greedy), ``top_p``, ``max_tokens`` and stop strings;
- per-row ``torch.Generator`` seeded from ``params.seed``: a seeded request samples the same
  text whatever else shares its batch (up to float noise of padded matmuls);
- stop strings are matched on the decoded text; the text is cut right after the stop, which
  is kept (``Completion.text`` includes the closing tag), like EOS it ends the row;
- ``logprobs`` are the model's raw (temperature 1) log-probabilities of the sampled tokens.

Rows are left-padded; finished rows idle until the batch ends (static batching).
Models load from a HF folder or a GGUF file (``transformers`` dequantizes it; needs ``gguf``).
"""

from __future__ import annotations

import asyncio
import inspect
import os
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from searchprime.errors import ConfigError, LLMError, MissingExtraError

try:
    import torch
except ImportError as exc:  # pragma: no cover - depends on the install
    raise MissingExtraError("torch", "train") from exc

from searchprime._lazy import require
from searchprime.llm._hf_rows import Row, finish_row, sample_token
from searchprime.llm.base import Completion, SamplingParams
from searchprime.llm.tokens import (
    _split_gguf,
    chat_dicts,
    count_chat_tokens,
    load_tokenizer,
    render_chat,
)
from searchprime.records import Message

__all__ = ["LocalHF"]

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass
class _Request:
    messages: list[dict[str, str]]
    params: SamplingParams
    future: asyncio.Future
    enqueued: float = field(default_factory=time.perf_counter)
    #: A prompt given as token ids (RL samplers): used as is, and the result carries the
    #: sampled ids and logprobs at the sampling temperature.
    prompt_ids: list[int] | None = None


class LocalHF:
    """A local causal LM implementing the LLM protocol.

    Args:
        path: a HF model folder (or hub name), or a ``.gguf`` file.
        gguf_file: the GGUF file name inside ``path`` (when ``path`` is a folder).
        device: torch device, e.g. ``"cpu"`` or ``"cuda"``.
        max_batch: most requests decoded together.
        dtype: ``"float32"``, ``"bfloat16"``, ``"float16"`` or ``None`` (float32 on CPU,
            bfloat16 elsewhere).
        batch_wait_s: how long the batcher waits after the first request for others to join.
        threads: torch intra-op CPU threads (process-wide ``torch.set_num_threads``); on a
            busy machine fewer threads are much faster than oversubscribed ones.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        gguf_file: str | None = None,
        device: str = "cpu",
        max_batch: int = 16,
        dtype: str | None = None,
        batch_wait_s: float = 0.005,
        threads: int | None = None,
    ):
        if max_batch < 1:
            raise ConfigError(f"llm.max_batch: must be >= 1, got {max_batch}")
        if dtype is not None and dtype not in _DTYPES:
            raise ConfigError(f"llm.dtype: expected one of {sorted(_DTYPES)}, got {dtype!r}")
        transformers = require("transformers", "train")
        if threads is not None:
            torch.set_num_threads(max(1, threads))
        self.threads = threads
        source, gguf = _split_gguf(path, gguf_file)
        if not gguf and os.path.sep in source and not Path(source).exists():
            raise ConfigError(f"{source}: model folder not found")
        self.path = source
        self.gguf_file = gguf
        self.dtype = dtype or ("float32" if device == "cpu" else "bfloat16")
        self.tokenizer = load_tokenizer(source, gguf)
        try:
            model = transformers.AutoModelForCausalLM.from_pretrained(
                source, gguf_file=gguf, dtype=_DTYPES[self.dtype]
            )
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{source}: cannot load the model: {exc}") from exc
        self._setup(model.to(device).eval(), device, max_batch, batch_wait_s)
        self.name = f"local:{gguf or Path(source).name}"

    @classmethod
    def from_model(
        cls, model: Any, tokenizer: Any, *, max_batch: int = 16, batch_wait_s: float = 0.005
    ) -> LocalHF:
        """Decode with an already loaded model (e.g. the one an RL trainer is updating).

        The model is shared, not copied: every request sees its current weights.
        """
        self = cls.__new__(cls)
        self.threads = None
        self.path = str(getattr(model.config, "name_or_path", "") or "in-memory")
        self.gguf_file = None
        self.tokenizer = tokenizer
        device = str(next(model.parameters()).device)
        self.dtype = str(next(model.parameters()).dtype).removeprefix("torch.")
        self._setup(model, device, max_batch, batch_wait_s)
        self.name = f"local:{Path(self.path).name}"
        return self

    def _setup(self, model: Any, device: str, max_batch: int, batch_wait_s: float) -> None:
        self.model = model
        self.device = device
        self.max_batch = max_batch
        self.batch_wait_s = batch_wait_s
        self.max_context = int(getattr(model.config, "max_position_embeddings", 0) or 1 << 20)
        eos = model.generation_config.eos_token_id
        eos_ids = list(eos) if isinstance(eos, list) else [eos]
        if self.tokenizer.eos_token_id is not None:
            eos_ids.append(self.tokenizer.eos_token_id)
        self.eos_ids = {int(i) for i in eos_ids if i is not None}
        pad = self.tokenizer.pad_token_id
        self.pad_id = int(pad if pad is not None else min(self.eos_ids, default=0))
        forward_args = inspect.signature(self.model.forward).parameters
        self._cache_arg = "cache" if "cache" in forward_args else "past_key_values"
        self._logits_to_keep = "logits_to_keep" in forward_args
        self._rng = random.Random()
        self._queue: asyncio.Queue[_Request] | None = None
        self._worker: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._token_cache: OrderedDict[tuple, int] = OrderedDict()
        self._lock = threading.Lock()
        self.stats = {"requests": 0, "batches": 0, "max_batch_seen": 0}

    # ------------------------------------------------------------------ LLM protocol
    async def complete(self, messages: Sequence[Message], params: SamplingParams) -> Completion:
        """Queue one request; it is decoded with whatever else is pending."""
        return await self._submit(chat_dicts(messages), params)

    async def complete_ids(self, prompt_ids: list[int], params: SamplingParams) -> Completion:
        """Continue a prompt given as token ids (batched with everything else pending).

        ``Completion.meta["ids"]`` holds every sampled id (the end-of-turn token included) and
        ``logprobs`` their log-probabilities at ``params.temperature`` (not the raw ones).
        """
        return await self._submit([], params, prompt_ids=list(prompt_ids))

    async def _submit(
        self,
        messages: list[dict[str, str]],
        params: SamplingParams,
        prompt_ids: list[int] | None = None,
    ) -> Completion:
        """Queue one request for the batcher (started on this event loop if needed)."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._worker is None or self._worker.done():
            self._queue = asyncio.Queue()
            self._loop = loop
            self._worker = loop.create_task(self._batcher(self._queue))
        request = _Request(messages, params, loop.create_future(), prompt_ids=prompt_ids)
        assert self._queue is not None
        self.stats["requests"] += 1
        await self._queue.put(request)
        completion: Completion = await request.future
        completion.latency_s = time.perf_counter() - request.enqueued
        return completion

    def count_tokens(self, messages: Sequence[Message]) -> int:
        """Tokens of the chat-formatted messages, with the generation prompt (cached)."""
        key = tuple((m.role, m.content) for m in messages)
        with self._lock:
            if key in self._token_cache:
                return self._token_cache[key]
        count = count_chat_tokens(self.tokenizer, messages)
        with self._lock:
            self._token_cache[key] = count
            if len(self._token_cache) > 4096:
                self._token_cache.popitem(last=False)
        return count

    async def acount_tokens(self, messages: Sequence[Message]) -> int:
        """:meth:`count_tokens` in a worker thread (long histories take ms to tokenize)."""
        return await asyncio.to_thread(self.count_tokens, messages)

    def describe(self) -> dict[str, Any]:
        """The model and batching settings (recorded with each trajectory)."""
        return {
            "kind": "local",
            "path": self.path,
            "gguf_file": self.gguf_file,
            "device": self.device,
            "dtype": self.dtype,
            "max_batch": self.max_batch,
            "threads": self.threads,
            "max_context": self.max_context,
            "token_counting": "local Hugging Face tokenizer",
        }

    async def aclose(self) -> None:
        """Stop the batching task (the model stays loaded until this object is dropped)."""
        worker, self._worker = self._worker, None
        if worker is not None and not worker.done():
            worker.cancel()
            try:
                await worker
            except (asyncio.CancelledError, RuntimeError):
                pass

    def __repr__(self) -> str:
        return f"LocalHF({self.path!r}, gguf_file={self.gguf_file!r}, device={self.device!r})"

    # ------------------------------------------------------------------ batching
    async def _batcher(self, queue: asyncio.Queue[_Request]) -> None:
        while True:
            batch = [await queue.get()]
            if self.batch_wait_s > 0 and len(batch) < self.max_batch:
                await asyncio.sleep(self.batch_wait_s)
            while len(batch) < self.max_batch and not queue.empty():
                batch.append(queue.get_nowait())
            batch = [r for r in batch if not r.future.done()]
            if not batch:
                continue
            self.stats["batches"] += 1
            self.stats["max_batch_seen"] = max(self.stats["max_batch_seen"], len(batch))
            try:
                results = await asyncio.to_thread(self._generate, batch)
            except Exception as exc:  # noqa: BLE001 - handed to every waiting caller
                results = [LLMError(f"{self.name}: generation failed: {exc}")] * len(batch)
            for request, result in zip(batch, results, strict=True):
                if request.future.done():
                    continue
                if isinstance(result, BaseException):
                    request.future.set_exception(result)
                else:
                    request.future.set_result(result)

    # ------------------------------------------------------------------ decoding
    def _encode(self, messages: list[dict[str, str]]) -> list[int]:
        text = render_chat(self.tokenizer, messages, add_generation_prompt=True)
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _generator(self, params: SamplingParams) -> torch.Generator | None:
        if params.temperature == 0:
            return None
        seed = params.seed if params.seed is not None else self._rng.randrange(2**63)
        return torch.Generator(device=self.device).manual_seed(seed)

    @torch.inference_mode()
    def _generate(self, batch: list[_Request]) -> list[Completion | LLMError]:
        results: list[Completion | LLMError | None] = [None] * len(batch)
        rows: list[Row] = []
        prompts: list[list[int]] = []
        for i, request in enumerate(batch):
            by_ids = request.prompt_ids is not None
            ids = request.prompt_ids if by_ids else self._encode(request.messages)
            room = self.max_context - len(ids)
            if room < 1:
                results[i] = LLMError(
                    f"{self.name}: prompt of {len(ids)} tokens leaves no room in the model's "
                    f"context of {self.max_context}"
                )
                continue
            max_new = min(request.params.max_tokens, room)
            row = Row(i, len(ids), max_new, request.params, self._generator(request.params))
            row.tempered = by_ids
            rows.append(row)
            prompts.append(ids)
        if rows:
            self._decode(rows, prompts)
        for row in rows:
            results[row.index] = Completion(
                text=row.text,
                finish_reason=row.finish or "length",
                prompt_tokens=row.prompt_len,
                completion_tokens=row.generated,
                logprobs=row.logprobs if row.params.logprobs or row.tempered else None,
                meta={"ids": row.sampled} if row.tempered else {},
            )
        return results  # type: ignore[return-value]

    def _forward(
        self, ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor, cache: Any
    ) -> tuple[torch.Tensor, Any]:
        """Last-position logits and the updated KV cache (``cache=`` in transformers >= 5.x,
        ``past_key_values=`` before)."""
        kwargs: dict[str, Any] = {
            "input_ids": ids,
            "attention_mask": mask,
            "position_ids": positions,
        }
        kwargs[self._cache_arg] = cache
        if self._logits_to_keep:
            kwargs["logits_to_keep"] = 1
        out = self.model(use_cache=True, **kwargs)
        new_cache = getattr(out, "cache", None)
        if new_cache is None:
            new_cache = out.past_key_values
        return out.logits[:, -1, :].float(), new_cache

    def _decode(self, rows: list[Row], prompts: list[list[int]]) -> None:
        width = max(len(p) for p in prompts)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for b, prompt in enumerate(prompts):
            ids[b, width - len(prompt) :] = torch.tensor(prompt)
            mask[b, width - len(prompt) :] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        ids, mask, positions = ids.to(self.device), mask.to(self.device), positions.to(self.device)
        past = None
        want_logprobs = any(r.params.logprobs for r in rows)
        for _ in range(max(r.max_new for r in rows)):
            logits, past = self._forward(ids, mask, positions, past)
            logps = torch.log_softmax(logits, dim=-1) if want_logprobs else None
            next_ids = []
            for b, row in enumerate(rows):
                if row.finish is not None:
                    next_ids.append(self.pad_id)
                    continue
                token = sample_token(logits[b], row)
                if row.tempered:
                    t = row.params.temperature or 1.0
                    row.logprobs.append(float(torch.log_softmax(logits[b] / t, dim=-1)[token]))
                elif logps is not None and row.params.logprobs:
                    row.logprobs.append(float(logps[b, token]))
                finish_row(row, token, self.tokenizer, self.eos_ids)
                next_ids.append(token)
            if all(r.finish is not None for r in rows):
                break
            ids = torch.tensor(next_ids, dtype=torch.long, device=self.device).unsqueeze(1)
            mask = torch.cat([mask, torch.ones_like(ids)], dim=1)
            positions = positions[:, -1:] + 1
        for row in rows:
            if row.finish is None:
                row.finish = "length"
                row.text = self.tokenizer.decode(row.tokens, skip_special_tokens=True)

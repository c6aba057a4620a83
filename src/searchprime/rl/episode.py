"""One agent episode as one exact token sequence: the bridge from the agent loop to the trainer.

:class:`EpisodeLLM` implements the :class:`~searchprime.llm.base.LLM` protocol for
:func:`~searchprime.agent.loop.run_agent`, so RL runs the *same* loop, prompts, parser,
reminders and search backend as ``rollout``. Behind it a
:class:`~searchprime.rl.sampler.TokenSampler` samples token ids, and the episode keeps:

* ``prompt_ids``: the first model input (system + question), tokenized once;
* ``completion_ids``: everything after it, in order — the ids the policy sampled (kept as
  sampled, never re-tokenized: a re-tokenized text can split differently) and, between turns,
  the environment tokens (end of turn, the observation message, reminders, the next assistant
  header), which are the only text ever tokenized here;
* ``env_mask``: 1 for sampled tokens, 0 for environment tokens (zero gradient in the trainer);
* ``logprobs``: the sampler's log-probability of each sampled token, NaN for environment ones.

Each turn the chat template renders the loop's messages; the render must start with the text
of the sequence so far (previous render + the decoded sampled ids). One edit of the loop's is
expected: when the policy ends its turn with an action tag left open, the loop closes it, so
the closing text lands before the sampled end-of-turn token; that token then becomes an
environment token (``reopened``). Any other difference (a summary action rewrites the history)
stops the sequence there (``broken``): later turns still run, and the episode is trained on
what came before the break.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from searchprime.errors import LLMError
from searchprime.llm.base import Completion, SamplingParams
from searchprime.llm.tokens import render_chat
from searchprime.records import Message
from searchprime.rl.sampler import TokenSampler

__all__ = ["EpisodeLLM", "EpisodeTokens"]


@dataclass
class EpisodeTokens:
    """The trainer's view of one episode (TRL ``rollout_func`` row)."""

    prompt_ids: list[int]
    completion_ids: list[int]
    env_mask: list[int]
    logprobs: list[float]
    broken: str | None = None

    @property
    def policy_tokens(self) -> int:
        """Tokens the policy sampled (trained positions)."""
        return sum(self.env_mask)


class EpisodeLLM:
    """The agent loop's LLM for one episode, recording the token sequence it produces.

    Args:
        sampler: samples continuations of token ids.
        tokenizer: the policy's tokenizer (its chat template renders the messages).
        max_length: most prompt + completion tokens; a turn that would start past it fails
            as a context overflow (the loop ends the episode with ``context_limit``) and a turn
            samples at most the room left.
    """

    def __init__(self, sampler: TokenSampler, tokenizer: Any, *, max_length: int | None = None):
        self.sampler = sampler
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.name = sampler.name
        self.prompt_ids: list[int] | None = None
        self.completion_ids: list[int] = []
        self.env_mask: list[int] = []
        self.logprobs: list[float] = []
        self.rendered = ""
        self.broken: str | None = None
        #: turns whose end-of-turn token became an environment token (see _reopen_turn)
        self.reopened = 0
        #: every token-id prompt handed to the sampler, in order (for checks and tests)
        self.sampler_inputs: list[list[int]] = []

    # ------------------------------------------------------------------ LLM protocol
    async def complete(self, messages: Sequence[Message], params: SamplingParams) -> Completion:
        """Extend the sequence with this turn's environment tokens, then sample the response."""
        text = render_chat(self.tokenizer, messages, add_generation_prompt=True)
        if self.prompt_ids is None:
            self.prompt_ids = self._encode(text)
            self.rendered = text
            prompt = list(self.prompt_ids)
        elif self.broken is None and (text.startswith(self.rendered) or self._reopen_turn(text)):
            env = self._encode(text[len(self.rendered) :])
            self._check_room(len(self.prompt_ids) + len(self.completion_ids) + len(env))
            self._append(env, policy=False)
            self.rendered = text
            prompt = self.prompt_ids + self.completion_ids
        else:
            if self.broken is None:
                at = next(
                    (
                        i
                        for i, (a, b) in enumerate(zip(text, self.rendered, strict=False))
                        if a != b
                    ),
                    min(len(text), len(self.rendered)),
                )
                self.broken = (
                    f"turn {len(self.sampler_inputs)}: the history was rewritten at character "
                    f"{at}: {self.rendered[at : at + 40]!r} became {text[at : at + 40]!r}"
                )
            prompt = self._encode(text)  # sampled outside the recorded sequence
        self._check_room(len(prompt))
        room = None if self.max_length is None else self.max_length - len(prompt)
        if room is not None and room < params.max_tokens:
            params = params.model_copy(update={"max_tokens": room})
        self.sampler_inputs.append(prompt)
        sampled = await self.sampler.sample(prompt, params)
        if self.broken is None:
            self._append(sampled.ids, policy=True, logprobs=sampled.logprobs)
            self.rendered += self._decode(sampled.ids, keep_special=True)
        # Special tokens the policy sampled mid-response stay in the text (dropping them would
        # make the next render disagree with the sequence); only a final end-of-turn goes.
        content_ids = sampled.ids
        if content_ids and content_ids[-1] == self.tokenizer.eos_token_id:
            content_ids = content_ids[:-1]
        return Completion(
            text=self._decode(content_ids, keep_special=True),
            finish_reason=sampled.finish_reason,
            prompt_tokens=len(prompt),
            completion_tokens=len(sampled.ids),
            meta=dict(sampled.meta),
        )

    def count_tokens(self, messages: Sequence[Message]) -> int:
        """Tokens of the chat-formatted messages (with the generation prompt)."""
        return len(self._encode(render_chat(self.tokenizer, messages, add_generation_prompt=True)))

    def describe(self) -> dict[str, Any]:
        """The sampler's settings."""
        return {"kind": "rl-episode", "sampler": self.sampler.describe()}

    async def aclose(self) -> None:
        """Nothing to release: the sampler is shared by all episodes."""

    # ------------------------------------------------------------------ the sequence
    def tokens(self) -> EpisodeTokens:
        """The recorded sequence, closed with an end-of-turn token when the policy did not
        sample one (as an environment token: the trainer sees a finished sequence)."""
        eos = self.tokenizer.eos_token_id
        completion, mask, logps = (
            list(self.completion_ids),
            list(self.env_mask),
            list(self.logprobs),
        )
        if eos is not None and (not completion or completion[-1] != eos):
            completion.append(eos)
            mask.append(0)
            logps.append(math.nan)
        return EpisodeTokens(list(self.prompt_ids or []), completion, mask, logps, self.broken)

    def _check_room(self, n_tokens: int) -> None:
        """A model input of ``n_tokens`` must leave room to sample (else the loop ends the
        episode as ``context_limit``, and the sequence stays within ``max_length``)."""
        if self.max_length is not None and n_tokens >= self.max_length:
            raise LLMError(
                f"context length: model input of {n_tokens} tokens is too long for "
                f"max_length {self.max_length}"
            )

    def _reopen_turn(self, text: str) -> bool:
        """The loop closed an action tag the policy left open before its end-of-turn token
        (``<search>q`` + end of turn -> ``<search>q</search>``): the render then differs from
        the sequence just before that token. The token becomes an environment token, so the
        closing text can go in front of it; every sampled token before it stays trained."""
        eos = self.tokenizer.eos_token_id
        if not self.completion_ids or self.completion_ids[-1] != eos or not self.env_mask[-1]:
            return False
        tail = self._decode([eos], keep_special=True)
        head = self.rendered[: len(self.rendered) - len(tail)]
        if not self.rendered.endswith(tail) or not text.startswith(head):
            return False
        for seq in (self.completion_ids, self.env_mask, self.logprobs):
            seq.pop()
        self.rendered = head
        self.reopened += 1
        return True

    def _append(self, ids: list[int], *, policy: bool, logprobs: list[float] | None = None) -> None:
        self.completion_ids += ids
        self.env_mask += [int(policy)] * len(ids)
        if logprobs is None or len(logprobs) != len(ids):
            logprobs = [math.nan] * len(ids)
        self.logprobs += [float(x) for x in logprobs]

    def _encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _decode(self, ids: list[int], *, keep_special: bool) -> str:
        return self.tokenizer.decode(
            ids, skip_special_tokens=not keep_special, clean_up_tokenization_spaces=False
        )

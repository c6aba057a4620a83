"""verl agent loop running this project's agent loop (needs verl; see ``docs/rl/verl.md``).

Registered by the bundle's ``agent_loop.yaml``::

    - name: searchprime_agent
      _target_: searchprime.rl.verl.agent_loop.SearchPrimeAgentLoop
      search_url: http://127.0.0.1:8000/retrieve
      episode: {max_turns: 8, max_tokens: 1024, topk: 3, prompt: full, thinking: explicit}

verl instantiates the class once per trajectory with the YAML's keys as keyword arguments and
calls :meth:`SearchPrimeAgentLoop.run` with the dataset row. The episode runs
:func:`~searchprime.rl.verl.episode.run_verl_episode`; searches go over HTTP to
``searchprime index serve`` (one client per process and event loop, connections kept).
The reward is left to verl's reward manager (the bundle's ``reward.py``), which gets the loop's
final answer through ``extra_fields``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from verl.experimental.agent_loop.agent_loop import AgentLoopBase, AgentLoopMetrics, AgentLoopOutput

from searchprime.rl.config import EpisodeSettings
from searchprime.rl.verl.episode import run_verl_episode, task_from_row
from searchprime.search.http_client import RetrieverClient

__all__ = ["SearchPrimeAgentLoop", "close_search_clients"]

_CLIENTS: dict[tuple[str, int, float, int], RetrieverClient] = {}


def _client(url: str, topk: int, timeout_s: float) -> RetrieverClient:
    """One retrieval client per URL and event loop (its connection pool is bound to a loop)."""
    key = (url, topk, timeout_s, id(asyncio.get_running_loop()))
    if key not in _CLIENTS:
        _CLIENTS[key] = RetrieverClient(url, topk=topk, timeout=timeout_s)
    return _CLIENTS[key]


async def close_search_clients() -> None:
    """Close this event loop's retrieval clients (verl's workers just exit; tests call it)."""
    loop = id(asyncio.get_running_loop())
    for key in [k for k in _CLIENTS if k[-1] == loop]:
        await _CLIENTS.pop(key).aclose()


class SearchPrimeAgentLoop(AgentLoopBase):
    """Our agent loop as a verl ``AgentLoopBase``.

    Args (from ``agent_loop.yaml``):
        search_url: the retrieval server (``POST /retrieve``).
        episode: :class:`~searchprime.rl.config.EpisodeSettings` fields (turns, tokens per turn,
            topk, prompt, thinking, reminders); ``max_length`` is verl's prompt + response length.
        search_timeout_s: per-request timeout of the search client.
        stop_params: sampling keys sent with the action stop strings (vLLM's
            ``include_stop_str_in_output`` by default; ``{}`` for SGLang).
    """

    def __init__(
        self,
        *args: Any,
        search_url: str = "http://127.0.0.1:8000/retrieve",
        episode: dict[str, Any] | None = None,
        search_timeout_s: float = 30.0,
        stop_params: dict[str, Any] | None = None,
        **kwargs: Any,
    ):
        kwargs.pop("name", None)
        kwargs.pop("tools", None)
        super().__init__(*args, **kwargs)
        self.search_url = search_url
        self.episode = EpisodeSettings.model_validate(dict(episode or {}))
        self.search_timeout_s = float(search_timeout_s)
        self.stop_params = dict(stop_params) if stop_params is not None else None

    async def run(self, sampling_params: dict[str, Any], **kwargs: Any) -> AgentLoopOutput:
        """One episode on the row's task; observation tokens get ``response_mask`` 0."""
        task = task_from_row(kwargs)
        search = _client(self.search_url, self.episode.topk, self.search_timeout_s)
        ep = await run_verl_episode(
            task,
            server_manager=self.server_manager,
            sampling_params=sampling_params,
            tokenizer=self.tokenizer,
            search=search,
            episode=self.episode,
            response_length=int(self.rollout_config.response_length),
            chat_template_kwargs=dict(self.apply_chat_template_kwargs or {}),
            stop_params=self.stop_params,
        )
        return AgentLoopOutput(
            prompt_ids=self._cap_text_prompt_length(ep.prompt_ids),
            response_ids=ep.response_ids,
            response_mask=ep.response_mask,
            response_logprobs=ep.response_logprobs,
            num_turns=ep.num_turns,
            metrics=AgentLoopMetrics(**ep.timing),
            extra_fields={**ep.extra_fields, "turn_scores": [], "tool_rewards": []},
        )

"""A trained checkpoint as the policy of dev rollouts: agent settings and LLM backend."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from searchprime.experiment.config import ExperimentConfig


def prompt_style(cfg: ExperimentConfig, choice: str | None) -> str:
    """An arm's prompt choice as a prompt style: ``handbook`` is ``eval.prompt`` followed by the
    four behaviors (``compact`` -> ``compact+handbook``); None is ``eval.prompt``."""
    from searchprime.agent.prompts import with_handbook

    if choice is None:
        return cfg.eval.prompt
    return with_handbook(cfg.eval.prompt) if choice == "handbook" else choice


def eval_agent_config(cfg: ExperimentConfig, prompt: str | None = None) -> Any:
    """The agent-loop settings of the trained policies' dev rollouts (the ``eval`` section;
    ``prompt``: a prompt arm's choice, see :func:`prompt_style`)."""
    from searchprime.agent.loop import AgentConfig, default_sampling

    return AgentConfig(
        max_turns=cfg.eval.max_turns,
        topk=cfg.eval.topk,
        prompt=prompt_style(cfg, prompt),
        sampling=default_sampling().model_copy(
            update={"temperature": cfg.eval.temperature, "max_tokens": cfg.eval.max_tokens}
        ),
    )


def sampling_agent_config(cfg: ExperimentConfig, prompt: str | None = None) -> Any:
    """The dev agent settings at ``eval.samples_temperature`` (pass@k rollouts)."""
    agent = eval_agent_config(cfg, prompt)
    return agent.model_copy(
        update={
            "sampling": agent.sampling.model_copy(
                update={"temperature": cfg.eval.samples_temperature}
            )
        }
    )


@contextmanager
def open_policy(cfg: ExperimentConfig, model_dir: Path) -> Iterator[Any]:
    """A trained checkpoint as an LLM backend (``eval.backend``)."""
    if cfg.eval.backend == "llamacpp":
        with _llamacpp_policy(cfg, model_dir) as llm:
            yield llm
        return
    from searchprime.llm.local_hf import LocalHF

    llm = LocalHF(
        str(model_dir),
        device=cfg.eval.device,
        max_batch=cfg.eval.max_batch,
        threads=cfg.eval.threads,
    )
    try:
        yield llm
    finally:
        asyncio.run(llm.aclose())


#: KV-cache tokens per llama.cpp slot: the longest agent context of the sandbox study
#: (10 turns of 3 passages) stays under 4k tokens.
_SLOT_CONTEXT = 4096


@contextmanager
def _llamacpp_policy(cfg: ExperimentConfig, model_dir: Path) -> Iterator[Any]:
    """Export the checkpoint to GGUF once (next to it) and serve it with llama.cpp.

    ``bench/eval_backend.py`` on the 2-core CPU (primed SmolLM2, 16 dev tasks, 8 agents): 12.6 s
    per task against 24.2 s with static transformers batches (1.92x), because llama.cpp keeps
    each agent's previous turns in its slot's KV cache and refills a slot as soon as its agent's
    turn ends.
    """
    from searchprime.llm.openai_http import OpenAIChat
    from searchprime.llm.serve import GGUFServer
    from searchprime.train.gguf_export import export_gguf

    gguf = model_dir / "model.f16.gguf"
    if not gguf.exists():
        export_gguf(model_dir, gguf)
    slots = cfg.eval.max_batch
    with GGUFServer(
        gguf, parallel=slots, ctx_size=slots * _SLOT_CONTEXT, threads=cfg.eval.threads
    ) as server:
        llm = OpenAIChat(
            server.base_url,
            model=model_dir.name,
            tokenizer=str(model_dir),
            concurrency=slots,
            timeout_s=600.0,
        )
        try:
            yield llm
        finally:
            asyncio.run(llm.aclose())

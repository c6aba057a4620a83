"""Scripted teachers: deterministic policies with one knob per behavior.

A :class:`Teacher` implements the LLM protocol of :mod:`searchprime.llm.base`, so it plugs
into the agent loop exactly where a model does. It finds the question in the first user
message (``^Question: (.*)$``), reads search results back from ``<information>`` blocks with
:func:`searchprime.search.format.parse_hits`, and "understands" a page by looking it up in
the world (title + text), which tells it the claims the page states. Each response is a
short ``<think>`` (1-3 sentences, paraphrased) and exactly one action tag.

Behaviors are shown with a per-behavior probability when the situation calls for it:

* verification -- before relying on a fact: cross-check two agreeing pages, or search again;
* authority -- when visible sources disagree: keep the value of the most authoritative one;
* adaptive -- after a poor result (alias, over-specific query): rephrase or broaden;
* recovery -- after following a near-duplicate entity: say so and go back.

``slip`` makes weighing go wrong (more often the more the teacher already juggled), so
behavior-rich trajectories can still end wrong. Every turn reports
``Completion.meta = {"behaviors": [...], "move": ..., "hop": ...}``; the loop copies it into
``Turn.policy_meta`` (ground truth for judging annotators).

Randomness comes only from ``sha256(question, seed, turn)``, with ``seed`` taken from
``SamplingParams.seed`` (the loop's per-attempt seed), so a teacher is deterministic given
(task, attempt seed) and safe to call from many asyncio tasks at once.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from searchprime.errors import ConfigError
from searchprime.llm.base import Completion, SamplingParams
from searchprime.records import Message
from searchprime.search.format import parse_hits
from searchprime.world import phrases as P
from searchprime.world._teacher_run import Run
from searchprime.world.load import World

__all__ = ["TEACHER_PRESETS", "Teacher", "TeacherConfig", "teacher_config"]

QUESTION_RE = re.compile(r"^Question: (.*)$", re.MULTILINE)
INFO_RE = re.compile(r"<information>\s*(.*?)\s*</information>", re.DOTALL)
TURNS_LEFT_RE = re.compile(r"you have (\d+) turns? left", re.IGNORECASE)
_MAX_OPEN_RUNS = 20_000  # attempts cut off by the loop never answer; forget the oldest


class TeacherConfig(BaseModel):
    """Knobs of a scripted teacher (probabilities of showing each behavior when called for)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(default="custom", description="Preset name recorded in trajectories.")
    verify: float = Field(default=0.0, ge=0, le=1, description="Information verification.")
    authority: float = Field(default=0.0, ge=0, le=1, description="Authority evaluation.")
    adaptive: float = Field(default=0.0, ge=0, le=1, description="Adaptive search.")
    recovery: float = Field(default=0.0, ge=0, le=1, description="Error recovery.")
    slip: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="Chance that weighing sources goes wrong once adaptive search and error "
        "recovery were already shown in the run (so behavior-rich runs can end wrong).",
    )
    max_searches: int = Field(default=8, ge=1, description="Searches before a forced answer.")


def _preset(name: str, **kw: float) -> TeacherConfig:
    return TeacherConfig(name=name, **kw)


#: Named teachers. "all" = every behavior, the priming-data source; "plain" = none (the
#: template for base-model data); one preset per behavior alone.
TEACHER_PRESETS: dict[str, TeacherConfig] = {
    "plain": _preset("plain"),
    "all": _preset("all", verify=0.97, authority=0.97, adaptive=0.97, recovery=0.97, slip=0.33),
    "verify": _preset("verify", verify=1.0),
    "authority": _preset("authority", authority=1.0),
    "adaptive": _preset("adaptive", adaptive=1.0),
    "recovery": _preset("recovery", recovery=1.0),
}


def teacher_config(spec: str | TeacherConfig) -> TeacherConfig:
    """A preset by name, or a config as given."""
    if isinstance(spec, TeacherConfig):
        return spec
    try:
        return TEACHER_PRESETS[spec]
    except KeyError:
        raise ConfigError(
            f"unknown teacher preset {spec!r}; known: {', '.join(TEACHER_PRESETS)}"
        ) from None


class Teacher:
    """A scripted search agent with one knob per behavior (implements the LLM protocol)."""

    def __init__(self, world: World, config: str | TeacherConfig = "all"):
        self.world = world
        self.config = teacher_config(config)
        self.name = f"teacher:{self.config.name}"
        self._runs: dict[tuple[str, int], Run] = {}

    def describe(self) -> dict[str, Any]:
        return {"kind": "teacher", **self.config.model_dump()}

    def count_tokens(self, messages: Sequence[Message]) -> int:
        """Rough count (4 characters a token); teachers have no tokenizer."""
        return sum(len(m.content) // 4 + 4 for m in messages)

    async def aclose(self) -> None:
        self._runs.clear()

    async def complete(self, messages: Sequence[Message], params: SamplingParams) -> Completion:
        return self.respond(messages, params.seed)

    def respond(self, messages: Sequence[Message], seed: int | None = None) -> Completion:
        """The teacher's next response to ``messages`` (sync; ``complete`` wraps it)."""
        seed = 0 if seed is None else int(seed)
        users = [m for m in messages if m.role == "user"]
        match = QUESTION_RE.search(users[0].content) if users else None
        question = match.group(1).strip() if match else ""
        task = self.world.task_by_question(question) if question else None
        n_prev = sum(m.role == "assistant" for m in messages)
        if task is None:
            text = f"<think>{P.UNKNOWN_TASK}</think>\n<answer>unknown</answer>"
            return Completion(text=text, meta={"behaviors": [], "move": "unknown_task"})
        key = (question, seed)
        run = self._runs.get(key)
        if run is None or n_prev == 0:
            run = Run.start(self.config, self.world, self.world.chain(task), task.meta)
            if len(self._runs) >= _MAX_OPEN_RUNS:
                self._runs.pop(next(iter(self._runs)))
            self._runs[key] = run
        hits = []
        if run.purpose is not None and users:
            info = INFO_RE.search(users[-1].content)
            hits = parse_hits(info.group(1)) if info else []
            left = TURNS_LEFT_RE.search(users[-1].content)
            if left and int(left.group(1)) <= 1:  # the loop says this is the last turn
                run.n_search = max(run.n_search, run.cfg.max_searches)
        digest = hashlib.sha256(f"{question}|{seed}|{n_prev}".encode()).digest()
        step = run.step(hits, random.Random(int.from_bytes(digest[:8], "big")))
        if step.kind == "answer":
            self._runs.pop(key, None)
        text = f"<think>{step.think}</think>\n<{step.kind}>{step.content}</{step.kind}>"
        meta = {
            "behaviors": list(dict.fromkeys(step.behaviors)),
            "move": step.move,
            "hop": run.hop,
            "teacher": self.config.name,
        }
        return Completion(text=text, finish_reason="stop", meta=meta)

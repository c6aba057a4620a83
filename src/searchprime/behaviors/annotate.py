"""Label trajectories with behaviors: an LLM judge (any LLM) or the sandbox rules.

``--judge llm``: for each behavior of the taxonomy the judge answers yes/no, the turns that
show it and a short rationale, as JSON. A trajectory longer than ``max_chars`` is judged in
chunks (each chunk sees the question and the taxonomy; a behavior is present when any chunk
shows it) and the labels carry a note. An unparseable reply is retried, then every behavior it
failed to give is recorded as unknown (``present=None``), never as *no*.

``--judge rules``: :func:`searchprime.behaviors.rules.annotate_rules` with the sandbox world
(imported lazily; it reads the trajectory text and the world's facts only).

Output is append-only and resumable: trajectories whose ``(task_id, attempt)`` is already in
the output are skipped.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from searchprime.behaviors._render import chunk_blocks, render_blocks
from searchprime.behaviors.taxonomy import DEFAULT_TAXONOMY, Taxonomy
from searchprime.eval.llmcall import CachedCaller, CallCache, extract_json, yes_no
from searchprime.llm.base import LLM
from searchprime.records import (
    BehaviorEvidence,
    BehaviorLabels,
    JsonlWriter,
    Message,
    Trajectory,
    iter_json_lines,
    read_jsonl,
)

__all__ = [
    "ANNOTATE_PROMPT",
    "AnnotateSummary",
    "Annotator",
    "LLMAnnotator",
    "RulesAnnotator",
    "annotate_file",
    "parse_labels",
]

ANNOTATE_PROMPT = """You analyse the trajectory of a search agent that answers a question by
searching and reading results. Decide, for each behavior below, whether the AGENT shows it
in the trajectory excerpt.

Behaviors:
{behaviors}

Question: {question}
{part}
Trajectory:
{trajectory}

Reply with only a JSON object with one key per behavior, no other text:
{schema}"""

_YES = {"yes", "true", "present", "1"}
_NO = {"no", "false", "absent", "0"}


def _present(value: Any) -> bool | None:
    return yes_no(value, _YES, _NO)


def _turns(value: Any) -> list[int]:
    if not isinstance(value, list):
        return []
    out = []
    for v in value:
        try:
            out.append(int(v))
        except (TypeError, ValueError):
            continue
    return out


def parse_labels(text: str, names: tuple[str, ...]) -> dict[str, BehaviorEvidence]:
    """Every behavior the reply states clearly; missing or unclear ones are left out."""
    obj = extract_json(text, dict)
    if obj is None:
        return {}
    found: dict[str, BehaviorEvidence] = {}
    for name in names:
        item = obj.get(name)
        if isinstance(item, dict):
            present = _present(item.get("present"))
            turns, rationale = _turns(item.get("turns")), str(item.get("rationale", ""))
        else:
            present, turns, rationale = _present(item), [], ""
        if present is not None:
            found[name] = BehaviorEvidence(present=present, turns=turns, rationale=rationale)
    return found


class Annotator(Protocol):
    """Anything that labels one trajectory."""

    name: str

    async def annotate(self, traj: Trajectory) -> BehaviorLabels: ...


class LLMAnnotator:
    """Behavior labels from any LLM, cached by content hash, chunked when long."""

    def __init__(
        self,
        llm: LLM,
        taxonomy: Taxonomy = DEFAULT_TAXONOMY,
        *,
        cache: str | Path | CallCache | None = None,
        max_chars: int = 12000,
        max_tokens: int = 512,
        retries: int = 2,
        concurrency: int = 8,
    ):
        self.caller = CachedCaller.greedy(
            llm, cache, max_tokens=max_tokens, retries=retries, concurrency=concurrency
        )
        self.taxonomy = taxonomy
        self.max_chars = max_chars
        self.name = f"llm:{self.caller.model}"

    def _prompt(self, traj: Trajectory, chunk: str, k: int, n: int) -> str:
        names = self.taxonomy.names
        behaviors = "\n".join(f"- {b.name}: {b.definition}" for b in self.taxonomy.behaviors)
        schema = (
            "{"
            + ", ".join(
                f'"{n}": {{"present": "yes" or "no", "turns": [turn numbers], "rationale": "..."}}'
                for n in names
            )
            + "}"
        )
        part = f"(This is part {k} of {n} of a long trajectory.)\n" if n > 1 else ""
        return ANNOTATE_PROMPT.format(
            behaviors=behaviors, question=traj.question, part=part, trajectory=chunk, schema=schema
        )

    async def _judge_chunk(
        self, traj: Trajectory, chunk: str, k: int, n: int
    ) -> dict[str, BehaviorEvidence]:
        names = self.taxonomy.names
        messages = [Message(role="user", content=self._prompt(traj, chunk, k, n))]

        def complete_parse(text: str) -> dict[str, BehaviorEvidence] | None:
            found = parse_labels(text, names)
            return found if len(found) == len(names) else None

        value, last, _ = await self.caller.ask_json(messages, complete_parse, tag="annotate")
        return value if value is not None else parse_labels(last, names)

    async def annotate(self, traj: Trajectory) -> BehaviorLabels:
        chunks = chunk_blocks(render_blocks(traj), self.max_chars)
        parts = await asyncio.gather(
            *(self._judge_chunk(traj, c, k, len(chunks)) for k, c in enumerate(chunks, 1))
        )
        notes = []
        if len(chunks) > 1:
            notes.append(
                f"chunked into {len(chunks)} parts of <= {self.max_chars} characters; a behavior "
                "is present when any part shows it"
            )
        behaviors: dict[str, BehaviorEvidence] = {}
        for name in self.taxonomy.names:
            evs = [p.get(name) for p in parts]
            known = [e for e in evs if e is not None]
            if any(e.present for e in known):
                present: bool | None = True
            elif len(known) == len(evs):
                present = False
            else:
                present = None
            turns = sorted({t for e in known if e.present for t in e.turns})
            rationale = " | ".join(
                (f"part {i}: " if len(chunks) > 1 else "") + e.rationale
                for i, e in enumerate(evs, 1)
                if e is not None and e.rationale
            )
            if present is None:
                missing = sum(1 for e in evs if e is None)
                rationale = (rationale + " | " if rationale else "") + (
                    f"unknown: judge reply unparseable for {missing} of {len(evs)} part(s)"
                )
            behaviors[name] = BehaviorEvidence(present=present, turns=turns, rationale=rationale)
        return BehaviorLabels(annotator=self.name, behaviors=behaviors, notes=notes)


class RulesAnnotator:
    """The deterministic sandbox annotator of ``searchprime.behaviors.rules`` with a world."""

    def __init__(self, world_dir: str | Path):
        from searchprime.behaviors.rules import annotate_rules
        from searchprime.world import load_world

        self._annotate = annotate_rules
        self.world = load_world(world_dir)
        self.name = "rules"

    async def annotate(self, traj: Trajectory) -> BehaviorLabels:
        return self._annotate(traj, self.world)


@dataclass
class AnnotateSummary:
    """What one ``annotate_file`` call did."""

    total: int
    skipped: int
    written: int
    unknown: int  # behavior judgements recorded as unknown
    llm_calls: int = 0
    cache_hits: int = 0


_CONTENT = {"messages", "turns", "termination", "final_answer"}


def _content(obj: dict[str, Any]) -> str:
    """What identifies one run of an attempt (a retried attempt differs): its turns and end."""
    return json.dumps([obj.get(k) for k in sorted(_CONTENT)], sort_keys=True)


def _done(path: Path) -> dict[tuple[str, int], str]:
    """Labelled keys in ``path`` -> the content they were labelled for (the last record wins)."""
    if not path.exists():
        return {}
    done = {}
    for _, obj in iter_json_lines(path):
        if obj:
            done[(str(obj.get("task_id")), int(obj.get("attempt", 0)))] = _content(obj)
    return done


async def _annotate_async(
    todo: list[Trajectory],
    annotator: Annotator,
    writer: JsonlWriter,
    on_done: Callable[[int], None] | None,
    concurrency: int,
) -> int:
    sem = asyncio.Semaphore(concurrency)
    unknown = 0

    async def one(traj: Trajectory) -> Trajectory:
        async with sem:
            traj.labels = await annotator.annotate(traj)
        return traj

    for fut in asyncio.as_completed([one(t) for t in todo]):
        traj = await fut
        writer.write(traj)
        unknown += sum(1 for e in traj.labels.behaviors.values() if e.present is None)
        if on_done is not None:
            on_done(1)
    return unknown


def annotate_file(
    trajectories: str | Path,
    out: str | Path,
    annotator: Annotator,
    *,
    limit: int | None = None,
    concurrency: int = 8,
    on_done: Callable[[int], None] | None = None,
) -> AnnotateSummary:
    """Label every trajectory not yet in ``out`` and append it there (flushed per record)."""
    out = Path(out)
    if Path(trajectories).resolve() == out.resolve():
        from searchprime.errors import ConfigError

        raise ConfigError(f"{out}: the output must differ from the input trajectories")
    trajs = list(read_jsonl(trajectories, Trajectory))
    if limit is not None:
        trajs = trajs[:limit]
    with JsonlWriter(out) as writer:  # cuts a partial tail before we read the done keys
        done = _done(out)
        # a key labelled for an earlier run of its attempt (since retried) is labelled again
        todo = [
            t
            for t in trajs
            if done.get(t.key) != _content(json.loads(t.model_dump_json(include=_CONTENT)))
        ]
        unknown = asyncio.run(_annotate_async(todo, annotator, writer, on_done, concurrency))
        written = writer.written
    caller = getattr(annotator, "caller", None)
    return AnnotateSummary(
        total=len(trajs),
        skipped=len(trajs) - len(todo),
        written=written,
        unknown=unknown,
        llm_calls=caller.calls if caller else 0,
        cache_hits=caller.cache_hits if caller else 0,
    )

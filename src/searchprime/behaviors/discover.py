"""Discover behaviors that separate success from failure (the study's discovery pipeline).

1. **Pair**: for each task, a successful and a failed trajectory (from two files — two
   models or two runs — or from the attempts of one file).
2. **Reasoner**: the LLM explains why one succeeded and the other failed.
3. **Extractor**: from that analysis, generalisable behaviors as a JSON list of
   ``{name, definition, example}``.
4. **Merger**: behaviors are consolidated in chunks, round after round, until at most ``K``
   remain (if the LLM stops reducing, the most frequent names are kept and a note says so).

Every LLM call is cached by content hash in SQLite, so an interrupted run resumes where it
stopped and a finished one replays without a single call.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from searchprime.behaviors._render import render_capped
from searchprime.behaviors.taxonomy import BehaviorDef, Taxonomy, slugify
from searchprime.eval.llmcall import CachedCaller, CallCache, extract_json
from searchprime.eval.score import is_correct
from searchprime.llm.base import LLM, SamplingParams
from searchprime.records import Message, Trajectory, atomic_write_text, read_jsonl

__all__ = [
    "DiscoverConfig",
    "DiscoverResult",
    "discover",
    "discover_files",
    "pair_trajectories",
]

REASONER_PROMPT = """Two search agents answered the same question. Agent A answered correctly;
agent B answered incorrectly. Compare their reasoning and search steps and explain which
behaviors made A succeed and B fail.

Question: {question}
Gold answer: {gold}

=== Agent A (correct) ===
{success}

=== Agent B (incorrect) ===
{failure}

Write a short analysis (at most 8 sentences)."""

EXTRACTOR_PROMPT = """From the analysis below, extract the general reasoning behaviors of a
search agent that lead to success (not facts about this question). Reply with only a JSON list,
no other text:
[{{"name": "<short behavior name>", "definition": "<one sentence>", "example": "<short quote>"}}]

Analysis:
{analysis}"""

MERGER_PROMPT = """Below is a list of reasoning behaviors of search agents. Merge behaviors that
mean the same thing, keep distinct ones, and return at most {target} behaviors. Reply with only
a JSON list, no other text:
[{{"name": "<short behavior name>", "definition": "<one sentence>", "examples": ["<short quote>"]}}]

Behaviors:
{behaviors}"""


@dataclass
class DiscoverConfig:
    """Settings of one discovery run."""

    max_behaviors: int = 4  # K
    max_pairs: int = 50
    merge_chunk: int = 12  # behaviors per merger call
    max_rounds: int = 5
    max_chars: int = 6000  # per trajectory in the reasoner prompt (longer: marked omission)
    max_tokens: int = 512
    retries: int = 2
    correctness: str = "auto"


@dataclass
class DiscoverResult:
    """The taxonomy and how it was obtained."""

    taxonomy: Taxonomy
    pairs: int
    extracted: int
    rounds: int
    notes: list[str] = field(default_factory=list)
    llm_calls: int = 0
    cache_hits: int = 0


def pair_trajectories(
    first: list[Trajectory],
    second: list[Trajectory] | None = None,
    *,
    correctness: str = "auto",
    max_pairs: int | None = None,
) -> list[tuple[Trajectory, Trajectory]]:
    """``(success, failure)`` pairs on the same task, in task order of ``first``.

    With two lists, pairs prefer a success and a failure from different lists (two models or
    runs); with one, they come from different attempts.
    """
    pool: dict[str, list[tuple[int, Trajectory, bool]]] = {}
    order: list[str] = []
    for src, trajs in enumerate([first, second or []]):
        for t in trajs:
            if t.task_id not in pool:
                pool[t.task_id] = []
                order.append(t.task_id)
            pool[t.task_id].append((src, t, is_correct(t, correctness)))
    pairs = []
    for tid in order:
        goods = [(s, t) for s, t, c in pool[tid] if c]
        bads = [(s, t) for s, t, c in pool[tid] if not c]
        if not goods or not bads:
            continue
        cross = [(g, b) for g in goods for b in bads if g[0] != b[0]]
        g, b = cross[0] if cross else (goods[0], bads[0])
        pairs.append((g[1], b[1]))
        if max_pairs is not None and len(pairs) >= max_pairs:
            break
    return pairs


def _is_placeholder(text: str) -> bool:
    """The prompt's own template echoed back (``<one sentence>``, ``short behavior name``)."""
    t = text.strip()
    return (t.startswith("<") and t.endswith(">")) or slugify(t) in _TEMPLATE_NAMES


_TEMPLATE_NAMES = {"short_behavior_name", "one_sentence", "short_quote", "name", "definition"}


def _parse_list(text: str) -> list[dict] | None:
    """Behaviors with a real name and definition; template echoes are dropped."""
    items = extract_json(text, list)
    if items is None:
        return None
    good = [
        i
        for i in items
        if isinstance(i, dict)
        and isinstance(i.get("name"), str)
        and slugify(i["name"])
        and not _is_placeholder(i["name"])
        and isinstance(i.get("definition"), str)
        and i["definition"].strip()
        and not _is_placeholder(i["definition"])
    ]
    return good or None


def _to_defs(items: list[dict]) -> list[BehaviorDef]:
    defs = []
    for i in items:
        examples = i.get("examples", i.get("example", []))
        if isinstance(examples, str):
            examples = [examples]
        examples = [str(e) for e in examples if e] if isinstance(examples, list) else []
        defs.append(BehaviorDef(name=i["name"], definition=i["definition"], examples=examples))
    return defs


def _dedupe(defs: list[BehaviorDef], counts: Counter) -> list[BehaviorDef]:
    by_name: dict[str, BehaviorDef] = {}
    for d in defs:
        if d.name in by_name:
            keep = by_name[d.name]
            keep.examples = (keep.examples + [e for e in d.examples if e not in keep.examples])[:5]
        else:
            by_name[d.name] = d.model_copy(deep=True)
    return sorted(by_name.values(), key=lambda d: -counts[d.name])


async def _discover_async(
    pairs: list[tuple[Trajectory, Trajectory]],
    caller: CachedCaller,
    cfg: DiscoverConfig,
    on_step: Callable[[str], None] | None,
) -> DiscoverResult:
    notes: list[str] = []

    async def analyse(good: Trajectory, bad: Trajectory) -> list[BehaviorDef]:
        prompt = REASONER_PROMPT.format(
            question=good.question,
            gold=" | ".join(good.answers) or "(not given)",
            success=render_capped(good, cfg.max_chars),
            failure=render_capped(bad, cfg.max_chars),
        )
        analysis = await caller.complete([Message(role="user", content=prompt)], tag="reason")
        msg = [Message(role="user", content=EXTRACTOR_PROMPT.format(analysis=analysis.strip()))]
        items, _, _ = await caller.ask_json(msg, _parse_list, tag="extract")
        if on_step:
            on_step("pair")
        return _to_defs(items) if items else []

    per_pair = await asyncio.gather(*(analyse(g, b) for g, b in pairs))
    failed = sum(1 for defs in per_pair if not defs)
    if failed:
        notes.append(f"{failed} of {len(pairs)} pairs gave no parseable behavior list")
    extracted = [d for defs in per_pair for d in defs]
    counts: Counter = Counter(d.name for d in extracted)
    current = _dedupe(extracted, counts)
    rounds = 0
    while len(current) > cfg.max_behaviors and rounds < cfg.max_rounds:
        rounds += 1
        chunks = [current[i : i + cfg.merge_chunk] for i in range(0, len(current), cfg.merge_chunk)]
        target = max(cfg.max_behaviors, len(current) // 2 // max(1, len(chunks)) or 1)

        async def merge(chunk: list[BehaviorDef], target: int = target) -> list[BehaviorDef]:
            listing = json.dumps([d.model_dump() for d in chunk], ensure_ascii=False, indent=1)
            prompt = MERGER_PROMPT.format(target=target, behaviors=listing)
            items, _, _ = await caller.ask_json(
                [Message(role="user", content=prompt)], _parse_list, tag="merge"
            )
            merged = _to_defs(items) if items else []
            # an unusable or non-reducing merge keeps the chunk's most frequent behaviors
            if not merged or len(merged) >= len(chunk):
                return chunk[: max(1, min(target, len(chunk) - 1))] if len(chunk) > 1 else chunk
            return merged

        merged = await asyncio.gather(*(merge(c) for c in chunks))
        for defs in merged:
            for d in defs:
                counts[d.name] += 1  # merged names inherit prominence by appearing
        nxt = _dedupe([d for defs in merged for d in defs], counts)
        if on_step:
            on_step(f"merge round {rounds}: {len(current)} -> {len(nxt)}")
        current = nxt
    if len(current) > cfg.max_behaviors:
        notes.append(
            f"merging stopped at {len(current)} behaviors after {rounds} rounds; kept the "
            f"{cfg.max_behaviors} most frequent"
        )
        current = current[: cfg.max_behaviors]
    if not current:
        notes.append("no behavior was extracted")
    result = DiscoverResult(
        taxonomy=Taxonomy.model_construct(behaviors=current),
        pairs=len(pairs),
        extracted=len(extracted),
        rounds=rounds,
        notes=notes,
    )
    return result


def discover(
    pairs: list[tuple[Trajectory, Trajectory]],
    llm: LLM,
    config: DiscoverConfig | None = None,
    *,
    cache: str | Path | CallCache | None = None,
    on_step: Callable[[str], None] | None = None,
) -> DiscoverResult:
    """Run reasoner -> extractor -> merger on ``pairs`` with ``llm``."""
    cfg = config or DiscoverConfig()
    store = cache if isinstance(cache, CallCache) else CallCache(cache)
    params = SamplingParams(max_tokens=cfg.max_tokens, temperature=0.0, seed=0)
    caller = CachedCaller(llm, store, params=params, retries=cfg.retries)
    result = asyncio.run(_discover_async(pairs, caller, cfg, on_step))
    result.llm_calls, result.cache_hits = caller.calls, caller.cache_hits
    return result


def discover_files(
    first: str | Path,
    second: str | Path | None,
    out: str | Path,
    llm: LLM,
    config: DiscoverConfig | None = None,
    *,
    cache: str | Path | None = None,
    on_step: Callable[[str], None] | None = None,
) -> DiscoverResult:
    """Pair trajectories of one or two files, discover, and write the taxonomy JSON to ``out``.

    The cache defaults to ``<out>.cache.sqlite``; rerunning resumes from it.
    """
    from searchprime.errors import ConfigError

    cfg = config or DiscoverConfig()
    a = list(read_jsonl(first, Trajectory))
    b = list(read_jsonl(second, Trajectory)) if second is not None else None
    pairs = pair_trajectories(a, b, correctness=cfg.correctness, max_pairs=cfg.max_pairs)
    if not pairs:
        raise ConfigError(
            f"{first}: no task has both a successful and a failed trajectory to compare"
        )
    result = discover(
        pairs, llm, cfg, cache=cache or Path(str(out) + ".cache.sqlite"), on_step=on_step
    )
    atomic_write_text(out, result.taxonomy.to_json() + "\n")
    return result

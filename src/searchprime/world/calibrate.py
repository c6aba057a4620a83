"""Calibration: run teacher presets through the real agent loop and BM25, and tabulate.

``calibrate(world_dir, ...)`` builds (or reuses) a BM25 index of the world's corpus, runs
each preset on the dev split with :func:`searchprime.agent.rollout.rollout`, and returns a
:class:`CalibrationReport`: accuracy by preset and by trap type, the rank of the page that
holds the needed fact in each search, priming-data yield, and timings. ``format_report``
prints it as the table the acceptance criteria read.

This is the one part of ``world`` that drives other stages (the agent loop, a BM25 index,
exact match as ``eval`` defines it), so it imports them lazily and nothing else in ``world``
does; the tables themselves read only the trajectories it gets back.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from searchprime.records import BEHAVIORS, Trajectory
from searchprime.world.load import World
from searchprime.world.schema import TRAPS

__all__ = [
    "DEFAULT_PRESETS",
    "CalibrationReport",
    "calibrate",
    "ensure_index",
    "format_report",
    "rank_of_needed_page",
    "priming_yield",
    "summarize",
]


def _right(traj: Trajectory) -> bool:
    """Exact match (SQuAD-normalised) of the final answer, by ``eval``'s one definition."""
    from searchprime.eval.score import is_correct

    return is_correct(traj, "em")


def shown(traj: Trajectory) -> set[str]:
    """Behaviors the teacher reported showing (ground truth from ``Turn.policy_meta``)."""
    return {b for t in traj.turns for b in t.policy_meta.get("behaviors", [])}


def rank_of_needed_page(traj: Trajectory, world: World) -> list[int | None]:
    """For each search turn: rank (1-based) of the first hit stating the fact the search
    was after (the true chain fact of the hop the teacher reported), or None."""
    task = world.task(traj.task_id)
    if task is None:
        return []
    chain = world.chain(task)
    out: list[int | None] = []
    for turn in traj.turns:
        if turn.action.kind != "search":
            continue
        hop = min(int(turn.policy_meta.get("hop", 0)), len(chain) - 1)
        fact = chain[hop]
        want = (fact.relation, fact.subject, fact.object)
        rank = None
        for i, hit in enumerate(turn.hits, start=1):
            page = world.pages.get(hit.doc_id) or world.page_for(hit.title, hit.text)
            if page is not None and want in page.claims:
                rank = i
                break
        out.append(rank)
    return out


@dataclass
class CalibrationReport:
    """Numbers of one calibration run."""

    n_tasks: int
    accuracy: dict[str, float] = field(default_factory=dict)
    by_trap: dict[str, dict[str, float]] = field(default_factory=dict)
    trap_counts: dict[str, int] = field(default_factory=dict)
    by_trap_only: dict[str, dict[str, float]] = field(default_factory=dict)
    only_counts: dict[str, int] = field(default_factory=dict)
    ranks: dict[str, int] = field(default_factory=dict)
    rank1_share: float = 0.0
    shown_rates: dict[str, dict[str, float]] = field(default_factory=dict)
    all_four_right: int = 0
    all_four_wrong: int = 0
    yield_runs: int = 0
    tokens: dict[str, float] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


def _approx_tokens(traj: Trajectory) -> int:
    """About 4 characters a token, without the system prompt (the same for every run)."""
    return sum(len(m.content) for m in traj.messages if m.role != "system") // 4


def summarize(runs: dict[str, list[Trajectory]], world: World) -> CalibrationReport:
    """Accuracy by preset and trap, rank distribution and behavior rates."""
    n = max((len(v) for v in runs.values()), default=0)
    rep = CalibrationReport(n_tasks=n)
    ranks: Counter = Counter()
    lengths: list[int] = []
    for preset, trajs in runs.items():
        right = [_right(t) for t in trajs]
        rep.accuracy[preset] = sum(right) / max(len(trajs), 1)
        per_trap: dict[str, list[bool]] = {t: [] for t in (*TRAPS, "none")}
        only: dict[str, list[bool]] = {t: [] for t in TRAPS}
        for traj, ok in zip(trajs, right, strict=True):
            task = world.task(traj.task_id)
            traps = task.meta.get("traps", []) if task else []
            for trap in traps or ["none"]:
                per_trap[trap].append(ok)
            if len(traps) == 1:
                only[traps[0]].append(ok)
            for r in rank_of_needed_page(traj, world):
                ranks[str(r) if r else "none"] += 1
            lengths.append(_approx_tokens(traj))
        rep.by_trap[preset] = {k: sum(v) / len(v) for k, v in per_trap.items() if v}
        rep.trap_counts = {k: len(v) for k, v in per_trap.items()}
        rep.by_trap_only[preset] = {k: sum(v) / len(v) for k, v in only.items() if v}
        rep.only_counts = {k: len(v) for k, v in only.items()}
        rep.shown_rates[preset] = {
            b: sum(b in shown(t) for t in trajs) / max(len(trajs), 1) for b in BEHAVIORS
        }
    rep.ranks = dict(sorted(ranks.items()))
    total = sum(ranks.values())
    rep.rank1_share = ranks.get("1", 0) / total if total else 0.0
    if lengths:
        lengths.sort()
        rep.tokens = {
            "mean": sum(lengths) / len(lengths),
            "p50": lengths[len(lengths) // 2],
            "p90": lengths[int(len(lengths) * 0.9)],
            "max": lengths[-1],
        }
    return rep


def priming_yield(trajs: list[Trajectory]) -> tuple[int, int]:
    """(all four shown and right, all four shown and wrong) by teacher ground truth."""
    right = wrong = 0
    for t in trajs:
        if set(BEHAVIORS) <= shown(t):
            if _right(t):
                right += 1
            else:
                wrong += 1
    return right, wrong


def format_report(rep: CalibrationReport) -> str:
    """The calibration table as plain text."""
    traps = [t for t in (*TRAPS, "none") if rep.trap_counts.get(t)]
    lines = [f"dev tasks per preset: {rep.n_tasks}"]
    head = f"{'preset':<10} {'EM':>6} " + " ".join(f"{t:>12}" for t in traps)
    lines.append(head)
    lines.append(
        f"{'(n tasks)':<10} {'':>6} " + " ".join(f"{rep.trap_counts[t]:>12}" for t in traps)
    )
    for preset, acc in rep.accuracy.items():
        cells = " ".join(f"{rep.by_trap[preset].get(t, float('nan')):>12.1%}" for t in traps)
        lines.append(f"{preset:<10} {acc:>6.1%} {cells}")
    solo = [t for t in TRAPS if rep.only_counts.get(t)]
    if solo:
        lines.append("")
        lines.append("tasks carrying that trap alone:")
        lines.append(
            f"{'(n tasks)':<10} {'':>6} " + " ".join(f"{rep.only_counts[t]:>12}" for t in solo)
        )
        for preset in rep.accuracy:
            cells = " ".join(
                f"{rep.by_trap_only[preset].get(t, float('nan')):>12.1%}" for t in solo
            )
            lines.append(f"{preset:<10} {'':>6} {cells}")
    lines.append("")
    lines.append("behaviors shown (share of trajectories):")
    for preset, rates in rep.shown_rates.items():
        short = {
            "information_verification": "verify",
            "authority_evaluation": "authority",
            "adaptive_search": "adaptive",
            "error_recovery": "recovery",
        }
        cells = "  ".join(f"{short.get(b, b)} {r:>4.0%}" for b, r in rates.items())
        lines.append(f"  {preset:<10} {cells}")
    total = sum(rep.ranks.values())
    dist = "  ".join(f"{k}: {v} ({v / total:.0%})" for k, v in rep.ranks.items()) if total else ""
    lines.append(f"rank of the page holding the needed fact, over {total} searches: {dist}")
    lines.append(f"needed page at rank 1 in {rep.rank1_share:.1%} of searches")
    if rep.tokens:
        t = rep.tokens
        lines.append(
            f"trajectory length without the system prompt (~chars/4): mean {t['mean']:.0f}, "
            f"p50 {t['p50']}, p90 {t['p90']}, max {t['max']}"
        )
    if rep.yield_runs:
        lines.append(
            f"priming yield from {rep.yield_runs} all-behaviors runs on train: "
            f"{rep.all_four_right} show all four and are right, "
            f"{rep.all_four_wrong} show all four and are wrong"
        )
    for k, v in rep.seconds.items():
        lines.append(f"time {k}: {v:.1f} s")
    return "\n".join(lines)


DEFAULT_PRESETS: tuple[str, ...] = ("plain", "all", "verify", "authority", "adaptive", "recovery")


def ensure_index(world_dir: str | Path, index_dir: str | Path | None = None) -> Path:
    """The world's BM25 index (built under ``world_dir/index`` on first use)."""
    import json

    from searchprime.search.bm25 import FORMAT_VERSION, MANIFEST, BM25Config, build_bm25_index

    world_dir = Path(world_dir)
    index_dir = Path(index_dir) if index_dir else world_dir / "index"
    corpus = world_dir / "corpus.jsonl"
    manifest = index_dir / MANIFEST
    stale = not manifest.exists() or manifest.stat().st_mtime < corpus.stat().st_mtime
    if not stale:  # an index of an older format (a study folder from an earlier version)
        try:
            stale = json.loads(manifest.read_text()).get("format_version") != FORMAT_VERSION
        except ValueError:
            stale = True
    if stale:
        build_bm25_index(corpus, index_dir, BM25Config(workers=1))
    return index_dir


async def _run_preset(tasks, world, preset, search, cfg, out_path, concurrency) -> list[Trajectory]:
    from searchprime.agent.rollout import rollout
    from searchprime.world.teachers import Teacher

    got: list[Trajectory] = []
    teacher = Teacher(world, preset)
    Path(out_path).unlink(missing_ok=True)  # calibration runs afresh (the world may differ)
    await rollout(
        tasks, teacher, search, cfg, out_path, concurrency=concurrency, on_done=got.append
    )
    order = {t.id: i for i, t in enumerate(tasks)}
    return sorted(got, key=lambda t: order.get(t.task_id, 0))


def calibrate(
    world_dir: str | Path,
    *,
    n: int = 500,
    presets: Iterable[str] = DEFAULT_PRESETS,
    split: str = "dev",
    yield_runs: int = 0,
    out_dir: str | Path | None = None,
    index_dir: str | Path | None = None,
    concurrency: int = 16,
    on_preset: Any = None,
) -> tuple[CalibrationReport, dict[str, list[Trajectory]]]:
    """Run ``presets`` on the first ``n`` tasks of ``split`` through the real agent loop and
    BM25 top-3; with ``yield_runs``, also run the all-behaviors teacher on that many train
    tasks and count priming data. Returns the report and the trajectories by preset.

    Trajectory files in ``out_dir`` (``{split}-{preset}.jsonl``) are overwritten.
    """
    import asyncio
    import tempfile
    import time

    from searchprime.agent.loop import AgentConfig
    from searchprime.search.bm25 import BM25Search
    from searchprime.world.load import load_world

    world = load_world(world_dir)
    t0 = time.perf_counter()
    index = ensure_index(world_dir, index_dir)
    seconds = {"index": time.perf_counter() - t0}
    search = BM25Search.load(index)
    cfg = AgentConfig(max_turns=10, topk=3, thinking="explicit")
    tasks = world.split(split)[:n]
    tmp = tempfile.TemporaryDirectory() if out_dir is None else None
    out = Path(out_dir or tmp.name)
    out.mkdir(parents=True, exist_ok=True)

    async def main() -> dict[str, list[Trajectory]]:
        runs: dict[str, list[Trajectory]] = {}
        for preset in presets:
            t1 = time.perf_counter()
            path = out / f"{split}-{preset}.jsonl"
            runs[preset] = await _run_preset(tasks, world, preset, search, cfg, path, concurrency)
            seconds[f"{preset} ({len(tasks)} tasks)"] = time.perf_counter() - t1
            if on_preset:
                on_preset(preset)
        if yield_runs:
            t1 = time.perf_counter()
            train = world.split("train")[:yield_runs]
            path = out / "train-all-yield.jsonl"
            runs["_yield"] = await _run_preset(train, world, "all", search, cfg, path, concurrency)
            seconds[f"all on train ({len(train)} runs)"] = time.perf_counter() - t1
        await search.aclose()
        return runs

    try:
        runs = asyncio.run(main())
    finally:
        if tmp is not None:
            tmp.cleanup()
    yield_trajs = runs.pop("_yield", [])
    rep = summarize(runs, world)
    if yield_trajs:
        rep.yield_runs = len(yield_trajs)
        rep.all_four_right, rep.all_four_wrong = priming_yield(yield_trajs)
    rep.seconds = seconds
    return rep, runs

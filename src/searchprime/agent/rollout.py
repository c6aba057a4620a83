"""Concurrent, resumable rollouts: many agents in flight, one JSON line per finished attempt.

* At most ``concurrency`` agents run at once (asyncio; a fixed pool of workers pulls the next
  (task, attempt) pair, so a million tasks do not create a million coroutines up front).
* Each finished trajectory is appended to ``out_path`` at once with
  :class:`~searchprime.records.JsonlWriter` (one ``write`` + flush per record), so Ctrl-C or
  ``kill -9`` loses at most the attempts in flight; a partial last line is cut on the next open.
* A rerun skips the (task id, attempt) pairs already in ``out_path``: every pair is written
  exactly once across reruns.
* ``attempts=k`` samples k trajectories per task; each (task, attempt) gets its own seed,
  derived from ``seed``, the task id and the attempt index (stable across reruns).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from searchprime.agent.loop import AgentConfig, run_agent
from searchprime.errors import ConfigError, RecordError, ResumeError
from searchprime.llm.base import LLM
from searchprime.records import JsonlWriter, Task, Trajectory, iter_json_lines
from searchprime.search.base import SearchBackend

__all__ = ["RolloutSummary", "attempt_seed", "finished_keys", "rollout", "run_rollout"]


class RolloutSummary(BaseModel):
    """What one rollout run did (the attempts skipped on resume are not re-counted)."""

    model_config = ConfigDict(extra="forbid")

    out_path: str = Field(description="Where the trajectories went.")
    requested: int = Field(description="(task, attempt) pairs asked for.")
    skipped: int = Field(default=0, description="Pairs already in out_path before this run.")
    written: int = Field(default=0, description="Trajectories written by this run.")
    by_termination: dict[str, int] = Field(default_factory=dict)
    mean_turns: float = Field(default=0.0, description="Mean turns of the trajectories written.")
    elapsed_s: float = 0.0
    interrupted: bool = Field(default=False, description="True if the run stopped early.")

    def line(self) -> str:
        """A one-line human summary."""
        parts = ", ".join(f"{k} {v}" for k, v in sorted(self.by_termination.items())) or "none"
        return (
            f"{self.written} trajectories written to {self.out_path} ({parts}; "
            f"mean {self.mean_turns:.1f} turns; {self.skipped} already done; "
            f"{self.elapsed_s:.1f} s)"
            + (" - interrupted, rerun to resume" if self.interrupted else "")
        )


def attempt_seed(task_id: str, attempt: int, seed: int = 0) -> int:
    """A stable 31-bit seed for one (task, attempt), distinct across attempts."""
    digest = hashlib.sha256(f"{seed}\x00{task_id}\x00{attempt}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def finished_keys(
    out_path: str | Path, agent: dict[str, Any] | None = None
) -> set[tuple[str, int]]:
    """(task id, attempt) pairs already in ``out_path``.

    When ``agent`` is given, a record written with other agent settings raises
    :class:`ResumeError` (mixing settings in one file would corrupt the comparison).
    """
    path = Path(out_path)
    done: set[tuple[str, int]] = set()
    if not path.exists():
        return done
    for lineno, obj in iter_json_lines(path):
        if not obj:
            continue
        task_id, attempt = obj.get("task_id"), obj.get("attempt", 0)
        if not isinstance(task_id, str) or not isinstance(attempt, int):
            raise RecordError(path, lineno, "task_id", "not a trajectory record")
        if agent is not None and obj.get("agent") not in (None, agent):
            diff = sorted(
                k for k in set(agent) | set(obj["agent"]) if agent.get(k) != obj["agent"].get(k)
            )
            raise ResumeError(
                f"{path}:{lineno}: written with other agent settings ({', '.join(diff)}); "
                "use a new --out file or the same settings to resume"
            )
        done.add((task_id, attempt))
    return done


async def rollout(
    tasks: Sequence[Task],
    llm: LLM,
    search: SearchBackend,
    config: AgentConfig | None,
    out_path: str | Path,
    *,
    attempts: int = 1,
    concurrency: int = 8,
    on_done: Callable[[Trajectory], None] | None = None,
    seed: int = 0,
    fsync: bool = False,
) -> RolloutSummary:
    """Run ``attempts`` agents per task, ``concurrency`` at a time, appending to ``out_path``.

    ``on_done(trajectory)`` is called after each record is written (e.g. to advance a progress
    bar). Returns counts for this run; attempts already in ``out_path`` are skipped.
    """
    cfg = config or AgentConfig()
    if attempts < 1:
        raise ConfigError(f"attempts must be >= 1, got {attempts}")
    if concurrency < 1:
        raise ConfigError(f"concurrency must be >= 1, got {concurrency}")
    ids = [t.id for t in tasks]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise ConfigError(f"task id {dup!r} appears more than once; ids must be unique")

    start = time.perf_counter()
    done = finished_keys(out_path, cfg.model_dump(mode="json"))
    pending = [(t, a) for t in tasks for a in range(attempts) if (t.id, a) not in done]
    summary = RolloutSummary(
        out_path=str(out_path),
        requested=len(tasks) * attempts,
        skipped=len(tasks) * attempts - len(pending),
    )
    terminations: Counter[str] = Counter()
    total_turns = 0
    queue: Iterator[tuple[Task, int]] = iter(pending)

    writer = JsonlWriter(out_path, fsync=fsync)

    async def worker() -> None:
        nonlocal total_turns
        for task, attempt in queue:  # a shared iterator: each pair goes to one worker
            traj = await run_agent(
                task, llm, search, cfg, attempt=attempt, seed=attempt_seed(task.id, attempt, seed)
            )
            writer.write(traj)  # synchronous: one whole line, never interleaved
            summary.written += 1
            terminations[traj.termination] += 1
            total_turns += len(traj.turns)
            if on_done is not None:
                on_done(traj)

    workers = [asyncio.create_task(worker()) for _ in range(min(concurrency, len(pending)))]
    try:
        await asyncio.gather(*workers)
    except BaseException:
        summary.interrupted = True
        for w in workers:
            w.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        raise
    finally:
        writer.close()
        summary.by_termination = dict(terminations)
        summary.mean_turns = total_turns / summary.written if summary.written else 0.0
        summary.elapsed_s = time.perf_counter() - start
    return summary


def run_rollout(
    tasks: Sequence[Task],
    llm: LLM,
    search: SearchBackend,
    config: AgentConfig | None,
    out_path: str | Path,
    *,
    close: bool = True,
    **kwargs: Any,
) -> RolloutSummary:
    """Synchronous :func:`rollout`; with ``close`` the backends are closed in the same loop."""

    async def main() -> RolloutSummary:
        try:
            return await rollout(tasks, llm, search, config, out_path, **kwargs)
        finally:
            if close:
                for backend in (llm, search):
                    try:
                        await backend.aclose()
                    except Exception:  # noqa: BLE001, S110 - closing is best effort
                        pass

    return asyncio.run(main())

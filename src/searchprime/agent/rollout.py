"""Concurrent, resumable rollouts: many agents in flight, one JSON line per finished attempt.

* At most ``concurrency`` agents run at once (asyncio; a fixed pool of workers pulls the next
  (task, attempt) pair, so a million tasks do not create a million coroutines up front).
* Each finished trajectory is appended to ``out_path`` at once with
  :class:`~searchprime.records.JsonlWriter` (one ``write`` + flush per record), so Ctrl-C or
  ``kill -9`` loses at most the attempts in flight; a partial last line is cut on the next open.
* One writer per output: the run holds :class:`~searchprime.records.lock.OutputLock` on
  ``out_path``; a second run on the same file is refused with the holder's pid.
* Before any task the policy is prepared once (:func:`~searchprime.llm.base.prepare_backend`:
  the model lookup; a dead endpoint stops the run here). After ``stop_after_errors`` attempts in
  a row end in backend errors the run stops with one line instead of filling the file.
* A rerun skips the (task id, attempt) pairs already done. A pair whose last record is a backend
  error (``termination="error"``, ``meta["error_kind"]`` ``policy``/``search``) is not done: it
  is run again (``retry_errors=False`` keeps it) and the new record, appended later, supersedes
  it. Readers of a rollout file take the last record of each key.
* One bad record never stops the others: a trajectory that cannot be built or written becomes
  an error record for its key (``error_kind="record"``; kept on rerun, as it would recur).
* ``attempts=k`` samples k trajectories per task; each (task, attempt) gets its own seed,
  derived from ``seed``, the task id and the attempt index (stable across reruns).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from searchprime.agent.loop import BACKEND_ERROR_KINDS, AgentConfig, run_agent
from searchprime.errors import BackendError, ConfigError, RecordError, ResumeError
from searchprime.llm.base import LLM, prepare_backend
from searchprime.records import JsonlWriter, Task, Trajectory, iter_json_lines
from searchprime.records.lock import OutputLock
from searchprime.records.sanitize import TextBoundary, clean_text, format_error, one_line
from searchprime.search.base import SearchBackend

__all__ = [
    "RolloutSummary",
    "attempt_seed",
    "close_backends",
    "finished_keys",
    "is_retryable_error",
    "prepare_policy",
    "rollout",
    "run_rollout",
]

Key = tuple[str, int]


class RolloutSummary(BaseModel):
    """What one rollout run did (the attempts skipped on resume are not re-counted)."""

    model_config = ConfigDict(extra="forbid")

    out_path: str = Field(description="Where the trajectories went.")
    requested: int = Field(description="(task, attempt) pairs asked for.")
    skipped: int = Field(default=0, description="Pairs already done in out_path before this run.")
    retried: int = Field(
        default=0, description="Pairs run again because their last record was a backend error."
    )
    kept_errors: int = Field(
        default=0, description="Earlier backend-error records kept (retry_errors=False)."
    )
    written: int = Field(default=0, description="Trajectories written by this run.")
    by_termination: dict[str, int] = Field(default_factory=dict)
    backend_errors: int = Field(
        default=0, description="Attempts of this run that ended in a policy or search error."
    )
    record_errors: int = Field(
        default=0, description="Attempts whose trajectory could not be built or written."
    )
    surrogates_replaced: int = Field(
        default=0, description="Lone surrogates replaced by U+FFFD in the texts written."
    )
    mean_turns: float = Field(default=0.0, description="Mean turns of the trajectories written.")
    elapsed_s: float = 0.0
    interrupted: bool = Field(default=False, description="True if the run stopped early.")

    @property
    def failed(self) -> int:
        """Attempts of this run that ended in an error record (the CLI exits non-zero)."""
        return self.backend_errors + self.record_errors

    def line(self) -> str:
        """A one-line human summary."""
        parts = ", ".join(f"{k} {v}" for k, v in sorted(self.by_termination.items())) or "none"
        notes = [f"mean {self.mean_turns:.1f} turns", f"{self.skipped} already done"]
        if self.retried:
            notes.append(f"{self.retried} earlier errors retried")
        if self.kept_errors:
            notes.append(f"{self.kept_errors} earlier errors kept")
        if self.surrogates_replaced:
            notes.append(f"{self.surrogates_replaced} invalid characters replaced")
        notes.append(f"{self.elapsed_s:.1f} s")
        tail = ""
        if self.backend_errors:
            tail += f" - {self.backend_errors} backend errors, rerun to retry them"
        if self.record_errors:
            tail += f" - {self.record_errors} records could not be written (see their error)"
        if self.interrupted:
            tail += " - interrupted, rerun to resume"
        return f"{self.written} trajectories written to {self.out_path} ({parts}; " + (
            "; ".join(notes) + ")" + tail
        )


def attempt_seed(task_id: str, attempt: int, seed: int = 0) -> int:
    """A stable 31-bit seed for one (task, attempt), distinct across attempts."""
    digest = hashlib.sha256(f"{seed}\x00{task_id}\x00{attempt}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def is_retryable_error(record: dict[str, Any]) -> bool:
    """True for a record of a backend error (records from before ``error_kind`` count too)."""
    if record.get("termination") != "error":
        return False
    meta = record.get("meta")
    kind = meta.get("error_kind", "policy") if isinstance(meta, dict) else "policy"
    return kind in BACKEND_ERROR_KINDS


def _last_status(path: Path, agent: dict[str, Any] | None) -> dict[Key, bool]:
    """For each key in ``path``: whether its last record is a retryable backend error."""
    last: dict[Key, bool] = {}
    if not path.exists():
        return last
    for lineno, obj in iter_json_lines(path):
        if not obj:
            continue
        task_id, attempt = obj.get("task_id"), obj.get("attempt", 0)
        if not isinstance(task_id, str) or not isinstance(attempt, int):
            raise RecordError(path, lineno, "task_id", "not a trajectory record")
        if agent is not None and obj.get("agent") not in (None, agent):
            theirs = obj["agent"] if isinstance(obj["agent"], dict) else {}
            diff = sorted(k for k in set(agent) | set(theirs) if agent.get(k) != theirs.get(k))
            raise ResumeError(
                f"{path}:{lineno}: written with other agent settings ({', '.join(diff)}); "
                "use a new --out file or the same settings to resume"
            )
        last[(task_id, attempt)] = is_retryable_error(obj)
    return last


def finished_keys(
    out_path: str | Path, agent: dict[str, Any] | None = None, *, retry_errors: bool = True
) -> set[Key]:
    """(task id, attempt) pairs already done in ``out_path``.

    A pair whose last record is a backend error is not done when ``retry_errors`` (the
    default). When ``agent`` is given, a record written with other agent settings raises
    :class:`ResumeError` (mixing settings in one file would corrupt the comparison).
    """
    last = _last_status(Path(out_path), agent)
    return {key for key, failed in last.items() if not (retry_errors and failed)}


def _record_error(
    task: Task, attempt: int, cfg: AgentConfig, seed: int, exc: BaseException, started: float
) -> Trajectory:
    """The error record written for a key whose trajectory could not be built or written."""
    clean = TextBoundary()
    return Trajectory(
        task_id=clean.text(task.id),
        attempt=attempt,
        question=clean.text(task.question),
        answers=[clean.text(a) for a in task.answers],
        data_source=clean.optional(task.data_source),
        agent=cfg.model_dump(mode="json"),
        termination="error",
        error=one_line(f"the trajectory could not be recorded: {format_error(exc)}"),
        started_at=started,
        finished_at=time.time(),
        meta={"seed": seed, "error_kind": "record"},
    )


def _plan(
    tasks: Sequence[Task], attempts: int, last: dict[Key, bool], retry_errors: bool
) -> tuple[list[tuple[Task, int]], int, int]:
    """(pairs to run, earlier errors retried, earlier errors kept)."""
    pending: list[tuple[Task, int]] = []
    retried = kept = 0
    for task in tasks:
        task_key = clean_text(task.id)[0]  # the id as the record holds it
        for attempt in range(attempts):
            failed = last.get((task_key, attempt))
            if failed is None or (failed and retry_errors):
                pending.append((task, attempt))
                retried += bool(failed)
            else:
                kept += bool(failed)
    return pending, retried, kept


class _Tally:
    """Counts what the run wrote and watches for backend errors in a row."""

    def __init__(self, summary: RolloutSummary, stop_after_errors: int):
        self.summary, self.stop_after = summary, stop_after_errors
        self.terminations: Counter[str] = Counter()
        self.turns = 0
        self.in_a_row = 0

    def add(self, traj: Trajectory) -> None:
        s = self.summary
        s.written += 1
        self.terminations[traj.termination] += 1
        self.turns += len(traj.turns)
        s.surrogates_replaced += int(traj.meta.get("surrogates_replaced", 0))
        backend = is_retryable_error({"termination": traj.termination, "meta": traj.meta})
        s.backend_errors += backend
        s.record_errors += traj.termination == "error" and traj.meta.get("error_kind") == "record"
        self.in_a_row = self.in_a_row + 1 if backend else 0

    def check(self, traj: Trajectory) -> None:
        """Raise :class:`BackendError` once ``stop_after_errors`` backend errors came in a row."""
        if self.stop_after and self.in_a_row >= self.stop_after:
            raise BackendError(
                one_line(
                    f"stopped: {self.in_a_row} attempts in a row ended in backend errors, the "
                    f"last: {traj.error}; {self.summary.written} records written, rerun to "
                    "resume once the backend answers"
                )
            )

    def close(self, start: float) -> None:
        s = self.summary
        s.by_termination = dict(self.terminations)
        s.mean_turns = self.turns / s.written if s.written else 0.0
        s.elapsed_s = time.perf_counter() - start


def _write(
    writer: JsonlWriter, traj: Trajectory, task: Task, cfg: AgentConfig, started: float
) -> Trajectory:
    """Append ``traj``; one that cannot be serialised is replaced by its error record."""
    try:
        writer.write(traj)  # synchronous: one whole line, never interleaved
        return traj
    except (ValueError, TypeError) as exc:  # serialising failed before anything was written
        seed = traj.meta.get("seed", 0)
        fallback = _record_error(task, traj.attempt, cfg, seed, exc, started)
        try:
            writer.write(fallback)
        except (ValueError, TypeError):  # not even that: the key stays open for a rerun
            pass
        return fallback


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
    retry_errors: bool = True,
    stop_after_errors: int = 8,
    lock: bool = True,
) -> RolloutSummary:
    """Run ``attempts`` agents per task, ``concurrency`` at a time, appending to ``out_path``.

    ``on_done(trajectory)`` is called after each record is written (e.g. to advance a progress
    bar). Returns counts for this run; attempts already done in ``out_path`` are skipped, and
    those whose last record is a backend error are run again unless ``retry_errors=False``.
    Raises :class:`BackendError` (one line) when the policy cannot be prepared or when
    ``stop_after_errors`` attempts in a row (0: never stop) ended in backend errors; the records
    written until then stay. Raises :class:`~searchprime.records.lock.LockHeldError` when
    another process writes ``out_path``; ``lock=False`` when the caller holds that lock already.
    """
    cfg = config or AgentConfig()
    if attempts < 1:
        raise ConfigError(f"attempts must be >= 1, got {attempts}")
    if concurrency < 1:
        raise ConfigError(f"concurrency must be >= 1, got {concurrency}")
    if stop_after_errors < 0:
        raise ConfigError(f"stop_after_errors must be >= 0, got {stop_after_errors}")
    ids = [t.id for t in tasks]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise ConfigError(f"task id {dup!r} appears more than once; ids must be unique")

    out_path = Path(out_path)
    held = OutputLock(out_path, purpose="searchprime rollout") if lock else nullcontext()
    with held:
        start = time.perf_counter()
        last = _last_status(out_path, cfg.model_dump(mode="json"))
        pending, retried, kept = _plan(tasks, attempts, last, retry_errors)
        summary = RolloutSummary(
            out_path=str(out_path),
            requested=len(tasks) * attempts,
            skipped=len(tasks) * attempts - len(pending),
            retried=retried,
            kept_errors=kept,
        )
        tally = _Tally(summary, stop_after_errors)
        if not pending:
            tally.close(start)
            return summary
        await prepare_policy(llm)
        queue: Iterator[tuple[Task, int]] = iter(pending)
        writer = JsonlWriter(out_path, fsync=fsync)

        async def worker() -> None:
            for task, attempt in queue:  # a shared iterator: each pair goes to one worker
                attempt_s = attempt_seed(task.id, attempt, seed)
                started = time.time()
                try:
                    traj = await run_agent(task, llm, search, cfg, attempt=attempt, seed=attempt_s)
                except Exception as exc:  # noqa: BLE001 - one bad trajectory must not stop a run
                    traj = _record_error(task, attempt, cfg, attempt_s, exc, started)
                traj = _write(writer, traj, task, cfg, started)
                tally.add(traj)
                if on_done is not None:
                    on_done(traj)
                tally.check(traj)

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
            tally.close(start)
        return summary


async def prepare_policy(llm: LLM) -> None:
    """The once-per-run check of the policy (model lookup, endpoint reachable), if it has one;
    raises :class:`BackendError` as one line."""
    try:
        await prepare_backend(llm)
    except BackendError as exc:
        raise type(exc)(one_line(f"policy not ready: {exc}")) from None


async def close_backends(*backends: Any) -> None:
    """``aclose()`` every backend, best effort (a failing close never hides the run's result)."""
    for backend in backends:
        try:
            await backend.aclose()
        except Exception:  # noqa: BLE001, S110 - closing is best effort
            pass


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
                await close_backends(llm, search)

    return asyncio.run(main())

"""Why a trajectory failed: one failure mode per trajectory, from its moves (and the world).

A behavior annotator says which good moves a trajectory made; this module says what went wrong
when it missed. Modes, the first that applies:

* ``correct`` -- the answer is right (eval's one ``is_correct``);
* ``backend_error`` -- the model or search backend failed after retries;
* ``looped`` -- no answer, and one query (case and punctuation aside) was sent three or more
  times: the agent repeats itself to the turn limit;
* ``out_of_turns`` -- no answer within the turn (or context) budget, searching different things;
* ``plan_error`` -- the answer names an entity on the task's own answer chain other than the
  answer: it stopped at an intermediate hop or answered with the question's subject (world);
* ``overshot`` -- it searched the gold answer itself and then answered something past it (a
  fact about the answer, one hop too many): its plan had more hops than the question (world);
* ``near_duplicate`` -- the answer is a near-duplicate of a chain entity, or a value a hit
  stated for one: it followed the distractor (world);
* ``low_authority`` -- the answer is a value that a hit stated for a chain fact while a page of
  higher authority stated another: it copied the less reliable source (world);
* ``wrong_subject`` -- the answer is a value a hit stated for an entity off the question's
  chain (a round-up page lists many entities' facts): it read another entity's line (world);
* ``unsupported`` -- the answer appears in no search result: a guess;
* ``wrong_value`` -- any other wrong answer read off the results.

Without a world the five world modes cannot be told apart and fall to ``unsupported`` /
``wrong_value``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from searchprime.behaviors.grounded import _moves, _Resolver, _wording
from searchprime.eval.score import is_correct
from searchprime.records import Trajectory

if TYPE_CHECKING:
    from searchprime.world.load import World

__all__ = [
    "FAILURES",
    "FailureRun",
    "Failure",
    "Transition",
    "classify",
    "failure_run",
    "transitions",
]

FAILURES = (
    "correct",
    "backend_error",
    "looped",
    "out_of_turns",
    "plan_error",
    "overshot",
    "near_duplicate",
    "low_authority",
    "wrong_subject",
    "unsupported",
    "wrong_value",
)
#: Sending one query this many times counts as a loop.
LOOP_REPEATS = 3


@dataclass(frozen=True)
class Failure:
    """The mode of one trajectory and the shape of its search."""

    task_id: str
    mode: str
    why: str
    turns: int
    searches: int
    distinct_queries: int
    answered: bool


def _observed(traj: Trajectory) -> str:
    parts = [t.observation or "" for t in traj.turns]
    parts += [h.text for t in traj.turns for h in t.hits]
    return _wording(" ".join(parts))


def _world_mode(traj: Trajectory, world: World, res: _Resolver) -> tuple[str, str] | None:
    """A world mode of a wrong answer, or None when none applies."""
    task = world.task(traj.task_id) or world.task_by_question(traj.question)
    if task is None or traj.final_answer is None:
        return None
    chain = list(task.meta.get("gold_entities", []))
    moves = _moves(traj, res)
    answer = next((m for m in reversed(moves) if m.kind == "answer"), None)
    ent = world.entity_by_name(traj.final_answer)
    named = {ent.id} if ent else set(res.entities_in(traj.final_answer))
    if answer is not None and answer.entity:
        named.add(answer.entity)
    gold = set(chain[-1:])
    intermediate = named & (set(chain) - gold)
    if intermediate:
        eid = min(intermediate, key=chain.index)  # the earliest hop it stopped at
        hop = chain.index(eid)
        return "plan_error", f"answered {world.name(eid)}, hop {hop} of {len(chain) - 1}"
    searched_gold = [m for m in moves if m.kind == "search" and m.entity in gold]
    if searched_gold:
        first = searched_gold[0]
        return "overshot", (
            f"searched the answer {world.name(first.entity or '')} at turn {first.turn}, "
            f"then answered {traj.final_answer!r}"
        )
    twins = {t for e in chain for t in (world.entities[e].twin, world.entities[e].twin_of) if t}
    if named & twins:
        return "near_duplicate", f"answered near-duplicate {world.name(min(named & twins))}"
    claims = [c for m in moves if m.kind == "search" for c in m.claims]
    for c in claims:
        if c.value in named and c.subject in twins:
            return "near_duplicate", (
                f"answered {world.name(c.value)}, stated for near-duplicate {world.name(c.subject)}"
            )
    chain_set = set(chain)
    for c in claims:
        if c.value not in named or c.subject not in chain_set:
            continue
        rivals = [
            o
            for o in claims
            if (o.subject, o.relation) == (c.subject, c.relation) and o.value != c.value
        ]
        if rivals and max(o.authority for o in rivals) > c.authority:
            best = max(rivals, key=lambda o: o.authority)
            return "low_authority", (
                f"answered {world.name(c.value)} (authority {c.authority}) over "
                f"{world.name(best.value)} (authority {best.authority}) for the {c.relation} "
                f"of {world.name(c.subject)}"
            )
    for c in claims:
        if c.value in named and c.subject not in chain_set:
            return "wrong_subject", (
                f"answered {world.name(c.value)}, the {c.relation} of {world.name(c.subject)} "
                "(off the question's chain)"
            )
    return None


def classify(
    traj: Trajectory,
    world: World | None = None,
    res: _Resolver | None = None,
    correctness: str = "auto",
) -> Failure:
    """The failure mode of ``traj`` (``correct`` when it is right)."""
    queries = [t.action.content for t in traj.turns if t.action.kind == "search"]
    counts = Counter(_wording(q) for q in queries)
    top, times = counts.most_common(1)[0] if counts else ("", 0)
    answered = traj.termination == "answer" and traj.final_answer is not None

    def made(mode: str, why: str) -> Failure:
        return Failure(
            traj.task_id, mode, why, len(traj.turns), len(queries), len(counts), answered
        )

    if answered and is_correct(traj, correctness):
        return made("correct", "right answer")
    if traj.termination == "error":
        return made("backend_error", (traj.error or "backend failed")[:200])
    if not answered:
        if times >= LOOP_REPEATS:
            return made("looped", f"sent {top!r} {times} times, no answer")
        return made("out_of_turns", f"{len(queries)} searches ({len(counts)} different), no answer")
    if world is not None:
        found = _world_mode(traj, world, res or _Resolver(world))
        if found is not None:
            return made(*found)
    if _wording(traj.final_answer or "") not in _observed(traj):
        return made("unsupported", f"{traj.final_answer!r} appears in no search result")
    return made("wrong_value", f"answered {traj.final_answer!r}")


class FailureRun(BaseModel):
    """Failure modes of one run: counts, rates and the shape of its search."""

    run: str
    n: int
    modes: dict[str, int] = Field(description="Mode -> trajectories, every mode listed.")
    answered: float = Field(description="Fraction that gave an answer.")
    mean_turns: float
    mean_searches: float
    repeat_rate: float = Field(description="Fraction of searches that repeat an earlier query.")
    examples: dict[str, list[str]] = Field(
        default_factory=dict, description="Mode -> up to three 'task: why' lines."
    )

    def rate(self, mode: str) -> float:
        return self.modes.get(mode, 0) / self.n if self.n else 0.0


def failure_run(run: str, failures: Iterable[Failure]) -> FailureRun:
    """Summarize classified trajectories of one run."""
    items = list(failures)
    n = len(items)
    modes = {m: 0 for m in FAILURES}
    examples: dict[str, list[str]] = {}
    for f in items:
        modes[f.mode] += 1
        if f.mode != "correct" and len(examples.setdefault(f.mode, [])) < 3:
            examples[f.mode].append(f"{f.task_id}: {f.why}")
    searches = sum(f.searches for f in items)
    repeats = sum(f.searches - f.distinct_queries for f in items)
    return FailureRun(
        run=run,
        n=n,
        modes=modes,
        answered=sum(f.answered for f in items) / n if n else 0.0,
        mean_turns=sum(f.turns for f in items) / n if n else 0.0,
        mean_searches=searches / n if n else 0.0,
        repeat_rate=repeats / searches if searches else 0.0,
        examples=examples,
    )


class Transition(BaseModel):
    """Paired tasks of two runs: how each task's mode in ``a`` became its mode in ``b``."""

    a: str
    b: str
    n: int = Field(description="Tasks present in both runs.")
    counts: dict[str, dict[str, int]] = Field(description="Mode in a -> mode in b -> tasks.")
    lost: dict[str, int] = Field(description="Tasks right in a, wrong in b, by b's mode.")
    gained: dict[str, int] = Field(description="Tasks wrong in a, right in b, by a's mode.")


def transitions(a: str, fa: Iterable[Failure], b: str, fb: Iterable[Failure]) -> Transition:
    """Pair two runs' failures by task (first attempt of each) and count mode changes."""
    first_a: dict[str, Failure] = {}
    for f in fa:
        first_a.setdefault(f.task_id, f)
    first_b: dict[str, Failure] = {}
    for f in fb:
        first_b.setdefault(f.task_id, f)
    counts: dict[str, dict[str, int]] = {}
    lost: Counter[str] = Counter()
    gained: Counter[str] = Counter()
    shared = [t for t in first_a if t in first_b]
    for t in shared:
        ma, mb = first_a[t].mode, first_b[t].mode
        counts.setdefault(ma, {}).setdefault(mb, 0)
        counts[ma][mb] += 1
        if ma == "correct" and mb != "correct":
            lost[mb] += 1
        elif mb == "correct" and ma != "correct":
            gained[ma] += 1
    return Transition(a=a, b=b, n=len(shared), counts=counts, lost=dict(lost), gained=dict(gained))

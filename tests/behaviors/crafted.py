"""Crafted trajectories over a sandbox world: hits from real pages, moves by hand."""

from __future__ import annotations

from searchprime.records import BEHAVIORS, Action, BehaviorLabels, SearchHit, Task, Trajectory, Turn
from searchprime.search.format import format_hits
from searchprime.world import RELATIONS
from searchprime.world.load import Page, World


def _hit(page: Page) -> SearchHit:
    return SearchHit(
        doc_id=page.id, title=page.title, text=page.text, source=page.source, url=page.url
    )


def _turn(i: int, kind: str, content: str, pages=(), think: str | None = None) -> Turn:
    hits = [_hit(p) for p in pages]
    tag = f"<{kind}>{content}</{kind}>"
    return Turn(
        index=i,
        context=[0],
        output=(f"<think>{think}</think>\n" if think else "") + tag,
        action=Action(kind=kind, content=content, think=think),
        hits=hits,
        observation=f"<information>\n{format_hits(hits)}\n</information>"
        if kind == "search"
        else None,
    )


def _traj(task: Task, turns: list[Turn]) -> Trajectory:
    answer = turns[-1].action.content if turns[-1].action.kind == "answer" else None
    return Trajectory(
        task_id=task.id,
        question=task.question,
        answers=task.answers,
        turns=turns,
        final_answer=answer,
        termination="answer" if answer is not None else "max_turns",
    )


def _q(world: World, rel: str, eid: str) -> str:
    return RELATIONS[rel].queries[0].format(s=world.name(eid))


def _q2(world: World, rel: str, eid: str) -> str:
    return RELATIONS[rel].verify_queries[0].format(s=world.name(eid))


def _page(world: World, role: str, claim: tuple[str, str, str] | None = None, **kw) -> Page:
    for p in world.pages.values():
        if p.role == role and (claim is None or claim in p.claims):
            if all(getattr(p, k) == v for k, v in kw.items()):
                return p
    raise LookupError((role, claim, kw))


def _enc(world: World, rel: str, subj: str) -> Page:
    obj = world.fact(subj, rel).object
    return _page(world, "entity", (rel, subj, obj), source="encyclopedia", about=subj)


def _tasks(world: World, trap: str, hops: int | None = None) -> list[Task]:
    return [
        t
        for split in world.tasks.values()
        for t in split
        if trap in t.meta["traps"] and (hops is None or t.meta["hops"] == hops)
    ]


def _say(labels: BehaviorLabels) -> set[str]:
    return {b for b in BEHAVIORS if labels.has(b)}


def _conflict_task(world: World) -> tuple[Task, Page, Page]:
    for task in _tasks(world, "conflict", hops=1):
        f = world.chain(task)[0]
        if f.wrong:
            low = _page(world, "conflict", (f.relation, f.subject, f.wrong))
            return task, low, _enc(world, f.relation, f.subject)
    raise LookupError("no one-hop conflict task")


def _distractor_task(world: World) -> tuple[Task, str, str, str]:
    """A task whose first subject has a near-duplicate with an off-chain value."""
    for task in _tasks(world, "distractor", hops=2):
        f = world.chain(task)[0]
        twin = world.entities[f.subject].twin
        tf = world.fact(twin, f.relation) if twin else None
        if tf and tf.object not in task.meta["gold_entities"]:
            return task, f.subject, twin, tf.object
    raise LookupError("no two-hop distractor task")

"""The action-grounded annotator: teachers' ground truth, talkers, silent doers, unit moves."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from tests.behaviors.crafted import (
    _conflict_task,
    _distractor_task,
    _enc,
    _page,
    _q,
    _q2,
    _say,
    _tasks,
    _traj,
    _turn,
)

from searchprime.behaviors.agreement import (
    agreement,
    annotator_agreement,
    cohen_kappa,
    label_agreement,
    teacher_truth,
)
from searchprime.behaviors.grounded import ANNOTATOR, GroundedAnnotator, annotate_grounded
from searchprime.behaviors.rules import annotate_rules
from searchprime.records import (
    BEHAVIORS,
    BehaviorEvidence,
    BehaviorLabels,
    Trajectory,
)
from searchprime.world import RELATIONS, WorldConfig, build_world, load_world
from searchprime.world.load import World

IV, AE, AS, ER = BEHAVIORS
PRESETS = ("plain", "all", "verify", "authority", "adaptive", "recovery")


@pytest.fixture(scope="module")
def world_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from searchprime.world.calibrate import ensure_index

    out = tmp_path_factory.mktemp("world")
    build_world(WorldConfig(seed=7, entities=1500, tasks=1200), out)
    ensure_index(out)
    return out


@pytest.fixture(scope="module")
def world(world_dir: Path) -> World:
    return load_world(world_dir)


@pytest.fixture(scope="module")
def teacher_trajs(world: World, world_dir: Path) -> list[Trajectory]:
    """60 dev tasks x 6 teacher presets through the real agent loop and BM25 index."""
    from searchprime.agent.loop import AgentConfig, run_agent
    from searchprime.agent.rollout import attempt_seed
    from searchprime.search.bm25 import BM25Search
    from searchprime.world import Teacher

    search = BM25Search.load(world_dir / "index")
    cfg = AgentConfig(max_turns=10, topk=3)
    tasks = world.split("dev")[:60]

    async def main() -> list[Trajectory]:
        out: list[Trajectory] = []
        for k, preset in enumerate(PRESETS):
            teacher = Teacher(world, preset)
            out += await asyncio.gather(
                *(
                    run_agent(t, teacher, search, cfg, attempt=k, seed=attempt_seed(t.id, 0))
                    for t in tasks
                )
            )
        return out

    return asyncio.run(main())


def _moves(traj: Trajectory) -> set[str]:
    return {t.policy_meta.get("move") for t in traj.turns}


# -- against the teachers' ground truth ---------------------------------------------------
def test_grounded_f1_against_teacher_truth(world, teacher_trajs) -> None:
    trajs = [t.model_copy(deep=True) for t in teacher_trajs]
    for traj in trajs:
        traj.labels = annotate_grounded(traj, world)
    report = agreement(trajs)
    rows = report.behaviors
    scores = {b: (r.precision, r.recall, r.f1, r.support) for b, r in rows.items()}
    print("grounded vs teacher truth (precision, recall, F1, support):", scores)
    # moves that leave an action behind are found (almost) exactly
    for name in (AS, ER):
        assert rows[name].support >= 20 and rows[name].f1 >= 0.95, (name, rows[name])
    # verification: every search-backed verification is found, and nothing else; the
    # misses are teachers' "two pages in one result list agree" (reading, not a move)
    assert rows[IV].precision == 1.0 and rows[IV].f1 >= 0.55, rows[IV]
    for traj in trajs:
        moves = _moves(traj)
        if moves & {"verify_search"}:
            assert traj.labels.has(IV), traj.key
        elif IV in teacher_truth(traj) and not traj.labels.has(IV):
            assert moves & {"verify_cross", "verify_majority"}, (traj.key, moves)
    # authority: misses are a slip (the teacher took the forum's value) or a weighing whose
    # authoritative page was read first anyway; false alarms are majority votes, where the
    # majority is the better-sourced value
    assert rows[AE].precision >= 0.7 and rows[AE].f1 >= 0.45, rows[AE]
    for traj in trajs:
        truth, moves = teacher_truth(traj), _moves(traj)
        if traj.labels.has(AE) and AE not in truth:
            assert "verify_majority" in moves, (traj.key, moves)
        if AE in truth and not traj.labels.has(AE):
            assert moves & {"weigh", "weigh_slip"}, (traj.key, moves)


def test_grounded_reads_actions_and_observations_only(world, teacher_trajs) -> None:
    for traj in teacher_trajs[::5]:
        labels = annotate_grounded(traj, world)
        blind = traj.model_copy(deep=True)
        for turn in blind.turns:
            turn.policy_meta = {}
            turn.hits = []  # the observation text alone carries the results
            turn.action.think = "I must double-check; the forum is wrong, I'll go back."
            turn.output = f"<think>{turn.action.think}</think>"
        assert annotate_grounded(blind, world) == labels
        assert labels.annotator == ANNOTATOR
        for name in BEHAVIORS:
            ev = labels.behaviors[name]
            assert ev.present is not None and bool(ev.turns) == ev.present
            for i in ev.turns:
                assert f"turn {i}:" in ev.rationale or len(ev.turns) > 3


def test_plain_teacher_shows_no_moves(world, teacher_trajs) -> None:
    plain = [t for t in teacher_trajs if t.policy["name"] == "plain"]
    assert plain
    for traj in plain:
        labels = annotate_grounded(traj, world)
        assert not any(labels.has(b) for b in BEHAVIORS), (traj.key, labels)


def test_rules_and_grounded_agreement_on_teachers(world, teacher_trajs) -> None:
    rules = [t.model_copy(deep=True) for t in teacher_trajs]
    grounded = [t.model_copy(deep=True) for t in teacher_trajs]
    for a, b in zip(rules, grounded, strict=True):
        a.labels, b.labels = annotate_rules(a, world), annotate_grounded(b, world)
    report = annotator_agreement(rules, grounded)
    print("rules vs grounded:", {k: (v.raw, v.kappa) for k, v in report.behaviors.items()})
    assert (report.a, report.b, report.n, report.unmatched) == ("rules:v1", ANNOTATOR, 360, 0)
    assert report.behaviors[AS].kappa >= 0.95 and report.behaviors[ER].kappa >= 0.95
    # the rules credit reading-only verification; grounded never credits what rules deny
    assert report.behaviors[IV].only_b == 0 and report.behaviors[IV].only_a > 0


def test_annotator_protocol(world_dir, teacher_trajs) -> None:
    ann = GroundedAnnotator(world_dir)
    assert ann.name == "grounded"
    traj = next(t for t in teacher_trajs if t.policy["name"] == "all")
    labels = asyncio.run(ann.annotate(traj))
    assert labels == annotate_grounded(traj, ann.world)
    assert labels.notes and labels.notes[0].startswith("offered:")


# -- crafted trajectories ----------------------------------------------------------------
def test_authority_positive_and_negative(world) -> None:
    task, low, high = _conflict_task(world)
    f = world.chain(task)[0]
    q = _q(world, f.relation, f.subject)
    # the forum's value is read first; the answer takes the encyclopedia's
    good = annotate_grounded(
        _traj(task, [_turn(0, "search", q, [low, high]), _turn(1, "answer", world.name(f.object))]),
        world,
    )
    assert good.has(AE) and good.behaviors[AE].turns == [1]
    assert "takes" in good.behaviors[AE].rationale and "turn 1" in good.behaviors[AE].rationale
    bad = annotate_grounded(
        _traj(task, [_turn(0, "search", q, [low, high]), _turn(1, "answer", world.name(f.wrong))]),
        world,
    )
    assert not bad.has(AE) and bad.behaviors[AE].present is False
    # the encyclopedia ranked first: taking it is what an agent that never weighs does too
    first = annotate_grounded(
        _traj(task, [_turn(0, "search", q, [high, low]), _turn(1, "answer", world.name(f.object))]),
        world,
    )
    assert not first.has(AE)


def test_verification_positive_and_negative(world) -> None:
    task = next(
        t for s in world.tasks.values() for t in s if t.meta["hops"] == 1 and not t.meta["traps"]
    )
    f = world.chain(task)[0]
    enc = _enc(world, f.relation, f.subject)
    ans = world.name(f.object)
    first = _turn(0, "search", _q(world, f.relation, f.subject), [enc])
    again = _turn(1, "search", _q2(world, f.relation, f.subject), [enc])
    yes = annotate_grounded(_traj(task, [first, again, _turn(2, "answer", ans)]), world)
    assert _say(yes) == {IV} and yes.behaviors[IV].turns == [1]
    assert repr(again.action.content) in yes.behaviors[IV].rationale
    no = annotate_grounded(_traj(task, [first, _turn(1, "answer", ans)]), world)
    assert not no.has(IV) and no.behaviors[IV].rationale == "no move shows it"
    # a loop: the same query again (case and punctuation aside) returns the same pages
    q = _q(world, f.relation, f.subject)
    loop = [first, _turn(1, "search", q.upper() + "?", [enc]), _turn(2, "search", q, [enc])]
    looped = annotate_grounded(_traj(task, loop), world)
    assert not looped.has(IV)


def test_adaptive_positive_and_negative(world) -> None:
    task = next(t for t in _tasks(world, "alias", hops=1) if len(t.meta["traps"]) == 1)
    f = world.chain(task)[0]
    ent = world.entities[f.subject]
    alias_page = _page(world, "alias", alias_of=ent.id)
    miss_q = RELATIONS[f.relation].queries[0].format(s=ent.alias)
    miss = _turn(0, "search", miss_q, [alias_page])
    ans = world.name(f.object)
    found = _turn(1, "search", _q(world, f.relation, f.subject), [_enc(world, f.relation, ent.id)])
    yes = annotate_grounded(_traj(task, [miss, found, _turn(2, "answer", ans)]), world)
    assert _say(yes) == {AS} and yes.behaviors[AS].turns == [1]
    guess = annotate_grounded(_traj(task, [miss, _turn(1, "answer", ans)]), world)
    assert not guess.has(AS)
    same = _turn(1, "search", miss_q, [alias_page])  # the same query again is no reformulation
    repeat = annotate_grounded(_traj(task, [miss, same, _turn(2, "answer", ans)]), world)
    assert not repeat.has(AS)


def test_recovery_positive_and_negative(world) -> None:
    task, base, twin, wrong = _distractor_task(world)
    f0, f1 = world.chain(task)
    twin_page = _page(world, "twin", (f0.relation, twin, wrong))
    start = _turn(0, "search", _q(world, f0.relation, base), [twin_page])
    detour = _turn(1, "search", _q(world, f1.relation, wrong), [_enc(world, f1.relation, wrong)])
    back = _turn(2, "search", _q2(world, f0.relation, base), [_enc(world, f0.relation, base)])
    on = _turn(
        3, "search", _q(world, f1.relation, f0.object), [_enc(world, f1.relation, f0.object)]
    )
    gold = world.name(f1.object)
    yes = annotate_grounded(_traj(task, [start, detour, back, on, _turn(4, "answer", gold)]), world)
    assert _say(yes) == {ER} and yes.behaviors[ER].turns == [2]
    assert world.name(wrong) in yes.behaviors[ER].rationale
    wrong_end = world.name(world.fact(wrong, f1.relation).object)
    no = annotate_grounded(_traj(task, [start, detour, _turn(2, "answer", wrong_end)]), world)
    assert not no.has(ER) and no.behaviors[ER].present is False
    # without the world's task the answer chain is unknown, but the detour still shows
    foreign = _traj(task, [start, detour, back, on, _turn(4, "answer", gold)])
    foreign.task_id, foreign.question = "elsewhere-1", "Not a sandbox question?"
    assert annotate_grounded(foreign, world).has(ER)
    plain = _traj(task, [_turn(0, "answer", gold)])
    plain.task_id, plain.question = "elsewhere-2", "Not a sandbox question?"
    assert annotate_grounded(plain, world).behaviors[ER].present is None


def test_talker_gets_rules_yes_and_grounded_no(world) -> None:
    """Cue phrases in the thinking, a straight path in the actions."""
    task = next(t for t in _tasks(world, "conflict", hops=2) if world.chain(t)[0].wrong is None)
    f0, f1 = world.chain(task)
    mid, gold = world.name(f0.object), world.name(f1.object)
    talk = (
        "Two sources agree on it, so it is confirmed. The forum and the encyclopedia "
        "disagree; the encyclopedia is more reliable. The query was too specific, let me "
        "rephrase it. I made a mistake earlier, so let me go back."
    )
    traj = _traj(
        task,
        [
            _turn(
                0,
                "search",
                _q(world, f0.relation, f0.subject),
                [_enc(world, f0.relation, f0.subject)],
            ),
            _turn(
                1,
                "search",
                _q(world, f1.relation, f0.object),
                [_enc(world, f1.relation, f0.object)],
                talk,
            ),
            _turn(2, "answer", gold, think=talk),
        ],
    )
    assert mid in traj.turns[1].action.content
    assert _say(annotate_rules(traj, world)) == set(BEHAVIORS)
    assert _say(annotate_grounded(traj, world)) == set()


def test_silent_doer_gets_grounded_yes_and_rules_no(world) -> None:
    """Every move made with no words at all (one trajectory per behavior)."""
    task, low, high = _conflict_task(world)
    f = world.chain(task)[0]
    q = _q(world, f.relation, f.subject)
    weigh = _traj(
        task, [_turn(0, "search", q, [low, high]), _turn(1, "answer", world.name(f.object))]
    )
    enc = _enc(world, f.relation, f.subject)
    verify = _traj(
        task,
        [
            _turn(0, "search", q, [enc]),
            _turn(1, "search", _q2(world, f.relation, f.subject), [enc]),
            _turn(2, "answer", world.name(f.object)),
        ],
    )
    dtask, base, twin, wrong = _distractor_task(world)
    f0, f1 = world.chain(dtask)
    recover = _traj(
        dtask,
        [
            _turn(
                0,
                "search",
                _q(world, f0.relation, base),
                [_page(world, "twin", (f0.relation, twin, wrong))],
            ),
            _turn(1, "search", _q(world, f1.relation, wrong), [_enc(world, f1.relation, wrong)]),
            _turn(2, "search", _q2(world, f0.relation, base), [_enc(world, f0.relation, base)]),
            _turn(3, "answer", world.name(f1.object)),
        ],
    )
    atask = next(t for t in _tasks(world, "alias", hops=1) if len(t.meta["traps"]) == 1)
    fa = world.chain(atask)[0]
    ent = world.entities[fa.subject]
    adapt = _traj(
        atask,
        [
            _turn(
                0,
                "search",
                f"{ent.alias} {RELATIONS[fa.relation].noun}",
                [_page(world, "alias", alias_of=ent.id)],
            ),
            _turn(1, "search", _q(world, fa.relation, ent.id), [_enc(world, fa.relation, ent.id)]),
            _turn(2, "answer", world.name(fa.object)),
        ],
    )
    for name, traj in ((AE, weigh), (IV, verify), (ER, recover), (AS, adapt)):
        assert annotate_grounded(traj, world).has(name), name
        assert not annotate_rules(traj, world).has(name), name


# -- annotator-vs-annotator agreement ----------------------------------------------------
def _labels(**present: bool | None) -> BehaviorLabels:
    return BehaviorLabels(
        annotator="x", behaviors={b: BehaviorEvidence(present=p) for b, p in present.items()}
    )


def test_cohen_kappa_matches_reference() -> None:
    sklearn = pytest.importorskip("sklearn.metrics")
    table = (7, 3, 2, 8)  # both, only a, only b, neither
    a = [1] * 7 + [1] * 3 + [0] * 2 + [0] * 8
    b = [1] * 7 + [0] * 3 + [1] * 2 + [0] * 8
    assert cohen_kappa(*table) == pytest.approx(sklearn.cohen_kappa_score(a, b))
    assert cohen_kappa(5, 0, 0, 0) is None  # both always yes: chance agreement is 1
    assert cohen_kappa(0, 0, 0, 0) is None


def test_label_agreement_counts_and_unknowns() -> None:
    pairs = [
        (_labels(a=True, b=True), _labels(a=True, b=None)),
        (_labels(a=True, b=False), _labels(a=False, b=False)),
        (_labels(a=False, b=True), _labels(a=False, b=True)),
        (_labels(a=False), _labels(a=True)),
    ]
    rows = label_agreement(pairs, ("a", "b"))
    a, b = rows["a"], rows["b"]
    assert (a.n, a.both, a.only_a, a.only_b, a.neither, a.unknown) == (4, 1, 1, 1, 1, 0)
    assert a.raw == 0.5 and a.kappa == pytest.approx(0.0)
    assert (b.n, b.unknown, b.both, b.neither, b.raw) == (2, 2, 1, 1, 1.0)
    assert b.kappa == pytest.approx(1.0)

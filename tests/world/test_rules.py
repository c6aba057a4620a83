"""The rules annotator against the teachers' ground truth."""

from __future__ import annotations

from searchprime.behaviors.agreement import agreement
from searchprime.behaviors.rules import ANNOTATOR, annotate_rules
from searchprime.records import BEHAVIORS


def test_rules_agree_with_teacher_ground_truth(world, mixed_trajectories) -> None:
    trajs = [t.model_copy(deep=True) for t in mixed_trajectories]
    for traj in trajs:
        traj.labels = annotate_rules(traj, world)
    report = agreement(trajs)
    for name in BEHAVIORS:
        scores = report.behaviors[name]
        assert scores.support >= 10, name
        assert scores.f1 is not None and scores.f1 >= 0.95, (name, scores)


def test_rules_read_only_the_text(world, mixed_trajectories) -> None:
    pointed: dict[str, int] = dict.fromkeys(BEHAVIORS, 0)
    for traj in mixed_trajectories[::7]:
        labels = annotate_rules(traj, world)
        blind = traj.model_copy(deep=True)
        for turn in blind.turns:
            turn.policy_meta = {}
            turn.hits = []  # observations alone carry the results
        assert annotate_rules(blind, world) == labels
        assert labels.annotator == ANNOTATOR
        for name in BEHAVIORS:
            ev = labels.behaviors[name]
            assert ev.present is not None
            assert bool(ev.turns) == ev.present
            for i in ev.turns:  # evidence points at a turn where the teacher showed it
                assert name in traj.turns[i].policy_meta["behaviors"], (name, traj.key, i)
                pointed[name] += 1
    assert all(n >= 3 for n in pointed.values()), pointed  # the sample exercises every rule


def test_plain_trajectories_get_no_labels(world, mixed_trajectories) -> None:
    plain = [t for t in mixed_trajectories if t.policy["name"] == "plain"]
    assert plain
    for traj in plain:
        assert not any(annotate_rules(traj, world).has(b) for b in BEHAVIORS)

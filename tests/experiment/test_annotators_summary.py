"""Both annotators in the study's summary: a model that says the behaviors without making the
moves (or the reverse) shows up as a gap between the rules and the grounded rates, and in their
agreement."""

from __future__ import annotations

from pathlib import Path

import pytest

from searchprime.experiment import ExperimentConfig, report_rows, score_and_label, summarize
from searchprime.experiment.summary import grounded_row, label_grounded
from searchprime.records import BEHAVIORS, Task, Trajectory
from searchprime.world import RELATIONS, WorldConfig, build_world, load_world
from searchprime.world.load import World
from tests.behaviors.crafted import _enc, _turn

IV, AE, AS, ER = BEHAVIORS
TALK = (
    "Two sources agree on it, so it is confirmed. The forum and the encyclopedia disagree; the "
    "encyclopedia is more reliable. The query was too specific, let me rephrase it. I made a "
    "mistake earlier, so let me go back."
)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    out = tmp_path_factory.mktemp("world")
    build_world(WorldConfig(seed=1, entities=300, tasks=900), out)
    return load_world(out)


def _runs(world: World, task: Task, talk: bool) -> Trajectory:
    """A straight path down the task's chain (with the cue phrases when ``talk``) or the same
    path plus a second search that verifies the first fact, silently."""
    chain = world.chain(task)
    turns, think = [], TALK if talk else None
    for f in chain:
        q = RELATIONS[f.relation].queries[0].format(s=world.name(f.subject))
        turns.append(_turn(len(turns), "search", q, [_enc(world, f.relation, f.subject)], think))
        if not talk and f is chain[0]:
            q2 = RELATIONS[f.relation].verify_queries[0].format(s=world.name(f.subject))
            turns.append(_turn(len(turns), "search", q2, [_enc(world, f.relation, f.subject)]))
    answer = world.name(chain[-1].object)
    turns.append(_turn(len(turns), "answer", answer, think=think))
    return Trajectory(
        task_id=task.id,
        question=task.question,
        answers=task.answers,
        turns=turns,
        final_answer=answer,
        termination="answer",
    )


def test_talkers_and_silent_doers_show_up_in_the_summary(world):
    tasks = [t for t in world.split("dev") if t.meta["hops"] == 2][:4]
    cfg = ExperimentConfig.model_validate({"eval": {"resamples": 200}})

    def report_row(talk: bool) -> dict:
        rules = score_and_label([_runs(world, t, talk) for t in tasks], world)
        row = summarize(rules, tasks, world)
        row.update(grounded_row(rules, label_grounded(rules, world), tasks, cfg))
        return row

    talker, doer = report_row(talk=True), report_row(talk=False)
    assert talker["em"] == doer["em"] == 1.0
    # the talker: every behavior by its words, none by its moves; the rules say yes alone
    assert talker["behavior"][IV] == 1.0 and talker["grounded"]["behavior"][IV] == 0.0
    assert talker["behavior"][ER] == 1.0 and talker["grounded"]["behavior"][ER] == 0.0
    agree = talker["agreement"][IV]
    assert agree == {"raw": 0.0, "kappa": 0.0, "n": 4, "only_rules": 4, "only_grounded": 0}
    # the silent doer verifies every first fact: the grounded annotator alone says so
    assert doer["behavior"][IV] == 0.0 and doer["grounded"]["behavior"][IV] == 1.0
    assert doer["agreement"][IV]["only_grounded"] == 4 and doer["agreement"][IV]["raw"] == 0.0
    lo, hi = doer["grounded"]["ci95"][IV]
    assert lo == hi == 1.0
    # where both are silent they agree
    assert doer["agreement"][ER] == {
        "raw": 1.0,
        "kappa": None,
        "n": 4,
        "only_rules": 0,
        "only_grounded": 0,
    }

    rows = {r["model"]: r for r in report_rows({"arms": {"talker": talker, "doer": doer}})}
    assert (
        rows["talker"]["verify"].startswith("1.00/") and rows["talker"]["verify:g"][:5] == "0.00/"
    )
    assert rows["doer"]["verify:g"].startswith("1.00/")
    assert float(rows["talker"]["agree"]) < float(rows["doer"]["agree"])


def test_rows_without_grounded_labels_keep_the_old_table(tmp_path: Path):
    row = {
        "n": 1,
        "em": 0.0,
        "f1": 0.0,
        "valid_turns": 1.0,
        "turns": 1.0,
        "searches": 0.0,
        "behavior": dict.fromkeys(BEHAVIORS, 0.0),
        "behavior_offered": dict.fromkeys(BEHAVIORS, None),
    }
    (only,) = report_rows({"arms": {"old": row}})
    assert not any(k.endswith(":g") for k in only) and "agree" not in only
    mixed = report_rows({"arms": {"old": row, "new": {**row, "grounded": row, "agreement": {}}}})
    assert mixed[0]["verify:g"] == "-" and mixed[1]["verify:g"] == "0.00/-"
    assert mixed[1]["agree"] == "-"


def test_summary_counts_failure_modes(world):
    tasks = [t for t in world.split("dev") if t.meta["hops"] == 2][:3]
    right = score_and_label([_runs(world, t, talk=False) for t in tasks[:2]], world)
    f = world.chain(tasks[2])[0]
    q = RELATIONS[f.relation].queries[0].format(s=world.name(f.subject))
    page = _enc(world, f.relation, f.subject)
    loop = Trajectory(
        task_id=tasks[2].id,
        question=tasks[2].question,
        answers=tasks[2].answers,
        turns=[_turn(i, "search", q, [page]) for i in range(3)],
        termination="max_turns",
    )
    row = summarize([*right, *score_and_label([loop], world)], tasks, world)
    assert row["failures"]["correct"] == 2 and row["failures"]["looped"] == 1
    assert sum(row["failures"].values()) == 3
    # 2 right runs x 3 searches, all different; the loop: 3 searches, 2 of them repeats
    assert row["repeated_searches"] == pytest.approx(2 / 9)

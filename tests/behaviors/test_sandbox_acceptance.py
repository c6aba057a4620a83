"""Acceptance on the sandbox: 2,000 teacher trajectories from mixed presets, labelled by the
rules annotator, scored, counted; each behavior is more frequent among correct trajectories,
and the rules agree with the teachers' ground truth."""

from __future__ import annotations

import pytest

from searchprime.records import BEHAVIORS

pytestmark = pytest.mark.slow

PRESETS = ("plain", "all", "verify", "authority", "adaptive", "recovery")


def test_stats_on_2000_sandbox_trajectories(tmp_path) -> None:
    from searchprime.agent.loop import AgentConfig
    from searchprime.agent.rollout import run_rollout
    from searchprime.behaviors.agreement import agreement_file
    from searchprime.behaviors.annotate import RulesAnnotator, annotate_file
    from searchprime.behaviors.stats import compute_stats
    from searchprime.eval.score import score_file
    from searchprime.records import Task, read_jsonl
    from searchprime.report.plots import plot_behavior_stats
    from searchprime.search.bm25 import BM25Search, build_bm25_index
    from searchprime.world import Teacher, WorldConfig, build_world, load_world

    wdir = tmp_path / "world"
    build_world(WorldConfig(seed=7, entities=800, tasks=2600), wdir)
    build_bm25_index(wdir / "corpus.jsonl", tmp_path / "index")
    world = load_world(wdir)
    tasks = list(read_jsonl(wdir / "tasks" / "train.jsonl", Task))
    per = 334
    assert len(tasks) >= per * len(PRESETS)
    mixed = tmp_path / "mixed.jsonl"
    for k, preset in enumerate(PRESETS):
        run_rollout(
            tasks[k * per : (k + 1) * per],
            Teacher(world, preset),
            BM25Search.load(tmp_path / "index"),
            AgentConfig(),
            mixed,
        )
    labelled = tmp_path / "labelled.jsonl"
    res = annotate_file(mixed, labelled, RulesAnnotator(wdir))
    assert res.written == per * len(PRESETS) == 2004
    scored = tmp_path / "scored.jsonl"
    score_file(labelled, scored)

    (run,) = compute_stats([scored]).runs
    assert run.n == 2004 and run.n_correct + run.n_incorrect == run.n
    for name in BEHAVIORS:
        b = run.behaviors[name]
        assert b.present > 0
        assert b.rate_correct > b.rate_incorrect, name  # the study's pattern
    paths = plot_behavior_stats(compute_stats([scored], group_by="policy.name"), tmp_path / "plots")
    assert all(p.stat().st_size > 10_000 for p in paths)

    report = agreement_file(scored)
    assert report.n == 2004
    for name in BEHAVIORS:
        assert report.behaviors[name].f1 >= 0.95, name

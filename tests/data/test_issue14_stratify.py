"""``--stratify`` on top-level task fields (data_source) and refusal of non-scalar fields."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest
from sp_trajs import make_traj
from typer.testing import CliRunner

from searchprime.data.select import SelectionConfig, SelectionError, select_trajectories
from searchprime.errors import ConfigError
from searchprime.records import Task, Trajectory, write_jsonl
from searchprime.tasks import load_tasks

BP_SAMPLE = Path("/work/shared/data/mhqa_sample.json")


def _bp_pool(tasks: list[Task]) -> list[Trajectory]:
    """One answered run per task; the k-th source solves 10 - k of its 10 tasks (skewed mix)."""
    sources = sorted({t.data_source for t in tasks})
    seen: Counter[str] = Counter()
    trajs = []
    for t in tasks:
        rank, k = seen[t.data_source], sources.index(t.data_source)
        seen[t.data_source] += 1
        solved = rank < 10 - k
        answer = t.answers[0] if solved else "no idea"
        traj = make_traj(t.id, em=1.0 if solved else 0.0, answer=answer)
        trajs.append(traj.model_copy(update={"answers": t.answers, "data_source": t.data_source}))
    return trajs


@pytest.fixture
def bp_sample(tmp_path: Path) -> Path:
    if not BP_SAMPLE.exists():
        pytest.skip("the BP multi-hop sample is not on this machine")
    return Path(shutil.copy(BP_SAMPLE, tmp_path / "mhqa_sample.json"))


def test_prime_stratify_data_source_keeps_the_bp_source_mix(bp_sample: Path, tmp_path) -> None:
    from searchprime.cli.main import app

    tasks = load_tasks(bp_sample)
    pool = Counter(t.data_source for t in tasks)
    assert len(pool) == 7 and set(pool.values()) == {10}
    traj_file = tmp_path / "trajs.jsonl"
    write_jsonl(traj_file, _bp_pool(tasks))
    n = 35
    # without stratify the solved runs are 10:9:...:4 over the sources, so the draw skews
    plain = select_trajectories(
        _bp_pool(tasks), SelectionConfig(strategy="correct", n=n, seed=1)
    ).trajectories
    source = {t.id: t.data_source for t in tasks}
    plain_mix = Counter(source[t.task_id] for t in plain)
    assert max(plain_mix.values()) - min(plain_mix.values()) > 2

    args = ["prime", str(traj_file), "--strategy", "correct", "--n", str(n)]
    args += ["--stratify", "data_source", "--tasks", str(bp_sample), "--out", str(tmp_path / "o")]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    card = json.loads((tmp_path / "o" / "selection.json").read_text())
    assert card["config"]["stratify"] == "data_source"
    picked = {k: v["selected"] for k, v in card["strata"].items()}
    assert set(picked) == set(pool) and sum(picked.values()) == n
    for src, count in picked.items():
        assert abs(count - n * pool[src] / len(tasks)) <= 1, (src, picked)
    shown = " ".join(res.output.split())  # the console wraps long lines
    assert "stratified by data_source (selected/pool): 2wiki: " in shown


def _tasks(meta: dict, data_source: str | None = "nq") -> tuple[list, dict[str, Task]]:
    trajs = [make_traj(f"t{i}") for i in range(4)]
    tasks = {
        t.task_id: Task(id=t.task_id, question="q?", answers=["Paris"], data_source=data_source,
                        meta=meta)
        for t in trajs
    }  # fmt: skip
    return trajs, tasks


@pytest.mark.parametrize(
    ("field", "kind"), [("extra_info", "an object"), ("aliases", "a list"), ("answers", "a list")]
)
def test_non_scalar_fields_are_refused_by_name(field: str, kind: str) -> None:
    trajs, tasks = _tasks({"extra_info": {"split": "dev"}, "aliases": ["a", "b"]})
    for task in tasks.values():
        task.meta["answers"] = task.answers  # `answers` is no top-level stratum either
    cfg = SelectionConfig(strategy="correct", n=2, stratify=field)
    with pytest.raises(ConfigError, match=rf"stratify: {field}: is {kind} in task 't0'"):
        select_trajectories(trajs, cfg, tasks)


def test_dotted_keys_reach_into_meta_objects() -> None:
    trajs, tasks = _tasks({"extra_info": {"split": "dev"}})
    tasks["t1"].meta = {"extra_info": {"split": "test"}}
    cfg = SelectionConfig(strategy="correct", n=4, stratify="extra_info.split")
    got = select_trajectories(trajs, cfg, tasks)
    assert got.card.strata == {
        "dev": {"pool": 3, "selected": 3},
        "test": {"pool": 1, "selected": 1},
    }
    with pytest.raises(ConfigError, match=r"e\.g\. extra_info\.split"):
        select_trajectories(trajs, SelectionConfig(strategy="correct", n=2, stratify="extra_info"),
                            tasks)  # fmt: skip
    tasks["t2"].meta = {"extra_info": {}}
    with pytest.raises(SelectionError, match="has no key 'split' in meta field 'extra_info'"):
        select_trajectories(trajs, cfg, tasks)


def test_top_level_field_missing_names_the_task() -> None:
    trajs, tasks = _tasks({}, data_source=None)
    cfg = SelectionConfig(strategy="correct", n=2, stratify="data_source")
    with pytest.raises(SelectionError, match="task 't0' has no data_source"):
        select_trajectories(trajs, cfg, tasks)

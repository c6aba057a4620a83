"""`score --data-source`: files that name no source (GAIA, HLE) are scored under the given name."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from searchprime.records import Action, Trajectory, Turn, write_jsonl


def _answered(task_id: str, answer: str) -> Trajectory:
    turn = Turn(
        index=0,
        context=[0],
        output=f"<answer>{answer}</answer>",
        action=Action(kind="answer", content=answer),
    )
    return Trajectory(
        task_id=task_id,
        question=f"q{task_id}?",
        answers=[],
        turns=[turn],
        final_answer=answer,
        termination="answer",
    )


def test_score_names_the_source_of_tasks_that_have_none(tmp_path: Path) -> None:
    tasks = tmp_path / "gaia.jsonl"  # a GAIA/HLE export: no data_source field
    rows = [
        {"id": "a", "question": "Capital of France?", "answer": "Paris"},
        {"id": "b", "question": "2+2?", "answer": "4"},
    ]
    tasks.write_text("".join(json.dumps(r) + "\n" for r in rows))
    trajs = tmp_path / "t.jsonl"
    write_jsonl(trajs, [_answered("a", "Paris"), _answered("b", "5")])
    cmd = [sys.executable, "-c", "from searchprime.cli.main import main; main()", "score"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def by_source(*extra: str) -> dict:
        out = tmp_path / f"s{len(extra)}.jsonl"
        r = subprocess.run(
            [*cmd, str(trajs), "--out", str(out), "--tasks", str(tasks), *extra],
            capture_output=True,
            text=True,
            env=env,
        )
        assert r.returncode == 0, r.stderr
        return json.loads(Path(str(out) + ".summary.json").read_text())["by_source"]

    assert list(by_source()) == ["unknown"]
    named = by_source("--data-source", "gaia")
    assert list(named) == ["gaia"]
    assert named["gaia"]["n"] == 2 and named["gaia"]["em"] == 0.5

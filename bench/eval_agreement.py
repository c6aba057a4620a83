"""How far two greedy evaluations of one recipe agree, task by task.

Two files of dev trajectories of the same tasks — one model evaluated twice (the eval's own
noise: llama.cpp batches the agents' turns as they arrive), or two trainings of one recipe (a
model trained again on another machine, in another precision) — compared on the tasks both
hold: the same trajectory (every message), the same final answer, EM of each, and the paired
difference with its bootstrap CI and McNemar's p.

    python bench/eval_agreement.py A.jsonl B.jsonl --json bench/results/X.json --note "..."
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rl import machine_meta  # noqa: E402  (bench/rl.py, the bench scripts' shared machine card)
from searchprime.eval.score import score_one  # noqa: E402
from searchprime.eval.uncertainty import paired  # noqa: E402
from searchprime.records import Trajectory, read_jsonl  # noqa: E402


def agreement(a_path: Path, b_path: Path) -> dict[str, Any]:
    """The agreement of two trajectory files on the (task, attempt) keys both hold."""
    a = {t.key: t for t in read_jsonl(a_path, Trajectory)}
    b = {t.key: t for t in read_jsonl(b_path, Trajectory)}
    keys = sorted(set(a) & set(b))
    if not keys:
        raise SystemExit(f"{a_path} and {b_path} share no (task, attempt)")
    em_a = {f"{k[0]}#{k[1]}": float(score_one(a[k], a[k].answers).em) for k in keys}
    em_b = {f"{k[0]}#{k[1]}": float(score_one(b[k], b[k].answers).em) for k in keys}
    turns = [(len(a[k].messages), len(b[k].messages)) for k in keys]
    return {
        "a": str(a_path),
        "b": str(b_path),
        "tasks": len(keys),
        "only_a": len(set(a) - set(b)),
        "only_b": len(set(b) - set(a)),
        "same_trajectory": sum(a[k].messages == b[k].messages for k in keys),
        "same_answer": sum(a[k].final_answer == b[k].final_answer for k in keys),
        "em_a": sum(em_a.values()) / len(keys),
        "em_b": sum(em_b.values()) / len(keys),
        "messages_a": sum(x for x, _ in turns) / len(keys),
        "messages_b": sum(y for _, y in turns) / len(keys),
        "paired_em_b_minus_a": paired(em_a, em_b),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("a", type=Path)
    parser.add_argument("b", type=Path)
    parser.add_argument("--json", type=Path, help="write the record here")
    parser.add_argument("--note", action="append", default=[], help="a note for the record")
    args = parser.parse_args()
    row = agreement(args.a, args.b)
    p = row["paired_em_b_minus_a"]
    print(
        f"{row['tasks']} tasks: same trajectory {row['same_trajectory']}, same answer "
        f"{row['same_answer']}; EM {row['em_a']:.3f} -> {row['em_b']:.3f}, paired "
        f"{p['delta']:+.3f} [{p['ci95'][0]:+.3f}, {p['ci95'][1]:+.3f}] "
        f"({p['gained']} gained, {p['lost']} lost; McNemar p {p['mcnemar_p']:.3f})"
    )
    if args.json:
        record = {
            "bench": "eval_agreement",
            "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            **row,
            "notes": args.note,
            "machine": machine_meta(),
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()

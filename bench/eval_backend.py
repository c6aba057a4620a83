"""Dev-rollout throughput of a trained checkpoint: llama.cpp (``eval.backend: llamacpp``) against
in-process transformers batches (``eval.backend: hf``), same tasks, same agent settings.

Multi-turn agents re-send their whole history every turn. transformers decodes each batch from
scratch (static batches: a batch waits for its longest row); llama.cpp keeps each agent's
earlier turns in its slot's KV cache and refills a slot as soon as its agent's turn ends. Both
arms run in this process one after the other on the same machine; the report gives seconds
per task, the ratio, and whether the two backends' greedy trajectories ended the same way.

    .venv/bin/python bench/eval_backend.py runs/study --model primed --tasks 16

``--backends llamacpp --max-batch 8,16`` compares llama.cpp slot counts instead (the first arm
is the baseline of the ratios; use more tasks than slots, or every arm runs all at once).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

from searchprime.agent.rollout import rollout
from searchprime.experiment import ExperimentConfig, eval_agent_config, open_policy
from searchprime.records import Trajectory, read_jsonl
from searchprime.search.bm25 import BM25Search
from searchprime.world import load_world
from searchprime.world.calibrate import ensure_index


def run_arm(cfg: ExperimentConfig, model_dir: Path, tasks: list, search, agent, out: Path) -> dict:
    """Roll ``tasks`` out with ``cfg.eval.backend``; seconds exclude server start and export."""
    with open_policy(cfg, model_dir) as llm:
        t0 = time.perf_counter()
        asyncio.run(rollout(tasks, llm, search, agent, out, concurrency=cfg.eval.max_batch))
        seconds = time.perf_counter() - t0
    trajs = list(read_jsonl(out, Trajectory))
    turns = sum(len(t.turns) for t in trajs)
    return {
        "backend": cfg.eval.backend,
        "max_batch": cfg.eval.max_batch,
        "seconds": round(seconds, 1),
        "s_per_task": round(seconds / len(tasks), 2),
        "turns_per_task": round(turns / len(trajs), 2),
        "answers": {t.task_id: t.final_answer for t in trajs},
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("study", type=Path, help="A finished `searchprime experiment` folder.")
    ap.add_argument("--model", default="base", help="Which sft/<name> checkpoint.")
    ap.add_argument("--tasks", type=int, default=16, help="First N dev tasks.")
    ap.add_argument("--backends", default="hf,llamacpp", help="Comma-separated backends.")
    ap.add_argument(
        "--max-batch", default=None, help="Comma-separated agents at once (default: the study's)."
    )
    ap.add_argument("--json", type=Path, help="Also write the results here.")
    args = ap.parse_args(argv)

    base = ExperimentConfig.model_validate_json((args.study / "experiment.json").read_text())
    world = load_world(args.study / "world")
    search = BM25Search.load(ensure_index(args.study / "world"))
    tasks = world.split("dev")[: args.tasks]
    agent = eval_agent_config(base)  # the study's own dev-rollout settings
    model_dir = args.study / "sft" / args.model
    batches = [int(b) for b in args.max_batch.split(",")] if args.max_batch else [None]
    arms = [(b, m) for b in args.backends.split(",") for m in batches]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for backend, max_batch in arms:
            update = {"backend": backend, "max_batch": max_batch or base.eval.max_batch}
            cfg = base.model_copy(update={"eval": base.eval.model_copy(update=update)})
            out = Path(tmp) / f"{backend}-{update['max_batch']}.jsonl"
            res = run_arm(cfg, model_dir, tasks, search, agent, out)
            print(
                f"{backend:9s} x{res['max_batch']:<3d} {res['seconds']:7.1f} s  "
                f"{res['s_per_task']:5.2f} s/task  {res['turns_per_task']:.2f} turns/task",
                flush=True,
            )
            results.append(res)
    first = results[0]
    for res in results:
        res["speedup_vs_first"] = round(first["seconds"] / res["seconds"], 2)
        res["same_final_answer_as_first"] = sum(
            first["answers"].get(k) == v for k, v in res["answers"].items()
        )
    summary = {
        "model": args.model,
        "tasks": len(tasks),
        "arms": [{k: v for k, v in r.items() if k != "answers"} for r in results],
    }
    for res in results[1:]:
        print(
            f"{res['backend']} x{res['max_batch']} vs {first['backend']} x{first['max_batch']}: "
            f"{res['speedup_vs_first']}x; same final answer on "
            f"{res['same_final_answer_as_first']}/{len(tasks)} tasks"
        )
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

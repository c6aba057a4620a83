"""Does RL raise dev EM in the sandbox? GRPO from a study's checkpoint, dev EM before and after.

Takes a finished ``searchprime experiment`` folder (``make run`` leaves ``runs/quickstart``;
``bench/study_primed.yaml`` leaves the acceptance-size one), trains ``sft/<start>`` with GRPO
on train tasks the teachers never saw (after both teacher pools), and rolls the model out
greedily on the same first N dev tasks before and after RL with the study's own eval settings.
Reports EM
before/after, the paired difference with a bootstrap 95% CI over tasks and McNemar's exact test,
the training curve (reward, EM, zero-variance groups per step) and where the time went.

Every part is cached under ``--out`` (rollouts resume record by record, RL from its last
checkpoint), so a run cut by the end of a session continues where it stopped:

    .venv/bin/python bench/rl_sandbox.py runs/quickstart --start base --steps 16 --dev 200 \\
        --json bench/results/rl_sandbox_cpu.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import time
from pathlib import Path

import numpy as np

from searchprime.agent.rollout import rollout
from searchprime.behaviors.annotate import RulesAnnotator
from searchprime.eval import paired
from searchprime.eval.score import score_one
from searchprime.experiment import ExperimentConfig, eval_agent_config, open_policy
from searchprime.experiment.config import RLSection
from searchprime.experiment.rl_stage import rl_run_config
from searchprime.records import Trajectory, read_jsonl, write_jsonl
from searchprime.rl.grpo import SUMMARY_FILE, RLSummary, read_steps, run_rl
from searchprime.search.bm25 import BM25Search
from searchprime.train.cpu_bf16 import cpu_has_native_bf16
from searchprime.world import load_world
from searchprime.world.calibrate import ensure_index


def dev_em(cfg: ExperimentConfig, model_dir: Path, tasks: list, search, out: Path) -> dict:
    """Greedy dev rollout with the study's eval settings; EM per task (missing = 0)."""
    t0 = time.perf_counter()
    clock = out.with_suffix(".seconds.json")  # rollout seconds summed over resumed runs
    spent = json.loads(clock.read_text())["seconds"] if clock.exists() else 0.0
    done = {t.task_id for t in read_jsonl(out, Trajectory)} if out.exists() else set()
    if len(done & {t.id for t in tasks}) < len(tasks):
        with open_policy(cfg, model_dir) as llm:
            asyncio.run(
                rollout(
                    tasks, llm, search, eval_agent_config(cfg), out, concurrency=cfg.eval.max_batch
                )
            )
        spent += time.perf_counter() - t0
        clock.write_text(json.dumps({"seconds": spent}) + "\n")
    by_id = {t.task_id: t for t in read_jsonl(out, Trajectory)}
    em = [float(score_one(by_id[t.id], t.answers).em or 0) if t.id in by_id else 0.0 for t in tasks]
    turns = [len(by_id[t.id].turns) for t in tasks if t.id in by_id]
    return {
        "em": em,
        "mean_em": float(np.mean(em)),
        "turns": float(np.mean(turns)) if turns else 0.0,
        "seconds": round(spent, 1),
    }


def _weights(text: str) -> dict[str, float]:
    """``em=1,answered=0.2`` -> ``{"em": 1.0, "answered": 0.2}``."""
    try:
        pairs = [item.split("=", 1) for item in text.split(",") if item.strip()]
        return {name.strip(): float(w) for name, w in pairs}
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected name=weight,... got {text!r}") from None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("study", type=Path, help="A finished `searchprime experiment` folder.")
    ap.add_argument("--start", default="base", help="Which sft/<name> checkpoint.")
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--dev", type=int, default=200, help="First N dev tasks.")
    ap.add_argument("--tasks", type=int, default=400, help="RL train tasks (after the pools).")
    ap.add_argument("--group", type=int, default=4, help="num_generations (G).")
    ap.add_argument("--tasks-per-step", type=int, default=2)
    ap.add_argument("--lr", type=float, default=1e-5)
    ap.add_argument(
        "--rewards",
        type=_weights,
        default={"em": 1.0},
        help="name=weight,... (default em=1; e.g. em=1,answered=0.2).",
    )
    ap.add_argument("--sampler", default="hf", choices=["hf", "llamacpp"])
    ap.add_argument("--max-turns", type=int, default=None, help="Default: the study's eval.")
    ap.add_argument("--threads", type=int, default=1, help="torch threads while training.")
    ap.add_argument(
        "--micro-batch",
        type=int,
        default=None,
        help="Episodes per forward/backward pass (default: one group). Training memory grows "
        "~1 MB per padded token: primed episodes (~2,500 tokens) need 1.",
    )
    ap.add_argument("--out", type=Path, default=None, help="Default: STUDY/rl_bench/START.")
    ap.add_argument("--json", type=Path, help="Also write the results here.")
    args = ap.parse_args(argv)

    study = args.study
    cfg = ExperimentConfig.model_validate_json((study / "experiment.json").read_text())
    out = args.out or study / "rl_bench" / args.start
    out.mkdir(parents=True, exist_ok=True)
    world_dir = study / "world"
    world = load_world(world_dir)
    index = ensure_index(world_dir)
    search = BM25Search.load(index)
    dev = world.split("dev")[: args.dev]
    first = cfg.teachers.base_pool + cfg.teachers.prime_pool
    train = world.split("train")[first : first + args.tasks]
    tasks_file = out / "tasks.jsonl"
    if not tasks_file.exists():
        write_jsonl(tasks_file, train)
    load = {"start": os.getloadavg()}
    start_dir = study / "sft" / args.start

    before = dev_em(cfg, start_dir, dev, search, out / "dev_before.jsonl")
    print(
        f"before RL: EM {before['mean_em']:.3f} on {len(dev)} dev tasks "
        f"({before['seconds']:.0f} s)",
        flush=True,
    )
    load["after_before_eval"] = os.getloadavg()

    rl_dir = out / "rl"
    # the experiment's own mapping of a study onto an RL run (episode settings from its eval)
    section = RLSection(
        start_from=[args.start],
        tasks=args.tasks,
        rewards=args.rewards,
        max_steps=args.steps,
        num_generations=args.group,
        tasks_per_step=args.tasks_per_step,
        micro_batch=args.micro_batch,
        learning_rate=args.lr,
        max_turns=args.max_turns,
        sampler=args.sampler,
        save_steps=2,
        # bf16 autocast where the CPU has it natively (1.2x for SFT); the hf sampler's
        # logprobs only feed the (off) importance correction, so fp32 parity is not needed
        trl={"disable_tqdm": True, "bf16": cpu_has_native_bf16()},
    )
    rl_study = cfg.model_copy(
        update={"rl": section, "eval": cfg.eval.model_copy(update={"threads": args.threads})}
    )
    rl_cfg = rl_run_config(rl_study, start_dir, rl_dir, tasks=tasks_file, index_dir=index)
    t0 = time.perf_counter()
    if (rl_dir / SUMMARY_FILE).exists():
        summary = RLSummary.model_validate_json((rl_dir / SUMMARY_FILE).read_text())
    else:
        summary = run_rl(rl_cfg, annotator=RulesAnnotator(world_dir), log=print)
    rl_seconds = round(time.perf_counter() - t0, 1)
    load["after_rl"] = os.getloadavg()
    steps = read_steps(rl_dir)
    for r in steps:
        print(
            f"step {r['step']:3d}  reward {r['reward_mean']:.3f}  em {r['em']:.3f}  "
            f"zero-var groups {r['zero_std_groups']:.2f}  turns {r['turns']:.1f}  "
            f"rollout {r['time']['rollout_s']:.0f}s train {r['time'].get('train_s', 0):.0f}s",
            flush=True,
        )

    after = dev_em(cfg, rl_dir, dev, search, out / "dev_after.jsonl")
    load["end"] = os.getloadavg()
    test = paired(before["em"], after["em"])
    print(
        f"after RL:  EM {after['mean_em']:.3f}; paired delta {test['delta']:+.3f} "
        f"(95% CI {test['ci95'][0]:+.3f} .. {test['ci95'][1]:+.3f}; gained {test['gained']}, "
        f"lost {test['lost']}, McNemar p {test['mcnemar_p']:.3f})",
        flush=True,
    )
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    result = {
        "bench": "rl_sandbox",
        "commit": commit,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "processor": platform.processor(),
        },
        "loadavg": load,
        "study": str(study),
        "start": args.start,
        "dev_tasks": len(dev),
        "rl": {
            "steps": summary.steps,
            "episodes": summary.episodes,
            "lr": args.lr,
            "rewards": args.rewards,
            "group": args.group,
            "tasks_per_step": args.tasks_per_step,
            "sampler": args.sampler,
            # summed over the logged steps: a resumed run's own clock misses earlier runs
            "seconds": round(sum(r["time"]["step_s"] for r in steps), 1) or rl_seconds,
            "reward_first": summary.reward_first,
            "reward_last": summary.reward_last,
            "zero_std_groups": summary.zero_std_groups,
        },
        "curve": [
            {
                k: r.get(k)
                for k in (
                    "step",
                    "reward_mean",
                    "em",
                    "zero_std_groups",
                    "turns",
                    "searches",
                    "behaviors",
                    "time",
                )
            }
            for r in steps
        ],
        "before": {k: v for k, v in before.items() if k != "em"},
        "after": {k: v for k, v in after.items() if k != "em"},
        "paired": test,
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

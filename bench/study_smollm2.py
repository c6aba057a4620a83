"""The offline Behavior Priming study on SmolLM2-135M (DESIGN.md §5-6), end to end.

world -> plain teacher on train pool A, all-behavior teacher on a disjoint pool B -> score +
rules annotator -> prime (base: plain trajectories; primed: the `behavior` selection of B) ->
SFT SmolLM2 -> base; SFT base -> primed -> roll both out on dev through the real agent loop +
BM25 (LocalHF) -> score, annotate, compare EM, valid-turn rate and behavior rates.

Every stage writes its files under ``--out`` and is skipped when they exist, so a rerun resumes.

Sizing (measured 2026-11-27 on this 2-core box): SmolLM2 full SFT runs at ~45 tokens/s per
CPU thread (LoRA ~55; bench/sft.py). In SmolLM2 tokens (2000-entity world, ``trajectory``
shape) a plain-teacher trajectory is ~940 tokens and an all-behavior one ~2300 (max ~2900);
``turn`` shape costs ~3.6x more (each turn repeats its context). So 160 + 160 trajectories
is ~0.52M tokens per epoch, ~1.6 h on 2 threads: a 30-minute CPU run must shrink to e.g.
``--base-n 40 --prime-n 16 --epochs 1`` (~75k tokens, ~14 min of SFT), or run SFT on a GPU.
Measured yields: the plain teacher is right on 35% (so ``--pool-n`` ~3x ``--base-n`` for the
`correct` base); the all-behavior teacher shows all four (rules annotator) on 5.8% (261 of
4500; 78 of them wrong; error recovery, 24%, is the bottleneck), so ``--prime-pool-n`` must
be ~17x ``--prime-n``. World, index, 5000 teacher rollouts and prime take ~20 s together.

    .venv/bin/python bench/study_smollm2.py --out runs/study                 # the study
    .venv/bin/python bench/study_smollm2.py --out /tmp/s --model tiny --dev-n 8 \
        --pool-n 40 --prime-pool-n 40 --base-n 10 --prime-n 5 --epochs 1   # plumbing smoke
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

from searchprime.records import BEHAVIORS, Trajectory, read_jsonl, write_jsonl


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def rollout_to(path: Path, tasks, llm, search, cfg, concurrency: int) -> list[Trajectory]:
    from searchprime.agent.rollout import rollout

    asyncio.run(rollout(tasks, llm, search, cfg, path, concurrency=concurrency))
    return list(read_jsonl(path, Trajectory))


def score_and_label(trajs: list[Trajectory], world) -> list[Trajectory]:
    from searchprime.behaviors.rules import annotate_rules
    from searchprime.eval.score import score_one

    for t in trajs:
        t.scores = score_one(t, t.answers)
        t.labels = annotate_rules(t, world)
    return trajs


def summarize(trajs: list[Trajectory], world) -> dict:
    """EM, valid-turn rate, behavior rates overall and where the task offers the situation."""
    from searchprime.world import behaviors_offered

    n = len(trajs) or 1
    turns = [x for t in trajs for x in t.turns]
    row: dict = {
        "n": len(trajs),
        "em": sum((t.scores.em or 0.0) for t in trajs) / n,
        "valid_turns": sum(x.action.kind != "invalid" for x in turns) / (len(turns) or 1),
        "answered": sum(t.termination == "answer" for t in trajs) / n,
        "turns": len(turns) / n,
        "searches": sum(t.n_searches for t in trajs) / n,
        "behavior": {},
        "behavior_offered": {},
    }
    for b in BEHAVIORS:
        row["behavior"][b] = sum(t.labels.has(b) for t in trajs) / n
        offered = [t for t in trajs if b in behaviors_offered(world.task(t.task_id))]
        row["behavior_offered"][b] = (
            sum(t.labels.has(b) for t in offered) / len(offered) if offered else None
        )
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/study")
    ap.add_argument("--model", default="smollm2", choices=["smollm2", "tiny"])
    ap.add_argument("--entities", type=int, default=2000)
    ap.add_argument("--tasks", type=int, default=5000)
    ap.add_argument("--pool-n", type=int, default=500, help="train tasks of the plain teacher")
    ap.add_argument(
        "--prime-pool-n",
        type=int,
        default=3000,
        help="train tasks of the all-behavior teacher (the rules find all four in ~1 of 17)",
    )
    ap.add_argument("--base-n", type=int, default=160, help="plain trajectories for the base")
    ap.add_argument("--base-strategy", default="correct", help="selection of plain ones")
    ap.add_argument("--prime-n", type=int, default=160, help="`behavior` trajectories")
    ap.add_argument("--dev-n", type=int, default=100)
    ap.add_argument(
        "--shape",
        default="trajectory",
        choices=["turn", "trajectory"],
        help="trajectory: each token once (about 4x fewer tokens than turn on CPU)",
    )
    ap.add_argument("--epochs", type=float, default=2.0)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument(
        "--max-length", type=int, default=3072, help="longer samples are dropped (counted)"
    )
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-batch", type=int, default=16, help="LocalHF decoding batch")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--until", default="all", choices=["prime", "sft", "all"], help="stop after this stage"
    )
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from searchprime.agent.loop import AgentConfig, default_sampling
    from searchprime.data.prime import prime
    from searchprime.data.select import SelectionConfig
    from searchprime.search.bm25 import BM25Search
    from searchprime.train.models import init_tiny, prepare_smollm2
    from searchprime.train.sft import SFTRunConfig, run_sft
    from searchprime.world import Teacher, WorldConfig, build_world, load_world
    from searchprime.world.calibrate import ensure_index

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    t_all = time.perf_counter()

    def stage(name: str):
        class _S:
            def __enter__(self):
                self.t = time.perf_counter()
                log(f"{name} ...")

            def __exit__(self, *exc):
                seconds[name] = time.perf_counter() - self.t
                log(f"{name} done in {seconds[name]:.0f}s")

        return _S()

    world_dir = out / "world"
    with stage("world + index"):
        if not (world_dir / "world.json").exists():
            build_world(
                WorldConfig(seed=args.seed, entities=args.entities, tasks=args.tasks), world_dir
            )
        world = load_world(world_dir)
        search = BM25Search.load(ensure_index(world_dir))
    teacher_cfg = AgentConfig(max_turns=10, topk=3, thinking="explicit")
    train = world.split("train")
    pool_a = train[: args.pool_n]
    pool_b = train[args.pool_n : args.pool_n + args.prime_pool_n]
    assert not {t.id for t in pool_a} & {t.id for t in pool_b}

    with stage("teachers"):
        runs = {}
        for name, preset, pool in (("plain", "plain", pool_a), ("all", "all", pool_b)):
            path = out / f"teacher-{name}.jsonl"
            trajs = rollout_to(path, pool, Teacher(world, preset), search, teacher_cfg, 32)
            runs[name] = score_and_label(trajs, world)
            write_jsonl(out / f"teacher-{name}.scored.jsonl", runs[name])

    with stage("prime"):
        base_card = prime(
            [out / "teacher-plain.scored.jsonl"],
            SelectionConfig(strategy=args.base_strategy, n=args.base_n, seed=args.seed),
            out / "data" / "base",
            shape=args.shape,
        )
        prime_card = prime(
            [out / "teacher-all.scored.jsonl"],
            SelectionConfig(strategy="behavior", n=args.prime_n, seed=args.seed),
            out / "data" / "primed",
            shape=args.shape,
        )
        for card in (base_card, prime_card):
            for line in card.summary_lines():
                log("  " + line)

    if args.until == "prime":
        log(f"stopping after prime: {seconds}")
        return

    with stage("policy model"):
        if args.model == "smollm2":
            start = prepare_smollm2(out / "models" / "smollm2")
        else:
            start = out / "models" / "tiny"
            if not (start / "config.json").exists():
                init_tiny(start)

    trl = {
        "num_train_epochs": args.epochs,
        "learning_rate": args.lr,
        "per_device_train_batch_size": args.batch_size,
        "max_length": args.max_length,
        "save_steps": 100,
        "logging_steps": 5,
        "seed": args.seed,
    }
    models = {}
    for name, base, data in (("base", start, "base"), ("primed", None, "primed")):
        dest = out / "sft" / name
        base = base or models["base"]
        with stage(f"sft {name}"):
            if not (dest / "searchprime_sft.json").exists():
                s = run_sft(
                    SFTRunConfig(
                        model=str(base),
                        data=str(out / "data" / data),
                        output_dir=str(dest),
                        resume=any(dest.glob("checkpoint-*")),
                        trl=trl,
                    )
                )
                log(f"  {s.steps} steps, loss {s.first_loss} -> {s.last_loss}")
        models[name] = dest

    if args.until == "sft":
        log(f"stopping after sft: {seconds}")
        return

    from searchprime.llm.local_hf import LocalHF

    dev = world.split("dev")[: args.dev_n]
    eval_cfg = AgentConfig(
        max_turns=10,
        topk=3,
        thinking="explicit",
        sampling=default_sampling().model_copy(update={"temperature": 0.0}),
    )
    report: dict = {"sizes": vars(args), "selection": {}, "arms": {}}
    report["selection"] = {"base": base_card.counts, "primed": prime_card.counts}
    for name, path in models.items():
        with stage(f"rollout {name} on dev"):
            llm = LocalHF(path, max_batch=args.max_batch, threads=args.threads)
            trajs = rollout_to(
                out / f"dev-{name}.jsonl", dev, llm, search, eval_cfg, args.max_batch
            )
            asyncio.run(llm.aclose())
            trajs = score_and_label(trajs, world)
            write_jsonl(out / f"dev-{name}.scored.jsonl", trajs)
            report["arms"][name] = summarize(trajs, world)
    for name in ("plain", "all"):
        report["arms"][f"teacher-{name}"] = summarize(runs[name], world)
    report["seconds"] = {**seconds, "total": time.perf_counter() - t_all}
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")

    log("arm            n    EM  valid  turns  srch  " + "  ".join(b[:8] for b in BEHAVIORS))
    for name, r in report["arms"].items():
        rates = "  ".join(
            f"{r['behavior'][b]:.2f}/{r['behavior_offered'][b] or 0:.2f}" for b in BEHAVIORS
        )
        log(
            f"{name:13s} {r['n']:4d} {r['em']:.3f} {r['valid_turns']:.3f} {r['turns']:5.1f} "
            f"{r['searches']:5.1f}  {rates}"
        )
    log(f"total {report['seconds']['total']:.0f}s -> {out / 'report.json'}")


if __name__ == "__main__":
    main()

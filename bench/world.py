"""Sandbox world acceptance bench: prints the calibration table and checks every target.

    .venv/bin/python bench/world.py [--out runs/bench-world] [--seed 0]

1. build a 10k-entity, 20k-task world (target: <= 60 s);
2. run every teacher preset on 500 dev tasks through the real agent loop and BM25 top-3
   (targets: all-behaviors >= 90% EM, plain <= 60%, each behavior alone >= +15 points on the
   trap it targets, needed page at rank 1 in <= 50% of searches);
3. run the all-behaviors teacher 5,000 times on train (targets: >= 300 trajectories show all
   four behaviors and are right, >= 150 show all four and are wrong);
4. time 2,000 teacher trajectories (target: <= 60 s on 2 cores);
5. score the rules annotator against the teachers' ground truth on 1,000 mixed-preset
   trajectories (target: F1 >= 0.95 per behavior).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from searchprime.behaviors.agreement import agreement
from searchprime.behaviors.rules import annotate_rules
from searchprime.records import BEHAVIORS
from searchprime.world import WorldConfig, build_world, load_world
from searchprime.world.calibrate import calibrate, format_report

GAINS = (
    ("verify", "conflict"),
    ("authority", "conflict"),
    ("adaptive", "alias"),
    ("adaptive", "overspecific"),
    ("recovery", "distractor"),
)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=None, help="Keep world and runs here.")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    tmp = tempfile.TemporaryDirectory() if args.out is None else None
    root = Path(args.out or tmp.name)
    world_dir, runs_dir = root / "world", root / "runs"
    checks: list[tuple[str, bool, str]] = []

    t0 = time.perf_counter()
    card = build_world(WorldConfig(seed=args.seed, entities=10_000, tasks=20_000), world_dir)
    build_s = time.perf_counter() - t0
    checks.append(("10k entities + 20k tasks in <= 60 s", build_s <= 60, f"{build_s:.1f} s"))
    print(
        f"world: {card['counts']['documents']} pages; trap rates (dev): {card['trap_rates']['dev']}"
    )

    rep, runs = calibrate(world_dir, n=500, yield_runs=5000, out_dir=runs_dir)
    print()
    print(format_report(rep))
    print()
    acc = rep.accuracy
    checks.append(("all-behaviors teacher >= 90% EM", acc["all"] >= 0.9, f"{acc['all']:.1%}"))
    checks.append(("plain teacher <= 60% EM", acc["plain"] <= 0.6, f"{acc['plain']:.1%}"))
    for preset, trap in GAINS:
        gain = rep.by_trap[preset][trap] - rep.by_trap["plain"][trap]
        solo = rep.by_trap_only[preset].get(trap, 0) - rep.by_trap_only["plain"].get(trap, 0)
        checks.append(
            (f"{preset} alone: +15 points on {trap}", gain >= 0.15,
             f"{gain * 100:+.1f} (on tasks with only that trap: {solo * 100:+.1f})")
        )  # fmt: skip
    checks.append(
        ("needed page at rank 1 in <= 50% of searches", rep.rank1_share <= 0.5,
         f"{rep.rank1_share:.1%}")
    )  # fmt: skip
    checks.append(
        (">= 300 all-four right of <= 5000 runs", rep.all_four_right >= 300,
         f"{rep.all_four_right} of {rep.yield_runs}")
    )  # fmt: skip
    checks.append(
        (">= 150 all-four wrong of <= 5000 runs", rep.all_four_wrong >= 150,
         f"{rep.all_four_wrong} of {rep.yield_runs}")
    )  # fmt: skip

    # 2,000 teacher trajectories, timed on their own (loop + BM25 + teacher + JSONL writing)
    t0 = time.perf_counter()
    timing, _ = calibrate(
        world_dir, n=2000, presets=["all"], split="train", out_dir=root / "timing"
    )
    run_s = time.perf_counter() - t0
    checks.append(
        ("2,000 teacher trajectories <= 60 s", run_s <= 60,
         f"{run_s:.1f} s on {os.cpu_count()} CPUs")
    )  # fmt: skip

    world = load_world(world_dir)
    mixed = []
    per = 1000 // len(runs) + 1
    for trajs in runs.values():
        mixed += trajs[:per]
    mixed = mixed[:1000]
    for traj in mixed:
        traj.labels = annotate_rules(traj, world)
    agree = agreement(mixed)
    print(f"rules annotator vs teacher ground truth on {len(mixed)} mixed-preset trajectories:")
    for name in BEHAVIORS:
        s = agree.behaviors[name]
        print(
            f"  {name:<26} precision {s.precision:.3f}  recall {s.recall:.3f}  "
            f"F1 {s.f1:.3f}  (support {s.support})"
        )
        checks.append((f"rules F1 >= 0.95: {name}", (s.f1 or 0) >= 0.95, f"{s.f1:.3f}"))

    print()
    for label, ok, value in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {label:<44} {value}")
    if tmp is not None:
        tmp.cleanup()
    return 0 if all(ok for _, ok, _ in checks) else 1


if __name__ == "__main__":
    sys.exit(main())

"""Cost of the policy-entropy pass (``eval.entropy``) on a study's dev trajectories: logits
formed only where a counted token is predicted (``logits_to_keep``) against every position's
logits (the pass before it), same model, same trajectories, in this process one after the other.

    .venv/bin/python bench/entropy_pass.py runs/paper --model behavior --trajectories 12

A primed model's trajectories carry long observations (search results) between short outputs,
so most positions predict nothing that counts. Prints seconds, trajectories/s, the ratio and
the largest difference between the two passes' per-trajectory means (float noise).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from searchprime.eval.entropy import load_policy, policy_entropy
from searchprime.records import Trajectory, read_jsonl


def timed(model, tok, trajs, keep: bool) -> tuple[float, object]:
    if not keep:
        # an instance attribute without the parameter in its signature: every logit is formed
        forward = model.forward
        model.forward = lambda *a, **k: forward(*a, **k)
    try:
        t0 = time.perf_counter()
        rep = policy_entropy(model, trajs, tokenizer=tok)
        return time.perf_counter() - t0, rep
    finally:
        if not keep:
            del model.forward


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("study", type=Path, help="A `searchprime experiment` folder.")
    ap.add_argument("--model", default="base", help="Model name: eval/<name>.labelled.jsonl.")
    ap.add_argument("--checkpoint", type=Path, help="Default: <study>/sft/<model>.")
    ap.add_argument("--trajectories", type=int, default=12, help="First N dev trajectories.")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's).")
    ap.add_argument("--json", type=Path, help="Also write the results here.")
    args = ap.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    path = args.study / "eval" / f"{args.model}.labelled.jsonl"
    trajs = list(read_jsonl(path, Trajectory))[: args.trajectories]
    model, tok = load_policy(args.checkpoint or args.study / "sft" / args.model, "cpu")
    arms = {}
    for name, keep in (("every_logit", False), ("logits_to_keep", True)):
        seconds, rep = timed(model, tok, trajs, keep)
        arms[name] = (seconds, rep)
        print(
            f"{name:15s} {seconds:7.1f} s  {len(trajs) / seconds:5.2f} trajectories/s  "
            f"{rep.overall.tokens / seconds:7.1f} counted tokens/s  entropy {rep.overall.mean:.4f}",
            flush=True,
        )
    (base_s, base), (keep_s, kept) = arms["every_logit"], arms["logits_to_keep"]
    diff = max(
        abs(a.mean - b.mean)
        for a, b in zip(base.per_trajectory, kept.per_trajectory, strict=True)
        if a.mean is not None and b.mean is not None
    )
    ratio = base_s / keep_s
    print(f"logits_to_keep vs every logit: {ratio:.2f}x; largest per-trajectory |diff| {diff:.2e}")
    if args.json:
        summary = {
            "model": args.model,
            "trajectories": len(trajs),
            "counted_tokens": kept.overall.tokens,
            "sequences": kept.sequences,
            "threads": torch.get_num_threads(),
            "every_logit_s": round(base_s, 1),
            "logits_to_keep_s": round(keep_s, 1),
            "speedup": round(ratio, 2),
            "max_abs_diff": diff,
        }
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Throughput of ``searchprime train sft`` against bare TRL ``SFTTrainer`` on the same data.

For each model (tiny fixture, SmolLM2-135M), mode (full, LoRA) and packing (off, on) both arms
train the same steps on the same prompt-completion JSONL, built the same way (same model
folder, same SFTConfig fields); we time ``trainer.train()`` and count the non-padding input
tokens (``num_input_tokens_seen``). The arms run interleaved (A B B A ...) in one process, so
CPU noise from other work hits both alike; we also report tokens per CPU-second of the
process (the fair clock on a shared machine). Target: ours >= 90% of bare TRL.

    .venv/bin/python bench/sft.py                      # tiny + smollm2, all 4 configs
    .venv/bin/python bench/sft.py --models tiny --steps 20 --repeats 2
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from searchprime.data.prime import prime
from searchprime.data.select import SelectionConfig
from searchprime.records import (
    Action,
    Message,
    Scores,
    Trajectory,
    Turn,
    write_jsonl,
)

SYSTEM = (
    "Answer the question by searching. Think in <think></think>, then give exactly one action: "
    "<search>query</search> or <answer>answer</answer>."
)
WORDS = (
    "river city founded company born located author novel museum bridge council archive "
    "festival harbour province railway station university library mountain valley"
).split()


def _name(rng: random.Random) -> str:
    syll = ["ka", "lo", "mi", "ra", "ten", "vor", "san", "del", "qu", "ix", "bel", "tor"]
    return "".join(rng.choice(syll) for _ in range(3)).capitalize()


def synthetic_trajectories(n: int, seed: int = 0) -> list[Trajectory]:
    """Agent-shaped trajectories (1-2 searches, 3 passages of 25 words each)."""
    rng = random.Random(seed)
    out = []
    for k in range(n):
        a, b = _name(rng), _name(rng)
        q = f"Where was the founder of {a} born?"
        msgs = [
            Message(role="system", content=SYSTEM),
            Message(role="user", content=f"Question: {q}"),
        ]
        ctx, turns = [0, 1], []
        n_search = rng.randint(1, 2)
        for i in range(n_search + 1):
            last = i == n_search
            act = "answer" if last else "search"
            content = b if last else f"{a} founder {rng.choice(WORDS)}"
            output = f"<think>Step {i}: I look for {content}.</think>\n<{act}>{content}</{act}>"
            msgs.append(Message(role="assistant", content=output))
            obs = None
            if not last:
                docs = "\n".join(
                    f"Doc {j + 1} (Title: {_name(rng)}) [Source: news | n{j}.example]\n"
                    + " ".join(rng.choice(WORDS) for _ in range(25))
                    for j in range(3)
                )
                obs = f"<information>\n{docs}\n</information>"
                msgs.append(Message(role="user", content=obs))
            turns.append(
                Turn(
                    index=i,
                    context=list(ctx),
                    output=output,
                    action=Action(kind=act, content=content),
                    observation=obs,
                )
            )
            ctx = ctx + [len(msgs) - 2, len(msgs) - 1]
        out.append(
            Trajectory(
                task_id=f"b{k}",
                question=q,
                answers=[b],
                messages=msgs,
                turns=turns,
                final_answer=b,
                termination="answer",
                scores=Scores(em=1.0),
            )
        )
    return out


def common_trl(steps: int, batch: int, max_length: int, packing: bool) -> dict:
    """Same fields for both arms; a packed row holds several samples, so 1/4 of the rows."""
    return {
        "max_steps": steps,
        "per_device_train_batch_size": max(1, batch // 4) if packing else batch,
        "max_length": max_length,
        "packing": packing,
        "learning_rate": 1e-4,
        "logging_steps": steps,
        "save_strategy": "no",
        "report_to": "none",
        "activation_checkpointing": False,
        "bf16": False,
        "dataloader_pin_memory": False,
        "include_num_input_tokens_seen": "non_padding",
        "seed": 0,
    }


def _timer():
    """A TrainerCallback timing the training loop in wall and CPU (process) seconds.

    CPU seconds are the fair clock on a shared machine: other processes' load stretches the
    wall time of whichever arm it hits, not the CPU work each arm does.
    """
    from transformers import TrainerCallback

    class Timer(TrainerCallback):
        def on_train_begin(self, args, state, control, **kw):
            self.w0, self.c0 = time.perf_counter(), time.process_time()

        def on_train_end(self, args, state, control, **kw):
            self.wall = time.perf_counter() - self.w0
            self.cpu = time.process_time() - self.c0

    return Timer()


def run_ours(model: str, data: Path, out: Path, trl: dict, lora: bool) -> dict:
    from searchprime.train.sft import LoraSettings, SFTRunConfig, run_sft

    t0 = time.perf_counter()
    cfg = SFTRunConfig(model=model, data=str(data), output_dir=str(out), trl=dict(trl))
    if lora:
        cfg.lora = LoraSettings(r=16, alpha=32, dropout=0.0)
    timer = _timer()
    s = run_sft(cfg, callbacks=[timer])
    return {
        "tokens": s.tokens_seen,
        "train_s": timer.wall,
        "cpu_s": timer.cpu,
        "wall_s": time.perf_counter() - t0,
    }


def run_bare(model: str, data: Path, out: Path, trl: dict, lora: bool) -> dict:
    from datasets import load_dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    t0 = time.perf_counter()
    ds = load_dataset("json", data_files=str(data / "train.jsonl"), split="train")
    peft_config = None
    if lora:
        peft_config = LoraConfig(
            r=16,
            lora_alpha=32,
            lora_dropout=0.0,
            target_modules="all-linear",
            task_type="CAUSAL_LM",
        )
    timer = _timer()
    trainer = SFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(model),
        args=SFTConfig(output_dir=str(out), **trl),
        train_dataset=ds,
        processing_class=AutoTokenizer.from_pretrained(model),
        peft_config=peft_config,
        callbacks=[timer],
    )
    trainer.train()
    trainer.save_model(str(out))
    return {
        "tokens": int(trainer.state.num_input_tokens_seen),
        "train_s": timer.wall,
        "cpu_s": timer.cpu,
        "wall_s": time.perf_counter() - t0,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="tiny,smollm2")
    ap.add_argument("--steps", type=int, default=0, help="0: 20 for tiny, 3 for smollm2")
    ap.add_argument("--repeats", type=int, default=1, help="ABBA blocks per config")
    ap.add_argument("--max-length", type=int, default=2048, help="above every sample's length")
    ap.add_argument("--smollm2-batch", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (CPU is shared)")
    ap.add_argument("--smollm2-dir", default="runs/models/smollm2")
    ap.add_argument("--out", default="bench/results/sft.json")
    args = ap.parse_args()

    import torch
    import transformers

    transformers.logging.set_verbosity_error()
    torch.set_num_threads(args.threads)
    from searchprime.train.models import init_tiny, prepare_smollm2

    work = Path(tempfile.mkdtemp(prefix="bench_sft_"))
    trajs = work / "trajs.jsonl"
    write_jsonl(trajs, synthetic_trajectories(64))
    data = work / "data"
    prime([trajs], SelectionConfig(strategy="random"), data, shape="turn")
    n_samples = len((data / "train.jsonl").read_text().splitlines())
    print(f"data: {n_samples} turn samples in {data}", file=sys.stderr)

    results = []
    for name in args.models.split(","):
        if name == "tiny":
            model = str(init_tiny(work / "tiny"))
            steps, batch = args.steps or 20, 8
        else:
            model = str(prepare_smollm2(args.smollm2_dir))
            steps, batch = args.steps or 3, args.smollm2_batch
        # one untimed run per model first: the first training in a process pays one-off costs
        run_bare(model, data, work / "warmup", common_trl(2, batch, args.max_length, False), False)
        for lora in (False, True):
            for packing in (False, True):
                trl = common_trl(steps, batch, args.max_length, packing)
                runs: dict[str, list[dict]] = {"ours": [], "bare": []}
                order = ["ours", "bare", "bare", "ours"] * args.repeats
                for i, arm in enumerate(order):
                    fn = run_ours if arm == "ours" else run_bare
                    runs[arm].append(fn(model, data, work / f"o{i}", trl, lora))
                row = {"model": name, "lora": lora, "packing": packing, "steps": steps}
                for arm, rs in runs.items():
                    row[f"{arm}_tok_s"] = statistics.median(r["tokens"] / r["train_s"] for r in rs)
                    row[f"{arm}_tok_cpu_s"] = statistics.median(
                        r["tokens"] / r["cpu_s"] for r in rs
                    )
                    row[f"{arm}_wall_s"] = statistics.median(r["wall_s"] for r in rs)
                    row[f"{arm}_tokens"] = rs[0]["tokens"]
                row["ratio"] = row["ours_tok_s"] / row["bare_tok_s"]
                row["ratio_cpu"] = row["ours_tok_cpu_s"] / row["bare_tok_cpu_s"]
                results.append(row)
                print(
                    f"{name:8s} {'lora' if lora else 'full':4s} packing={packing!s:5s} "
                    f"ours {row['ours_tok_s']:8.0f} tok/s  bare {row['bare_tok_s']:8.0f} tok/s  "
                    f"ratio {row['ratio']:.3f} | per CPU-s ours {row['ours_tok_cpu_s']:8.0f} "
                    f"bare {row['bare_tok_cpu_s']:8.0f} ratio {row['ratio_cpu']:.3f}  "
                    f"(tokens {row['ours_tokens']} vs "
                    f"{row['bare_tokens']})",
                    flush=True,
                )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"threads": args.threads, "torch": torch.__version__, "samples": n_samples}
    out.write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()

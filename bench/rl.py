"""GRPO step cost of ``searchprime train rl`` on CPU: ours vs bare TRL, hf vs llama.cpp sampler,
and peak memory of trainer + sampler.

Three parts; every configuration (arm) runs in its own subprocess, one after the other, so one
arm's warm caches and memory peak never touch another's:

1. ``overhead``: bare ``trl.GRPOTrainer`` (its own transformers generation: one completion of at
   most ``--max-tokens`` per prompt, a trivial reward) against our ``run_rl`` with
   ``episode.max_turns = 1`` on the same first-turn prompts (the agent's system prompt +
   ``Question: ...``), model, group size, batch, steps and TRL settings (same shuffle seed: the
   same prompts each step). TRL stops a completion only at end-of-turn or the length cap; the
   agent loop also stops at the action close tags, so arm ``ours`` drops those stop strings
   (same stopping rule, same token budget) and ``ours+stops`` is the loop as shipped. The fair
   figure is policy tokens per second (sampled tokens / step seconds), also per CPU-second.
   Target: ours >= 90% of TRL (overhead <= 10%).
2. ``samplers``: multi-turn sandbox episodes (rules annotator on, as ``train rl --world``) with
   the ``hf`` sampler (the trainer's own model, in-process) and ``llamacpp`` (a llama.cpp server
   given the new weights after each step, so step 2 on pays a sync): rollout / sync / train /
   step seconds and tokens per second; ratio llamacpp / hf.
3. ``memory``: peak RSS (VmHWM and ``ru_maxrss``; llama.cpp runs in-process via xllamacpp, so
   the process RSS covers it) of trainer + sampler at the size of the quickstart's ``rl``
   section (src/searchprime/experiment/quickstart.yaml: 1 task x 4 episodes, 6 turns of <= 128
   tokens, hf sampler). Target: <= 16 GiB. Part 2's table also gives each arm's peak.

Every arm is timed at the same points: ``GRPOTrainer._generate`` (the rollout: TRL's generation,
or our agent episodes with the llama.cpp weight sync) and the optimizer step (TrainerCallback
step begin -> end); ``train`` is the rest (rewards, logprobs, loss, backward, optimizer step).
Headline figures use the steps after the first (step 1 pays one-off costs) when there are two
or more; the JSON keeps every step. Every arm runs torch (and llama.cpp) on ``--threads 1``: on
a shared 2-core machine two threads made SmolLM2's forward 3-20x slower and erratic. The world
(300 entities, 600 tasks), its BM25 index and SmolLM2 as an HF folder are built once under
``--work`` and ``--smollm2-dir``. The base SmolLM2 never emits a valid action, so every episode
runs to ``max_turns`` (the most tokens a step can have at that size).

On 2 shared cores (load 2-3) a default run took 20 min (overhead 6, samplers 10, memory 5): a
step of 4 episodes x 4 turns of <= 128 tokens takes ~2.3 min; TRL trains ~45 sequence tokens/s
(gradient checkpointing, one thread). Part 2 at 2 tasks x 3 steps would take ~30 min
(``--tasks-per-step 2 --mt-steps 3``).

    nice -n 5 .venv/bin/python bench/rl.py                  # all parts
    .venv/bin/python bench/rl.py --quick --parts overhead   # a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PARTS = ("overhead", "samplers", "memory")
GIB = 1024**3


# ---------------------------------------------------------------------------------- machine
def _status_kb(field: str, pid: int | str = "self") -> int:
    """A ``kB`` field of ``/proc/<pid>/status`` (0 if unreadable)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _tree_rss_kb(pid: int) -> int:
    """VmRSS of ``pid`` and all its descendants."""
    total, todo, seen = 0, [pid], set()
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        total += _status_kb("VmRSS", p)
        try:
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, ValueError):
            pass
    return total


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git(*args: str) -> str:
    try:
        out = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def machine_meta() -> dict[str, Any]:
    """Commit, machine and library versions (recorded in the JSON)."""
    import importlib.metadata as md

    dirty = [line[3:] for line in _git("status", "--porcelain").splitlines()]
    versions = {}
    for pkg in ("torch", "transformers", "trl", "xllamacpp"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = None
    mem_total = _status_kb_meminfo("MemTotal")
    return {
        "commit": _git("rev-parse", "HEAD"),
        "dirty_files": dirty,
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "mem_total_gib": round(mem_total / 1024**2, 1),
        "machine": platform.node(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "nice": os.nice(0),
        "versions": versions,
    }


def _status_kb_meminfo(field: str) -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# ---------------------------------------------------------------------------------- child side
class Probe:
    """Times every rollout (``GRPOTrainer._generate``) and optimizer step; samples RSS per phase.

    Phases: ``setup`` (imports, model, sampler, trainer), ``rollout``, ``train``, ``save``.
    """

    def __init__(self) -> None:
        self.t0 = time.perf_counter()
        self.phase = "setup"
        self.peak_kb: dict[str, int] = {}
        self.rollouts: list[dict[str, Any]] = []
        self.steps: list[dict[str, float]] = []
        self.setup_s: float | None = None
        self.rss_after_setup_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self.note()

    def note(self) -> None:
        rss = _status_kb("VmRSS")
        self.peak_kb[self.phase] = max(self.peak_kb.get(self.phase, 0), rss)

    def set_phase(self, phase: str) -> None:
        self.note()
        self.phase = phase

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.note()

    def patch_generate(self) -> None:
        """Wrap ``trl.GRPOTrainer._generate`` (subclasses such as ours inherit the wrapper)."""
        import trl

        original = trl.GRPOTrainer._generate
        probe = self

        def _generate(trainer: Any, prompts: list) -> Any:
            probe.set_phase("rollout")
            w0, c0 = time.perf_counter(), time.process_time()
            try:
                out = original(trainer, prompts)
            finally:
                wall, cpu = time.perf_counter() - w0, time.process_time() - c0
                probe.set_phase("train")
            prompt_ids, completion_ids, mask = out[0], out[1], out[2]
            probe.rollouts.append(
                {
                    "wall_s": wall,
                    "cpu_s": cpu,
                    "sequences": len(completion_ids),
                    "prompt_tokens": sum(len(p) for p in prompt_ids),
                    "completion_tokens": sum(len(c) for c in completion_ids),
                    # TRL trains on right-padded tensors and both generators decode static
                    # batches until their longest row ends: this is the work a step does
                    "max_completion": max((len(c) for c in completion_ids), default=0),
                    "padded_tokens": len(completion_ids)
                    * (
                        max((len(p) for p in prompt_ids), default=0)
                        + max((len(c) for c in completion_ids), default=0)
                    ),
                    "policy_tokens": (
                        sum(sum(m) for m in mask)
                        if mask is not None
                        else sum(len(c) for c in completion_ids)
                    ),
                }
            )
            return out

        trl.GRPOTrainer._generate = _generate

    def callback(self) -> Any:
        from transformers import TrainerCallback

        probe = self

        class StepTimer(TrainerCallback):
            def on_train_begin(self, args, state, control, **kw):
                probe.setup_s = time.perf_counter() - probe.t0
                probe.rss_after_setup_kb = _status_kb("VmRSS")
                probe.set_phase("train")

            def on_step_begin(self, args, state, control, **kw):
                self.w0, self.c0 = time.perf_counter(), time.process_time()

            def on_step_end(self, args, state, control, **kw):
                probe.steps.append(
                    {
                        "wall_s": time.perf_counter() - self.w0,
                        "cpu_s": time.process_time() - self.c0,
                    }
                )

            def on_train_end(self, args, state, control, **kw):
                probe.set_phase("save")

        return StepTimer()

    def result(self) -> dict[str, Any]:
        self.stop()
        steps = []
        for i, s in enumerate(self.steps):
            row = {"step": i + 1, "step_s": s["wall_s"], "step_cpu_s": s["cpu_s"]}
            if i < len(self.rollouts):
                r = self.rollouts[i]
                row.update(
                    rollout_s=r["wall_s"],
                    rollout_cpu_s=r["cpu_s"],
                    train_s=s["wall_s"] - r["wall_s"],
                    **{
                        k: r[k]
                        for k in (
                            "sequences",
                            "prompt_tokens",
                            "completion_tokens",
                            "max_completion",
                            "padded_tokens",
                        )
                    },
                    policy_tokens=r["policy_tokens"],
                )
            steps.append(row)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return {
            "setup_s": self.setup_s,
            "steps": steps,
            "memory": {
                "vm_hwm_gib": _status_kb("VmHWM") / 1024**2,
                "ru_maxrss_gib": usage.ru_maxrss / 1024**2,
                "children_ru_maxrss_gib": children.ru_maxrss / 1024**2,
                "rss_after_setup_gib": self.rss_after_setup_kb / 1024**2,
                "peak_by_phase_gib": {k: v / 1024**2 for k, v in self.peak_kb.items()},
            },
            "cpu_s_total": usage.ru_utime + usage.ru_stime,
        }


def _answer_tag(completions: list, **_: Any) -> list[float]:
    """The bare-TRL arm's trivial reward: 1 when the completion holds ``<answer>``."""
    out = []
    for c in completions:
        text = c[-1]["content"] if isinstance(c, list) else str(c)
        out.append(float("<answer>" in text))
    return out


def _first_turn_prompts(spec: dict[str, Any]) -> list[list[dict[str, str]]]:
    """The agent loop's first model input of each task, as chat messages."""
    from searchprime.agent import prompts
    from searchprime.tasks import load_tasks

    system = prompts.system_prompt(spec["episode"].get("thinking", "explicit"), "compact")
    return [
        [
            {"role": "system", "content": system},
            {"role": "user", "content": prompts.first_user_message(t.question)},
        ]
        for t in load_tasks(spec["tasks"], limit=spec["limit"])
    ]


def child_trl(spec: dict[str, Any], probe: Probe) -> dict[str, Any]:
    """Bare TRL: GRPOTrainer with its own transformers generation, one turn, trivial reward."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    from searchprime.rl.config import CPU_DEFAULTS

    dataset = Dataset.from_list([{"prompt": p} for p in _first_turn_prompts(spec)])
    kwargs = {**CPU_DEFAULTS, **spec["trl"]}
    kwargs.update(
        output_dir=spec["out"],
        top_p=1.0,
        top_k=0,
        min_p=None,
        max_completion_length=spec["episode"]["max_tokens"],
        log_completions=False,
    )
    trainer = GRPOTrainer(
        model=AutoModelForCausalLM.from_pretrained(spec["model"], dtype="float32"),
        reward_funcs=[_answer_tag],
        args=GRPOConfig(**kwargs),
        train_dataset=dataset,
        processing_class=AutoTokenizer.from_pretrained(spec["model"]),
        callbacks=[probe.callback()],
    )
    trainer.train()
    return {}


def child_ours(spec: dict[str, Any], probe: Probe) -> dict[str, Any]:
    """``run_rl`` (the agent loop through TRL's rollout_func) with the spec's episode/sampler."""
    import searchprime.rl.grpo as grpo
    from searchprime.rl.config import RLRunConfig

    if spec.get("nostop"):
        shipped = grpo.agent_config

        def agent_config(cfg: Any, temperature: float) -> Any:
            agent = shipped(cfg, temperature)
            sampling = agent.sampling.model_copy(update={"stop": []})
            return agent.model_copy(update={"sampling": sampling})

        grpo.agent_config = agent_config
    cfg = RLRunConfig(
        model=spec["model"],
        tasks=spec["tasks"],
        limit=spec["limit"],
        search={"kind": "bm25", "path": spec["index"]},
        output_dir=spec["out"],
        episode=spec["episode"],
        sampler=spec["sampler"],
        rewards={"em": 1.0},
        concurrency=spec.get("concurrency", 16),
        trl=spec["trl"],
    )
    annotator = None
    if spec.get("world"):  # as `train rl --world` and the experiment: episodes get labels
        from searchprime.behaviors.annotate import RulesAnnotator

        annotator = RulesAnnotator(spec["world"])
    summary = grpo.run_rl(cfg, callbacks=[probe.callback()], annotator=annotator)
    rows = grpo.read_steps(spec["out"])
    keep = (
        "policy_tokens",
        "env_tokens",
        "turns",
        "searches",
        "answered",
        "valid_actions",
        "em",
        "broken_sequences",
        "errors",
        "time",
    )
    out: dict[str, Any] = {
        "run_s": summary.runtime_s,
        "log": [{"step": r["step"], **{k: r.get(k) for k in keep}} for r in rows],
    }
    sync = Path(spec["out"]) / "sampler"
    if spec["sampler"]["kind"] == "llamacpp" and sync.is_dir():
        out["gguf_mib"] = sum(f.stat().st_size for f in sync.glob("*.gguf")) / 2**20
    return out


def run_child(spec_path: Path) -> int:
    """Run one arm (``--child``) and write its result JSON."""
    spec = json.loads(spec_path.read_text())
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    probe = Probe()
    import torch
    import transformers

    transformers.logging.set_verbosity_error()
    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])
    probe.patch_generate()
    w0 = time.perf_counter()
    info = child_trl(spec, probe) if spec["kind"] == "trl" else child_ours(spec, probe)
    result = {**probe.result(), **info}
    result["wall_s"] = time.perf_counter() - w0
    result["torch_threads"] = torch.get_num_threads()
    Path(spec["result"]).write_text(json.dumps(result, indent=2) + "\n")
    return 0


# ---------------------------------------------------------------------------------- parent side
def prepare(args: argparse.Namespace) -> dict[str, str]:
    """The sandbox world, its BM25 index and SmolLM2 as an HF folder (built once, reused)."""
    from searchprime.train.models import prepare_smollm2
    from searchprime.world import WorldConfig, build_world
    from searchprime.world.calibrate import ensure_index

    world = Path(args.work) / "world"
    if not (world / "world.json").exists():
        build_world(WorldConfig(entities=300, tasks=600, seed=0), world)
    index = ensure_index(world)
    model = prepare_smollm2(args.smollm2_dir)
    return {
        "world": str(world.resolve()),
        "index": str(Path(index).resolve()),
        "tasks": str((world / "tasks" / "train.jsonl").resolve()),
        "model": str(Path(model).resolve()),
    }


def _trl(steps: int, group: int, prompts_per_step: int) -> dict[str, Any]:
    return {
        "max_steps": steps,
        "num_generations": group,
        "per_device_train_batch_size": group * prompts_per_step,
        "temperature": 1.0,
        "save_strategy": "no",
        "disable_tqdm": True,
    }


def part_specs(part: str, args: argparse.Namespace, assets: dict[str, str]) -> list[dict]:
    """The arms of one part."""
    g = args.group
    base = {
        "model": assets["model"],
        "tasks": assets["tasks"],
        "index": assets["index"],
        "threads": args.threads,
    }
    if part == "overhead":
        p = args.prompts_per_step
        common = {
            **base,
            "limit": p * args.steps,
            "episode": {"max_turns": 1, "max_tokens": args.max_tokens},
            "sampler": {"kind": "hf", "max_batch": g * p},
            "trl": _trl(args.steps, g, p),
        }
        arms = [
            {**common, "arm": "trl", "kind": "trl"},
            {**common, "arm": "ours", "kind": "ours", "nostop": True},
        ]
        if not args.quick:
            arms.append({**common, "arm": "ours+stops", "kind": "ours"})
        return arms
    p = args.tasks_per_step
    if part == "samplers":
        episode = {"max_turns": args.max_turns, "max_tokens": args.mt_max_tokens}
        steps, kinds, suffix = args.mt_steps, ("hf", "llamacpp"), ""
    else:  # memory: the quickstart's rl section (quickstart.yaml), eval's topk / prompt
        episode = {"max_turns": args.mem_max_turns, "max_tokens": 128, "topk": 3}
        steps, kinds, suffix = args.mem_steps, args.mem_samplers.split(","), "@quickstart"
    threads = args.llamacpp_threads or None
    return [
        {
            **base,
            "arm": kind + suffix,
            "kind": "ours",
            "limit": p * steps,
            "world": assets["world"],
            "episode": {**episode, "prompt": "compact"},
            # as the experiment runner: slots / batch = one step's episodes
            "sampler": {"kind": kind, "max_batch": g * p}
            | ({"threads": threads} if kind == "llamacpp" else {}),
            "concurrency": g * p,
            "trl": _trl(steps, g, p),
        }
        for kind in kinds
    ]


def run_arm(spec: dict[str, Any], work: Path, guard_gib: float) -> dict[str, Any]:
    """Run one arm in a subprocess; watch its RSS (kill it above ``guard_gib``)."""
    name = spec["arm"].replace("+", "_").replace("@", "_")
    spec = {
        **spec,
        "out": str(work / name),
        "result": str(work / f"{name}.result.json"),
    }
    Path(spec["result"]).unlink(missing_ok=True)
    spec_path = work / f"{name}.spec.json"
    spec_path.write_text(json.dumps(spec, indent=2))
    log_path = work / f"{name}.log"
    # never let an arm push this shared machine into the OOM killer
    guard_gib = min(guard_gib, _status_kb_meminfo("MemAvailable") / 1024**2 - 0.75)
    load0 = _load()
    w0 = time.perf_counter()
    killed = None
    peak_kb = 0
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--child", str(spec_path)],
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        while proc.poll() is None:
            rss = _tree_rss_kb(proc.pid)
            peak_kb = max(peak_kb, rss)
            if rss > guard_gib * 1024**2:
                killed = f"RSS {rss / 1024**2:.1f} GiB over the guard of {guard_gib} GiB"
                proc.kill()
                proc.wait()
                break
            time.sleep(0.5)
    row: dict[str, Any] = {
        "arm": spec["arm"],
        "spec": {k: spec[k] for k in ("kind", "limit", "episode", "sampler", "trl") if k in spec},
        "nostop": bool(spec.get("nostop")),
        "load_before": load0,
        "load_after": _load(),
        "process_wall_s": time.perf_counter() - w0,
        "parent_seen_peak_rss_gib": peak_kb / 1024**2,
        "guard_gib": round(guard_gib, 2),
    }
    result = Path(spec["result"])
    if proc.returncode != 0 or not result.exists():
        tail = log_path.read_text(errors="replace").splitlines()[-15:]
        row["error"] = killed or f"exit {proc.returncode}: " + " | ".join(tail)
        print(f"  {spec['arm']}: FAILED ({row['error'][:600]}); log {log_path}", flush=True)
        return row
    row.update(json.loads(result.read_text()))
    row.update(headline(row))
    return row


def headline(row: dict[str, Any]) -> dict[str, Any]:
    """Per-step means over the steps after the first (all steps if only one)."""
    steps = [s for s in row["steps"] if "rollout_s" in s]
    if not steps:
        return {}
    used = steps[1:] if len(steps) >= 2 else steps
    log = {r["step"]: r for r in row.get("log", [])}

    def mean(key: str, rows: list[dict]) -> float:
        vals = [r[key] for r in rows if r.get(key) is not None]
        return statistics.fmean(vals) if vals else float("nan")

    pol = sum(s["policy_tokens"] for s in used)
    seq = sum(s["prompt_tokens"] + s["completion_tokens"] for s in used)
    pad = sum(s["padded_tokens"] for s in used)
    out = {
        "steps_used": [s["step"] for s in used],
        "step_s": mean("step_s", used),
        "rollout_s": mean("rollout_s", used),
        "train_s": mean("train_s", used),
        "policy_tokens_per_step": pol / len(used),
        "sequence_tokens_per_step": seq / len(used),
        "tok_s": pol / sum(s["step_s"] for s in used),
        "tok_cpu_s": pol / sum(s["step_cpu_s"] for s in used),
        "gen_tok_s": pol / sum(s["rollout_s"] for s in used),
        "train_seq_tok_s": seq / sum(s["train_s"] for s in used),
        "padded_tokens_per_step": pad / len(used),
        "padded_tok_s": pad / sum(s["step_s"] for s in used),
        "padded_tok_cpu_s": pad / sum(s["step_cpu_s"] for s in used),
        "gen_ms_per_decode_step": 1000
        * sum(s["rollout_s"] for s in used)
        / max(1, sum(s["max_completion"] for s in used)),
    }
    inner = [log[s["step"]]["time"] for s in used if s["step"] in log and log[s["step"]]["time"]]
    if inner:
        out["sync_s"] = mean("sync_s", inner)
        out["episodes_s"] = mean("rollout_s", inner)  # runner.run alone (ours' own clock)
        out["turns_per_episode"] = mean("turns", [log[s["step"]] for s in used])
    return out


def _f(x: Any, fmt: str = ".1f") -> str:
    if x is None or (isinstance(x, float) and x != x):
        return "-"
    return format(x, fmt)


def print_part(part: str, rows: list[dict], info: dict[str, Any]) -> None:
    ok = [r for r in rows if "error" not in r]
    print(f"\n== {part}: {info['title']}; load {info['load_before']} -> {info['load_after']}")
    if part in ("overhead", "samplers"):
        print(
            f"{'arm':12s} {'step_s':>7s} {'rollout':>7s} {'sync':>6s} {'train':>7s} "
            f"{'pol_tok':>7s} {'seq_tok':>7s} {'tok/s':>6s} {'tok/CPUs':>8s} {'gen_tok/s':>9s} "
            f"{'trn_tok/s':>9s} {'pad_tok':>7s} {'pad/s':>6s} {'ms/dec':>6s} {'turns':>5s} "
            f"{'peak_GiB':>8s}"
        )
        for r in ok:
            print(
                f"{r['arm']:12s} {_f(r.get('step_s')):>7s} {_f(r.get('rollout_s')):>7s} "
                f"{_f(r.get('sync_s')):>6s} {_f(r.get('train_s')):>7s} "
                f"{_f(r.get('policy_tokens_per_step'), '.0f'):>7s} "
                f"{_f(r.get('sequence_tokens_per_step'), '.0f'):>7s} "
                f"{_f(r.get('tok_s')):>6s} {_f(r.get('tok_cpu_s')):>8s} "
                f"{_f(r.get('gen_tok_s')):>9s} {_f(r.get('train_seq_tok_s'), '.0f'):>9s} "
                f"{_f(r.get('padded_tokens_per_step'), '.0f'):>7s} "
                f"{_f(r.get('padded_tok_s')):>6s} {_f(r.get('gen_ms_per_decode_step'), '.0f'):>6s} "
                f"{_f(r.get('turns_per_episode'), '.2f'):>5s} "
                f"{_f(r['memory']['vm_hwm_gib'], '.2f'):>8s}"
            )
    else:
        print(
            f"{'arm':20s} {'VmHWM':>6s} {'ru_maxrss':>9s} {'children':>8s} {'setup':>6s} "
            f"{'rollout':>7s} {'train':>6s} {'save':>6s} {'step_s':>7s} {'seq_tok':>7s}  (GiB)"
        )
        for r in ok:
            m, ph = r["memory"], r["memory"]["peak_by_phase_gib"]
            print(
                f"{r['arm']:20s} {m['vm_hwm_gib']:6.2f} {m['ru_maxrss_gib']:9.2f} "
                f"{m['children_ru_maxrss_gib']:8.2f} {_f(ph.get('setup'), '.2f'):>6s} "
                f"{_f(ph.get('rollout'), '.2f'):>7s} {_f(ph.get('train'), '.2f'):>6s} "
                f"{_f(ph.get('save'), '.2f'):>6s} {_f(r.get('step_s')):>7s} "
                f"{_f(r.get('sequence_tokens_per_step'), '.0f'):>7s}"
            )
    for line in info.get("verdicts", []):
        print(line)
    for r in rows:
        if "error" in r:
            print(f"{r['arm']}: FAILED: {r['error'][:300]}")


def verdicts(part: str, rows: list[dict]) -> dict[str, Any]:
    """Ratios against the part's baseline arm, and the targets."""
    by = {r["arm"]: r for r in rows if "error" not in r}
    out: dict[str, Any] = {"verdicts": []}
    if part == "overhead" and "trl" in by:
        t = by["trl"]
        for arm in ("ours", "ours+stops"):
            if arm not in by:
                continue
            o = by[arm]
            ratio = o["padded_tok_s"] / t["padded_tok_s"]
            ratio_cpu = o["padded_tok_cpu_s"] / t["padded_tok_cpu_s"]
            out[f"{arm}_vs_trl"] = {
                "padded_tok_s_ratio": ratio,
                "padded_tok_cpu_s_ratio": ratio_cpu,
                "policy_tok_s_ratio": o["tok_s"] / t["tok_s"],
                "policy_tok_cpu_s_ratio": o["tok_cpu_s"] / t["tok_cpu_s"],
                "policy_tokens_ratio": o["policy_tokens_per_step"] / t["policy_tokens_per_step"],
                "gen_ms_per_decode_step_ratio": o["gen_ms_per_decode_step"]
                / t["gen_ms_per_decode_step"],
                "step_s_ratio": o["step_s"] / t["step_s"],
                "gen_tok_s_ratio": o["gen_tok_s"] / t["gen_tok_s"],
                "train_seq_tok_s_ratio": o["train_seq_tok_s"] / t["train_seq_tok_s"],
                "overhead_pct": 100 * (1 / ratio - 1),
                "target_met": ratio >= 1 / 1.1,
            }
            v = out[f"{arm}_vs_trl"]
            out["verdicts"].append(
                f"{arm}/trl: padded tok/s {ratio:.3f} (per CPU-s {ratio_cpu:.3f}), step_s "
                f"{v['step_s_ratio']:.3f}, ms per decode step "
                f"{v['gen_ms_per_decode_step_ratio']:.3f}; policy tok/s "
                f"{v['policy_tok_s_ratio']:.3f} (per CPU-s {v['policy_tok_cpu_s_ratio']:.3f}) "
                f"with {v['policy_tokens_ratio']:.2f}x the sampled tokens -> overhead "
                f"{v['overhead_pct']:+.1f}% on equal work (target <= 10%: "
                f"{'met' if v['target_met'] else 'NOT met'})"
            )
    if part == "overhead" and {"ours", "ours+stops"} <= by.keys():
        a, b = by["ours"], by["ours+stops"]
        same = [s["policy_tokens"] for s in a["steps"]] == [s["policy_tokens"] for s in b["steps"]]
        if same:  # the same seeds drew the same tokens: a replicate of the same work
            noise = abs(a["step_s"] / b["step_s"] - 1)
            out["replicate_noise_pct"] = 100 * noise
            out["verdicts"].append(
                f"ours and ours+stops sampled identical tokens (no stop string fired): their "
                f"step_s differ by {100 * noise:.0f}%, this run's noise between equal work"
            )
    if part == "samplers" and {"hf", "llamacpp"} <= by.keys():
        h, c = by["hf"], by["llamacpp"]
        ratios = {
            k: c[k] / h[k]
            for k in (
                "step_s",
                "rollout_s",
                "train_s",
                "tok_s",
                "gen_tok_s",
                "tok_cpu_s",
                "padded_tok_s",
            )
        }
        out["llamacpp_vs_hf"] = ratios
        out["verdicts"].append(
            "llamacpp/hf: "
            + ", ".join(f"{k} {v:.2f}" for k, v in ratios.items())
            + f"; llamacpp sync {_f(c.get('sync_s'))} s/step, startup (export + server) "
            f"in setup {_f(c.get('setup_s'))} s vs hf {_f(h.get('setup_s'))} s"
        )
    if part == "memory":
        for r in rows:
            if "error" in r and r["error"].startswith("RSS"):
                out["verdicts"].append(f"{r['arm']}: killed, {r['error']} (target NOT met)")
        for arm, r in by.items():
            peak = max(r["memory"]["vm_hwm_gib"], r["memory"]["children_ru_maxrss_gib"])
            met = "met" if peak <= 16 else "NOT met"
            out["verdicts"].append(f"{arm}: peak {peak:.2f} GiB (target <= 16 GiB: {met})")
    return out


TITLES = {
    "overhead": "single turn, ours vs bare TRL (G={g}, {p} prompts/step, <= {n} tokens, T=1, "
    "{s} steps; headline = steps 2..{s})",
    "samplers": "multi-turn sandbox episodes (max_turns {mt}, <= {mtn} tokens/turn, G={g}, "
    "{tp} task/step, {ms2} steps; headline = steps 2..{ms2})",
    "memory": "quickstart's rl size (max_turns {mmt}, <= 128 tokens/turn, G={g}, {tp} task/step, "
    "{ms} step)",
}


def _write(path: Path, results: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, default=str) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--parts", default=",".join(PARTS), help="Comma list of " + ", ".join(PARTS))
    ap.add_argument("--group", type=int, default=4, help="num_generations (G).")
    ap.add_argument("--steps", type=int, default=3, help="Overhead part: optimizer steps.")
    ap.add_argument("--prompts-per-step", type=int, default=2, help="Overhead part.")
    ap.add_argument("--max-tokens", type=int, default=64, help="Overhead part: tokens/turn.")
    ap.add_argument("--mt-steps", type=int, default=2, help="Samplers part: optimizer steps.")
    ap.add_argument(
        "--tasks-per-step",
        type=int,
        default=1,
        help="Samplers and memory parts (1: the quickstart's rl.tasks_per_step).",
    )
    ap.add_argument("--max-turns", type=int, default=4, help="Samplers part.")
    ap.add_argument("--mt-max-tokens", type=int, default=128, help="Samplers part: tokens/turn.")
    ap.add_argument("--mem-steps", type=int, default=1, help="Memory part: optimizer steps.")
    ap.add_argument("--mem-max-turns", type=int, default=6, help="Memory part (quickstart: 6).")
    ap.add_argument(
        "--mem-samplers", default="hf", help="Memory part: hf (the quickstart's) and/or llamacpp."
    )
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads of every arm (0: torch's default, all cores; on a shared CPU more "
        "threads than free cores make torch several times slower and erratic)",
    )
    ap.add_argument(
        "--llamacpp-threads", type=int, default=1, help="llama.cpp threads (0: all cores)."
    )
    ap.add_argument(
        "--guard-gib",
        type=float,
        default=18.0,
        help="Kill an arm whose RSS passes this (or the machine's available memory - 0.75 GiB).",
    )
    ap.add_argument(
        "--quick",
        action="store_true",
        help="Smoke sizes: overhead 2 steps without ours+stops, 2-turn samplers, 3-turn memory.",
    )
    ap.add_argument("--work", default="runs/bench_rl")
    ap.add_argument("--smollm2-dir", default="runs/models/smollm2")
    ap.add_argument("--out", default="bench/results/rl_cpu.json")
    ap.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child is not None:
        return run_child(args.child)
    if args.quick:
        args.steps, args.max_turns, args.mem_max_turns = 2, 2, 3
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    for p in parts:
        if p not in PARTS:
            ap.error(f"--parts: unknown part {p!r} (choose from {', '.join(PARTS)})")

    t0 = time.perf_counter()
    load_start = _load()
    work = (REPO / args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    assets = prepare(args)
    meta = machine_meta()
    print(
        f"bench rl: {meta['cpu_count']} x {meta['cpu_model']}, {meta['mem_total_gib']} GiB, "
        f"commit {meta['commit'][:10]} ({len(meta['dirty_files'])} files modified), "
        f"load {load_start}",
        flush=True,
    )
    fmt = {
        "g": args.group,
        "p": args.prompts_per_step,
        "n": args.max_tokens,
        "s": args.steps,
        "mt": args.max_turns,
        "mtn": args.mt_max_tokens,
        "ms": args.mem_steps,
        "ms2": args.mt_steps,
        "tp": args.tasks_per_step,
        "mmt": args.mem_max_turns,
    }
    out = REPO / args.out
    results: dict[str, Any] = {"meta": meta, "args": vars(args) | {"child": None}, "parts": {}}
    for part in parts:
        load0 = _load()
        rows = []
        for spec in part_specs(part, args, assets):
            print(f"  {part}: {spec['arm']} ...", flush=True)
            rows.append(run_arm(spec, work, args.guard_gib))
        info = {
            "title": TITLES[part].format(**fmt),
            "load_before": load0,
            "load_after": _load(),
            **verdicts(part, rows),
        }
        print_part(part, rows, info)
        results["parts"][part] = {**info, "arms": rows}
        _write(out, results)  # after every part: a killed run keeps what it measured
    threads = {r.get("torch_threads") for p in results["parts"].values() for r in p["arms"]}
    meta["torch_threads"] = sorted(t for t in threads if t is not None)
    meta["load_start"], meta["load_end"] = load_start, _load()
    meta["total_wall_s"] = round(time.perf_counter() - t0, 1)
    _write(out, results)
    print(f"\ntotal {meta['total_wall_s']} s, load {load_start} -> {meta['load_end']}; wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

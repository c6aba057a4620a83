"""Run the Behavior Priming study from an :class:`ExperimentConfig`, stage by stage.

world -> BM25 index -> scripted teachers on two disjoint train pools -> score + rules
annotator -> prime (base data from pool A, one selection of pool B per arm) -> SFT the base
model, then each arm from the base -> roll every model out on dev through the real agent
loop -> score, annotate, behavior stats and plots -> ``report.json``.

Every stage writes its files under the output folder and is skipped when they exist;
rollouts resume record by record and SFT resumes from its last checkpoint, so a killed run
picks up where it stopped.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

from searchprime.experiment.config import ExperimentConfig
from searchprime.records import (
    BEHAVIORS,
    Task,
    Trajectory,
    atomic_write_text,
    read_jsonl,
    write_jsonl,
)

#: ``progress(description, total)`` -> a context manager yielding ``advance(n=1)``.
ProgressFactory = Callable[[str, int], AbstractContextManager[Callable[..., None]]]
Log = Callable[[str], None]


@contextmanager
def _no_progress(description: str, total: int) -> Iterator[Callable[..., None]]:
    yield lambda n=1: None


def _rollout(
    path: Path,
    tasks: list[Task],
    llm: Any,
    search: Any,
    agent_cfg: Any,
    concurrency: int,
    progress: ProgressFactory,
    label: str,
) -> list[Trajectory]:
    from searchprime.agent.rollout import finished_keys, rollout

    done = len(finished_keys(path)) if path.exists() else 0
    with progress(label, len(tasks)) as advance:
        advance(min(done, len(tasks)))
        asyncio.run(
            rollout(
                tasks,
                llm,
                search,
                agent_cfg,
                path,
                concurrency=concurrency,
                on_done=lambda _t: advance(),
            )
        )
    # a file grown under a larger dev_n holds more tasks than this run asks about
    wanted = {t.id for t in tasks}
    return [t for t in read_jsonl(path, Trajectory) if t.task_id in wanted]


def eval_agent_config(cfg: ExperimentConfig) -> Any:
    """The agent-loop settings of the trained policies' dev rollouts (the ``eval`` section)."""
    from searchprime.agent.loop import AgentConfig, default_sampling

    return AgentConfig(
        max_turns=cfg.eval.max_turns,
        topk=cfg.eval.topk,
        prompt=cfg.eval.prompt,
        sampling=default_sampling().model_copy(
            update={"temperature": cfg.eval.temperature, "max_tokens": cfg.eval.max_tokens}
        ),
    )


def _task_ids(path: Path) -> set[str] | None:
    """Task ids of a trajectory file, or None when it does not exist."""
    return {t.task_id for t in read_jsonl(path, Trajectory)} if path.exists() else None


def _check_same_settings(cfg: ExperimentConfig, saved: Path) -> None:
    """Stages are cached by their files: resuming with other settings would mix two studies.

    Only the ``eval`` section may change (re-evaluating trained models is cheap and safe once
    the eval outputs are removed).
    """
    if not saved.exists():
        return
    from searchprime.errors import ResumeError

    old = json.loads(saved.read_text())
    new = json.loads(cfg.model_dump_json())
    diff = sorted(k for k in set(old) | set(new) if k != "eval" and old.get(k) != new.get(k))
    if diff:
        raise ResumeError(
            f"{saved}: this folder holds a study with other settings ({', '.join(diff)}); "
            "use a new --out folder, or the same settings to resume"
        )


def score_and_label(trajs: list[Trajectory], world: Any) -> list[Trajectory]:
    """Fill EM/F1 scores and rules-annotator labels in place."""
    from searchprime.behaviors.rules import annotate_rules
    from searchprime.eval.score import score_one

    for t in trajs:
        t.scores = score_one(t, t.answers)
        t.labels = annotate_rules(t, world)
    return trajs


def summarize(trajs: list[Trajectory], tasks: list[Task], world: Any) -> dict[str, Any]:
    """EM (over all tasks), valid-turn rate, turns, searches and behavior rates.

    ``behavior_offered`` is each behavior's rate among trajectories whose task offers the
    situation for it (a trap that the behavior answers).
    """
    from searchprime.world import behaviors_offered

    n_tasks = len(tasks) or 1
    turns = [x for t in trajs for x in t.turns]
    n = len(trajs) or 1
    row: dict[str, Any] = {
        "n": len(trajs),
        "em": sum((t.scores.em or 0.0) for t in trajs if t.scores) / n_tasks,
        "f1": sum((t.scores.f1 or 0.0) for t in trajs if t.scores) / n_tasks,
        "valid_turns": sum(x.action.kind != "invalid" for x in turns) / (len(turns) or 1),
        "answered": sum(t.termination == "answer" for t in trajs) / n,
        "turns": len(turns) / n,
        "searches": sum(t.n_searches for t in trajs) / n,
        "behavior": {},
        "behavior_offered": {},
        "offered_n": {},
    }
    by_id = {t.id: t for t in tasks}
    for b in BEHAVIORS:
        row["behavior"][b] = sum(bool(t.labels and t.labels.has(b)) for t in trajs) / n
        offered = [t for t in trajs if b in behaviors_offered(by_id[t.task_id])]
        row["offered_n"][b] = len(offered)
        row["behavior_offered"][b] = (
            sum(bool(t.labels and t.labels.has(b)) for t in offered) / len(offered)
            if offered
            else None
        )
    return row


_SHORT = {
    "information_verification": "verify",
    "authority_evaluation": "authority",
    "adaptive_search": "adaptive",
    "error_recovery": "recovery",
}


def report_rows(report: dict[str, Any]) -> list[dict[str, str]]:
    """The report as table rows: one per model, behavior cells 'overall / where offered'."""
    rows = []
    for name, r in report["arms"].items():
        row = {
            "model": name,
            "n": str(r["n"]),
            "EM": f"{r['em']:.3f}",
            "F1": f"{r['f1']:.3f}",
            "valid": f"{r['valid_turns']:.3f}",
            "turns": f"{r['turns']:.1f}",
            "srch": f"{r['searches']:.1f}",
        }
        for b in BEHAVIORS:
            offered = r["behavior_offered"][b]
            row[_SHORT[b]] = f"{r['behavior'][b]:.2f}/" + (
                "-" if offered is None else f"{offered:.2f}"
            )
        rows.append(row)
    return rows


def run_experiment(
    cfg: ExperimentConfig,
    out_dir: str | Path,
    *,
    progress: ProgressFactory = _no_progress,
    log: Log = print,
) -> dict[str, Any]:
    """Run (or resume) the study in ``out_dir``; return the report also written as JSON."""
    from searchprime.agent.loop import AgentConfig
    from searchprime.data.prime import CARD_FILE, prime
    from searchprime.data.select import SelectionConfig
    from searchprime.search.bm25 import BM25Search
    from searchprime.world import Teacher, WorldConfig, build_world, load_world
    from searchprime.world.calibrate import ensure_index

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _check_same_settings(cfg, out / "experiment.json")
    atomic_write_text(out / "experiment.json", cfg.model_dump_json(indent=2) + "\n")
    seconds: dict[str, float] = {}
    t_all = time.perf_counter()

    @contextmanager
    def stage(name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        log(f"stage {name} ...")
        yield
        seconds[name] = round(time.perf_counter() - t0, 1)
        log(f"stage {name} done in {seconds[name]:.0f}s")

    # -- world and index ------------------------------------------------------------------
    world_dir = out / "world"
    with stage("world"):
        if not (world_dir / "world.json").exists():
            wcfg = WorldConfig(
                seed=cfg.world.seed,
                entities=cfg.world.entities,
                tasks=cfg.world.tasks,
                **cfg.world.extra,
            )
            build_world(wcfg, world_dir)
        world = load_world(world_dir)
        search = BM25Search.load(ensure_index(world_dir))

    # -- teachers on two disjoint train pools -----------------------------------------------
    tc = cfg.teachers
    train = world.split("train")
    if tc.base_pool + tc.prime_pool > len(train):
        from searchprime.errors import ConfigError

        raise ConfigError(
            f"teachers: base_pool + prime_pool = {tc.base_pool + tc.prime_pool} exceeds the "
            f"{len(train)} train tasks of the world; raise world.tasks or shrink the pools"
        )
    pools = {
        "base": (tc.base_preset, train[: tc.base_pool]),
        "prime": (tc.prime_preset, train[tc.base_pool : tc.base_pool + tc.prime_pool]),
    }
    teacher_agent = AgentConfig(max_turns=tc.max_turns, topk=cfg.eval.topk, prompt=cfg.eval.prompt)
    labelled: dict[str, Path] = {}
    with stage("teachers"):
        for pool, (preset, tasks) in pools.items():
            raw = out / "teachers" / f"{pool}-{preset}.jsonl"
            labelled[pool] = raw.with_suffix(".labelled.jsonl")
            if labelled[pool].exists():
                continue
            trajs = _rollout(
                raw,
                tasks,
                Teacher(world, preset),
                search,
                teacher_agent,
                tc.concurrency,
                progress,
                f"teacher {preset} on pool {pool}",
            )
            write_jsonl(labelled[pool], score_and_label(trajs, world))

    # -- priming data ----------------------------------------------------------------------
    cards: dict[str, Any] = {}
    data_dirs: dict[str, Path] = {}
    with stage("prime"):
        s = cfg.sft
        selections = [("base", labelled["base"], s.base_strategy, s.base_n, s.base_stratify)]
        selections += [(a.name, labelled["prime"], a.strategy, a.n, a.stratify) for a in cfg.arms]
        tasks_by_id = {t.id: t for t in train}
        for name, source, strategy, n, stratify in selections:
            data_dirs[name] = out / "data" / name
            card_file = data_dirs[name] / CARD_FILE
            if card_file.exists():
                cards[name] = json.loads(card_file.read_text())
                continue
            card = prime(
                [source],
                SelectionConfig(strategy=strategy, n=n, seed=cfg.seed, stratify=stratify),
                data_dirs[name],
                shape=cfg.sft.shape,
                tasks=tasks_by_id,
            )
            cards[name] = json.loads(card.model_dump_json())
            for line in card.summary_lines():
                log("  " + line)

    # -- models, each evaluated on dev as soon as it is trained ----------------------------
    dev = world.split("dev")[: cfg.eval.dev_n]
    eval_agent = eval_agent_config(cfg)
    dev_ids = {t.id for t in dev}
    report: dict[str, Any] = {"name": cfg.name, "selection": cards, "arms": {}}
    scored: dict[str, Path] = {}
    for name, model_dir in _train_models(cfg, out, data_dirs, stage, log):
        with stage(f"eval {name}"):
            raw = out / "eval" / f"{name}.jsonl"
            scored[name] = raw.with_suffix(".labelled.jsonl")
            if _task_ids(scored[name]) != dev_ids:  # missing, or written for another dev_n
                with open_policy(cfg, model_dir) as llm:
                    trajs = _rollout(
                        raw,
                        dev,
                        llm,
                        search,
                        eval_agent,
                        cfg.eval.max_batch,
                        progress,
                        f"rollout {name} on dev",
                    )
                write_jsonl(scored[name], score_and_label(trajs, world))
            row = summarize(list(read_jsonl(scored[name], Trajectory)), dev, world)
            report["arms"][name] = row
            log(
                f"  {name} on {len(dev)} dev tasks: EM {row['em']:.3f}, "
                f"valid turns {row['valid_turns']:.1%}, {row['searches']:.2f} searches/task"
            )
    for pool, (preset, tasks) in pools.items():
        trajs = list(read_jsonl(labelled[pool], Trajectory))
        report["arms"][f"teacher-{preset}"] = summarize(trajs, tasks, world)

    with stage("stats"):
        from searchprime.behaviors.stats import compute_stats, plot_stats

        stats = compute_stats(list(scored.values()), names=list(scored))
        atomic_write_text(out / "stats.json", stats.model_dump_json(indent=2) + "\n")
        report["plots"] = [str(p) for p in plot_stats(stats, out / "plots")]

    report["seconds"] = {**seconds, "total": round(time.perf_counter() - t_all, 1)}
    atomic_write_text(out / "report.json", json.dumps(report, indent=2) + "\n")
    return report


@contextmanager
def open_policy(cfg: ExperimentConfig, model_dir: Path) -> Iterator[Any]:
    """A trained checkpoint as an LLM backend (``eval.backend``)."""
    if cfg.eval.backend == "llamacpp":
        with _llamacpp_policy(cfg, model_dir) as llm:
            yield llm
        return
    from searchprime.llm.local_hf import LocalHF

    llm = LocalHF(
        str(model_dir),
        device=cfg.eval.device,
        max_batch=cfg.eval.max_batch,
        threads=cfg.eval.threads,
    )
    try:
        yield llm
    finally:
        asyncio.run(llm.aclose())


#: KV-cache tokens per llama.cpp slot: the longest agent context of the sandbox study
#: (10 turns of 3 passages) stays under 4k tokens.
_SLOT_CONTEXT = 4096


@contextmanager
def _llamacpp_policy(cfg: ExperimentConfig, model_dir: Path) -> Iterator[Any]:
    """Export the checkpoint to GGUF once (next to it) and serve it with llama.cpp.

    ``bench/eval_backend.py`` on the 2-core CPU (primed SmolLM2, 16 dev tasks, 8 agents): 12.6 s
    per task against 24.2 s with static transformers batches (1.92x), because llama.cpp keeps
    each agent's previous turns in its slot's KV cache and refills a slot as soon as its agent's
    turn ends.
    """
    from searchprime.llm.openai_http import OpenAIChat
    from searchprime.llm.serve import GGUFServer
    from searchprime.train.gguf_export import export_gguf

    gguf = model_dir / "model.f16.gguf"
    if not gguf.exists():
        export_gguf(model_dir, gguf)
    slots = cfg.eval.max_batch
    with GGUFServer(
        gguf, parallel=slots, ctx_size=slots * _SLOT_CONTEXT, threads=cfg.eval.threads
    ) as server:
        llm = OpenAIChat(
            server.base_url,
            model=model_dir.name,
            tokenizer=str(model_dir),
            concurrency=slots,
            timeout_s=600.0,
        )
        try:
            yield llm
        finally:
            asyncio.run(llm.aclose())


def _train_models(
    cfg: ExperimentConfig,
    out: Path,
    data_dirs: dict[str, Path],
    stage: Callable[[str], AbstractContextManager[None]],
    log: Log,
) -> Iterator[tuple[str, Path]]:
    """SFT the base model from the start checkpoint, then every arm from the base.

    Yields ``(name, checkpoint)`` as each is ready (trained now or earlier).
    """
    from searchprime.train.models import init_tiny, prepare_smollm2
    from searchprime.train.sft import SFTRunConfig, run_sft

    with stage("policy model"):
        if cfg.sft.model == "smollm2":
            start = prepare_smollm2(out / "models" / "smollm2")
        elif cfg.sft.model == "tiny":
            start = out / "models" / "tiny"
            if not (start / "config.json").exists():
                init_tiny(start)
        else:
            start = Path(cfg.sft.model) if Path(cfg.sft.model).exists() else cfg.sft.model
    trl = {
        "num_train_epochs": cfg.sft.epochs,
        "learning_rate": cfg.sft.learning_rate,
        "per_device_train_batch_size": cfg.sft.batch_size,
        "max_length": cfg.sft.max_length,
        "save_steps": 50,
        "logging_steps": 1,
        "seed": cfg.seed,
        **({"use_cpu": True} if cfg.eval.device == "cpu" else {}),
        **cfg.sft.trl,
    }
    base: Path | None = None
    epochs = {a.name: a.epochs for a in cfg.arms if a.epochs is not None}
    order = [("base", start)] + [(a.name, None) for a in cfg.arms]
    for name, init in order:
        dest = out / "sft" / name
        with (
            stage(f"sft {name}") if not (dest / "searchprime_sft.json").exists() else nullcontext()
        ):
            if not (dest / "searchprime_sft.json").exists():
                summary = run_sft(
                    SFTRunConfig(
                        model=str(init or base),
                        data=str(data_dirs[name]),
                        output_dir=str(dest),
                        resume=any(dest.glob("checkpoint-*")),
                        trl={**trl, "num_train_epochs": epochs.get(name, cfg.sft.epochs)},
                    )
                )
                log(
                    f"  {name}: {summary.samples} samples, {summary.steps} steps, loss "
                    f"{summary.first_loss} -> {summary.last_loss}, {summary.tokens_per_s:.0f} tok/s"
                )
        base = base or dest
        yield name, dest

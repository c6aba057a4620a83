"""Run the Behavior Priming study from an :class:`ExperimentConfig`, stage by stage.

world -> BM25 index -> scripted teachers on two disjoint train pools -> score + rules
annotator -> prime (base data from pool A, one selection of pool B per arm) -> SFT the base
model, then each arm from the base -> roll every model out on dev through the real agent
loop -> (``rl:``) GRPO from the named models on further train tasks, each RL'd model rolled
out on dev as ``<name>+rl`` -> score, annotate, behavior stats and plots -> ``report.json``.

Every stage writes its files under the output folder and is skipped when they exist;
rollouts resume record by record and SFT and RL resume from their last checkpoint, so a killed
run picks up where it stopped.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

from searchprime.errors import ConfigError
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

#: The report name of a model after RL: ``base+rl``.
RL_SUFFIX = "+rl"
#: What an RL'd model's report row keeps of its run summary.
RL_REPORT_FIELDS = ("steps", "reward_first", "reward_last", "zero_std_groups", "runtime_s")


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


def degeneracy(trajs: list[Trajectory], threshold: float = 0.5) -> str | None:
    """Why a model's trajectories look broken (looping, never answering), or None.

    A search repeats when its query (case and spacing aside) was already issued earlier in the
    same trajectory; each rate at or above ``threshold`` is a reason.
    """
    if not trajs:
        return None
    reasons = []
    searches = repeats = 0
    for t in trajs:
        seen: set[str] = set()
        for turn in t.turns:
            if turn.action.kind == "search":
                query = " ".join(turn.action.content.lower().split())
                searches += 1
                repeats += query in seen
                seen.add(query)
    if searches and repeats / searches >= threshold:
        reasons.append(
            f"{repeats / searches:.0%} of its searches repeat a query it already issued on the "
            "same task"
        )
    out_of_turns = sum(t.termination == "max_turns" for t in trajs) / len(trajs)
    if out_of_turns >= threshold:
        reasons.append(f"{out_of_turns:.0%} of its tasks end at the turn limit without an answer")
    turns = [x for t in trajs for x in t.turns]
    invalid = sum(x.action.kind == "invalid" for x in turns) / (len(turns) or 1)
    if invalid >= threshold:
        reasons.append(f"{invalid:.0%} of its turns hold no valid action")
    return "; ".join(reasons) or None


_SHORT = {
    "information_verification": "verify",
    "authority_evaluation": "authority",
    "adaptive_search": "adaptive",
    "error_recovery": "recovery",
}


def report_rows(report: dict[str, Any]) -> list[dict[str, str]]:
    """The report as table rows: one per model, behavior cells 'overall / where offered'.

    ``ΔEM`` is an RL'd model's EM minus the EM of the model its RL started from.
    """
    rows = []
    arms = report["arms"]
    for name, r in arms.items():
        start = arms.get(name.removesuffix(RL_SUFFIX)) if name.endswith(RL_SUFFIX) else None
        row = {
            "model": name,
            "n": str(r["n"]),
            "EM": f"{r['em']:.3f}",
            "ΔEM": "-" if start is None else f"{r['em'] - start['em']:+.3f}",
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
        index_dir = ensure_index(world_dir)
        search = BM25Search.load(index_dir)

    # -- teachers on two disjoint train pools -----------------------------------------------
    tc = cfg.teachers
    train = world.split("train")
    if tc.base_pool + tc.prime_pool > len(train):
        raise ConfigError(
            f"teachers: base_pool + prime_pool = {tc.base_pool + tc.prime_pool} exceeds the "
            f"{len(train)} train tasks of the world; raise world.tasks or shrink the pools"
        )
    pools = {
        "base": (tc.base_preset, train[: tc.base_pool]),
        "prime": (tc.prime_preset, train[tc.base_pool : tc.base_pool + tc.prime_pool]),
    }
    rl_tasks = _rl_tasks(cfg, train, out)
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

    def evaluate(name: str, model_dir: Path) -> dict[str, Any]:
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
        return row

    for name, model_dir in _train_models(cfg, out, data_dirs, stage, log):
        evaluate(name, model_dir)
        if cfg.rl is None or name not in cfg.rl.start_from or rl_tasks is None:
            continue
        rl_dir, rl_summary = _train_rl(
            cfg, name, model_dir, out, rl_tasks, world_dir, index_dir, stage, log
        )
        row = evaluate(name + RL_SUFFIX, rl_dir)
        row["rl"] = {k: getattr(rl_summary, k) for k in RL_REPORT_FIELDS}
        log(
            f"  {name}{RL_SUFFIX}: EM {report['arms'][name]['em']:.3f} -> {row['em']:.3f} on dev "
            f"after {rl_summary.steps} RL steps (train reward {_num(rl_summary.reward_first)} -> "
            f"{_num(rl_summary.reward_last)})"
        )
    for pool, (preset, tasks) in pools.items():
        trajs = list(read_jsonl(labelled[pool], Trajectory))
        report["arms"][f"teacher-{preset}"] = summarize(trajs, tasks, world)

    with stage("stats"):
        from searchprime.behaviors.stats import compute_stats, plot_stats

        stats = compute_stats(list(scored.values()), names=list(scored))
        atomic_write_text(out / "stats.json", stats.model_dump_json(indent=2) + "\n")
        report["plots"] = [str(p) for p in plot_stats(stats, out / "plots")]

    for name, path in scored.items():
        reason = degeneracy(list(read_jsonl(path, Trajectory)))
        if reason is not None:
            report["arms"][name]["degenerate"] = reason
            log(f"WARNING: {name} looks degenerate: {reason}")

    report["seconds"] = {**seconds, "total": round(time.perf_counter() - t_all, 1)}
    atomic_write_text(out / "report.json", json.dumps(report, indent=2) + "\n")
    return report


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def _rl_tasks(cfg: ExperimentConfig, train: list[Task], out: Path) -> Path | None:
    """Write the RL tasks (the train tasks after both teacher pools) once; None without RL."""
    if cfg.rl is None:
        return None
    first = cfg.teachers.base_pool + cfg.teachers.prime_pool
    need = first + cfg.rl.tasks
    if need > len(train):
        raise ConfigError(
            f"rl.tasks: {cfg.rl.tasks} RL tasks after the teacher pools ({first} tasks) need "
            f"{need} train tasks, but the world has {len(train)}; raise world.tasks or lower "
            "rl.tasks"
        )
    path = out / "rl" / "tasks.jsonl"
    if not path.exists():
        write_jsonl(path, train[first:need])
    return path


def rl_run_config(
    cfg: ExperimentConfig,
    model_dir: Path,
    dest: Path,
    *,
    tasks: Path,
    index_dir: Path,
) -> Any:
    """The :class:`~searchprime.rl.config.RLRunConfig` of one model's RL run (the ``rl`` section).

    The episodes use the dev rollouts' agent settings (prompt, topk), with ``rl.max_turns`` /
    ``rl.max_tokens`` where given.
    """
    from searchprime.rl.config import EpisodeSettings, RLRunConfig, SamplerSettings
    from searchprime.search.registry import SearchConfig

    rl = cfg.rl
    if rl is None:
        raise ConfigError("rl: this study has no rl section")
    batch = rl.tasks_per_step * rl.num_generations
    trl = {
        "max_steps": rl.max_steps,
        "num_generations": rl.num_generations,
        "per_device_train_batch_size": batch,
        "learning_rate": rl.learning_rate,
        "beta": rl.beta,
        "temperature": rl.temperature,
        "save_steps": rl.save_steps,
        "seed": cfg.seed,
        **({"use_cpu": True} if cfg.eval.device == "cpu" else {}),
        **rl.trl,
    }
    return RLRunConfig(
        model=str(model_dir),
        tasks=str(tasks),
        search=SearchConfig(kind="bm25", path=str(index_dir), topk=cfg.eval.topk),
        output_dir=str(dest),
        episode=EpisodeSettings(
            max_turns=rl.max_turns or cfg.eval.max_turns,
            topk=cfg.eval.topk,
            prompt=cfg.eval.prompt,
            max_tokens=rl.max_tokens or cfg.eval.max_tokens,
        ),
        sampler=SamplerSettings(kind=rl.sampler, max_batch=batch, threads=cfg.eval.threads),
        rewards=rl.rewards,
        prefilter=rl.prefilter,
        curriculum=rl.curriculum,
        concurrency=batch,
        threads=cfg.eval.threads,
        resume=any(dest.glob("checkpoint-*")),
        trl=trl,
    )


def _train_rl(
    cfg: ExperimentConfig,
    name: str,
    model_dir: Path,
    out: Path,
    tasks: Path,
    world_dir: Path,
    index_dir: Path,
    stage: Callable[[str], AbstractContextManager[None]],
    log: Log,
) -> tuple[Path, Any]:
    """GRPO from ``model_dir`` into ``out/rl/<name>`` (cached; resumes from checkpoints)."""
    from searchprime.rl.grpo import SUMMARY_FILE, RLSummary, run_rl

    dest = out / "rl" / name
    if (dest / SUMMARY_FILE).exists():
        return dest, RLSummary.model_validate_json((dest / SUMMARY_FILE).read_text())
    with stage(f"rl {name}"):
        run_cfg = rl_run_config(cfg, model_dir, dest, tasks=tasks, index_dir=index_dir)
        from searchprime.behaviors.annotate import RulesAnnotator

        summary = run_rl(run_cfg, annotator=RulesAnnotator(world_dir), log=log)
        log(
            f"  {name}: {summary.steps} RL steps, {summary.episodes} episodes, reward "
            f"{_num(summary.reward_first)} -> {_num(summary.reward_last)}, zero-variance groups "
            f"{_num(summary.zero_std_groups)}"
        )
    return dest, summary


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

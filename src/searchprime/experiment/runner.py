"""Run the Behavior Priming study from an :class:`ExperimentConfig`, stage by stage.

world -> BM25 index -> scripted teachers on two disjoint train pools -> score + rules
annotator -> prime (base data from pool A, one selection of pool B per arm) -> SFT the base
model, then each arm from the base -> roll every model out on dev through the real agent
loop (and each ``prompt_arms`` entry: a trained model under another system prompt) ->
(``rl:``) each RL run from its start model on further train tasks, the RL'd model rolled out
on dev under the run's name -> score, label with the rules and the action-grounded annotators,
behavior stats and plots -> comparisons and the paper's claims -> ``report.json``.

Every stage writes its files under the output folder and is skipped when they exist;
rollouts resume record by record and SFT and RL resume from their last checkpoint, so a killed
run picks up where it stopped.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

from searchprime.errors import ConfigError
from searchprime.experiment.analysis import (
    comparisons,
    em_by_task,
    entropy_row,
    interval_row,
    sampling_row,
)
from searchprime.experiment.claims import claims
from searchprime.experiment.config import ExperimentConfig
from searchprime.experiment.policy import eval_agent_config, open_policy, sampling_agent_config
from searchprime.experiment.rl_stage import RL_REPORT_FIELDS, _num, rl_tasks, train_rl
from searchprime.experiment.sft_stage import train_models
from searchprime.experiment.summary import (
    degeneracy,
    grounded_row,
    label_grounded,
    score_and_label,
    summarize,
)
from searchprime.records import Task, Trajectory, atomic_write_text, read_jsonl, write_jsonl

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
    attempts: int = 1,
) -> list[Trajectory]:
    from searchprime.agent.rollout import finished_keys, rollout

    done = len(finished_keys(path)) if path.exists() else 0
    with progress(label, len(tasks) * attempts) as advance:
        advance(min(done, len(tasks) * attempts))
        asyncio.run(
            rollout(
                tasks,
                llm,
                search,
                agent_cfg,
                path,
                attempts=attempts,
                concurrency=concurrency,
                on_done=lambda _t: advance(),
            )
        )
    # a file grown under a larger dev_n holds more tasks than this run asks about
    wanted = {t.id for t in tasks}
    return [t for t in read_jsonl(path, Trajectory) if t.task_id in wanted]


def _cached_json(path: Path, compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``compute()`` once; later runs read the JSON it left at ``path``."""
    if path.exists():
        return json.loads(path.read_text())
    value = compute()
    atomic_write_text(path, json.dumps(value, indent=2) + "\n")
    return value


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
    try:  # a folder written before a field was added holds that field's default
        old = json.loads(ExperimentConfig.model_validate(old).model_dump_json())
    except ValueError:
        pass
    new = json.loads(cfg.model_dump_json())
    for study in (old, new):  # tracking can be turned on for a study that is resumed
        for section in ("sft", "rl"):
            if isinstance(study.get(section), dict):
                study[section].pop("report_to", None)
    diff = sorted(k for k in set(old) | set(new) if k != "eval" and old.get(k) != new.get(k))
    if diff:
        raise ResumeError(
            f"{saved}: this folder holds a study with other settings ({', '.join(diff)}); "
            "use a new --out folder, or the same settings to resume"
        )


def run_experiment(
    cfg: ExperimentConfig,
    out_dir: str | Path,
    *,
    progress: ProgressFactory = _no_progress,
    log: Log = print,
) -> dict[str, Any]:
    """Run (or resume) the study in ``out_dir``; return the report also written as JSON.

    With ``seeds``, one study per seed in ``out_dir/seed-<s>/`` and the mean ± sd across them
    (:mod:`searchprime.experiment.seeds`).
    """
    from searchprime.records.lock import OutputLock

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.seeds:
        from searchprime.experiment.seeds import run_seeds

        def one(c: ExperimentConfig, o: Path) -> dict[str, Any]:
            return run_experiment(c, o, progress=progress, log=log)

        with OutputLock(out, purpose="searchprime experiment (seeds)"):
            return run_seeds(cfg, out, one, log=log)
    # one study per folder at a time: a second `experiment` on it is refused, naming the first
    with OutputLock(out, purpose="searchprime experiment"):
        return _run_study(cfg, out, progress, log)


def _run_study(cfg: ExperimentConfig, out: Path, progress: ProgressFactory, log: Log) -> dict:
    from searchprime.agent.loop import AgentConfig
    from searchprime.data.prime import CARD_FILE, prime
    from searchprime.data.select import SelectionConfig
    from searchprime.search.bm25 import BM25Search
    from searchprime.world import Teacher, WorldConfig, build_world, load_world
    from searchprime.world.calibrate import ensure_index

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
    rl_tasks_file = rl_tasks(cfg, train, out)
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
        wanted = cfg.wanted()
        selections += [
            (a.name, labelled["prime"], a.strategy, a.n, a.stratify)
            for a in cfg.arms
            if a.name in wanted
        ]
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
    dev_ids = {t.id for t in dev}
    parents = cfg.models()
    report: dict[str, Any] = {"name": cfg.name, "selection": cards, "arms": {}}
    scored: dict[str, Path] = {}
    per_task: dict[str, list[float]] = {}

    def evaluate(name: str, model_dir: Path, prompt: str | None = None) -> dict[str, Any]:
        with stage(f"eval {name}"):
            raw = out / "eval" / f"{name}.jsonl"
            scored[name] = raw.with_suffix(".labelled.jsonl")
            grounded = raw.with_suffix(".grounded.jsonl")
            if _task_ids(scored[name]) != dev_ids:  # missing, or written for another dev_n
                with open_policy(cfg, model_dir) as llm:
                    trajs = _rollout(
                        raw,
                        dev,
                        llm,
                        search,
                        eval_agent_config(cfg, prompt),
                        cfg.eval.max_batch,
                        progress,
                        f"rollout {name} on dev",
                    )
                write_jsonl(scored[name], score_and_label(trajs, world))
            trajs = list(read_jsonl(scored[name], Trajectory))
            if _task_ids(grounded) != dev_ids:
                write_jsonl(grounded, label_grounded(trajs, world))
            row = summarize(trajs, dev, world)
            row.update(interval_row(trajs, dev, cfg))
            row.update(grounded_row(trajs, list(read_jsonl(grounded, Trajectory)), dev, cfg))
            if parents[name] is not None:
                row["parent"] = parents[name]
            if prompt is not None:
                row["prompt"] = prompt
            per_task[name] = em_by_task(trajs, dev)
            if cfg.eval.entropy:
                row.update(
                    _cached_json(
                        out / "eval" / f"{name}.entropy.json",
                        lambda: entropy_row(model_dir, trajs, cfg),
                    )
                )
            if cfg.eval.samples > 1 and name in (cfg.eval.samples_models or [name]):
                row.update(sample(name, model_dir, prompt))
            report["arms"][name] = row
            lo, hi = row["ci95"]["em"]
            log(
                f"  {name} on {len(dev)} dev tasks: EM {row['em']:.3f} [{lo:.3f}, {hi:.3f}], "
                f"valid turns {row['valid_turns']:.1%}, {row['searches']:.2f} searches/task"
                + (
                    f", entropy {row['entropy']['mean']:.3f}"
                    if row.get("entropy", {}).get("mean") is not None
                    else ""
                )
            )
        return row

    def sample(name: str, model_dir: Path, prompt: str | None) -> dict[str, Any]:
        """``eval.samples`` sampled rollouts per task on the first ``samples_tasks`` dev tasks."""
        tasks = dev[: cfg.eval.samples_tasks or len(dev)]
        raw = out / "eval" / f"{name}.samples.jsonl"
        agent = sampling_agent_config(cfg, prompt)
        with open_policy(cfg, model_dir) as llm:
            trajs = _rollout(
                raw,
                tasks,
                llm,
                search,
                agent,
                cfg.eval.max_batch,
                progress,
                f"sample {name} x{cfg.eval.samples}",
                attempts=cfg.eval.samples,
            )
        from searchprime.eval.score import score_one

        for t in trajs:
            t.scores = score_one(t, t.answers)
        row = sampling_row(trajs, tasks, cfg)
        ks = [k for k in (1, 4, 8) if str(k) in row["pass_at_k"]]
        log(
            f"  {name}: "
            + ", ".join(f"pass@{k} {row['pass_at_k'][str(k)]['mean']:.3f}" for k in ks)
        )
        return row

    wanted = cfg.wanted()

    def evaluate_with_prompt_arms(name: str, model_dir: Path) -> dict[str, Any]:
        row = evaluate(name, model_dir)
        for arm in cfg.prompt_arms:
            if arm.model == name and arm.name in wanted:
                evaluate(arm.name, model_dir, arm.prompt)
        return row

    runs = [r for r in (cfg.rl.plan() if cfg.rl else []) if r.name in wanted]
    for name, model_dir in train_models(cfg, out, data_dirs, stage, log):
        evaluate_with_prompt_arms(name, model_dir)
        for run in (r for r in runs if r.start_from == name and rl_tasks_file is not None):
            rl_dir, rl_summary = train_rl(
                cfg, run, model_dir, out, rl_tasks_file, world_dir, index_dir, stage, log
            )
            row = evaluate_with_prompt_arms(run.name, rl_dir)
            row["rl"] = {k: getattr(rl_summary, k) for k in RL_REPORT_FIELDS}
            log(
                f"  {run.name}: EM {report['arms'][name]['em']:.3f} -> {row['em']:.3f} on dev "
                f"after {rl_summary.steps} RL steps (train reward "
                f"{_num(rl_summary.reward_first)} -> {_num(rl_summary.reward_last)})"
            )
    for pool, (preset, tasks) in pools.items():
        trajs = list(read_jsonl(labelled[pool], Trajectory))
        report["arms"][f"teacher-{preset}"] = summarize(trajs, tasks, world)

    with stage("stats"):
        from searchprime.behaviors.stats import compute_stats
        from searchprime.report.plots import plot_behavior_stats

        stats = compute_stats(list(scored.values()), names=list(scored))
        atomic_write_text(out / "stats.json", stats.model_dump_json(indent=2) + "\n")
        report["plots"] = [str(p) for p in plot_behavior_stats(stats, out / "plots")]

    for name, path in scored.items():
        reason = degeneracy(list(read_jsonl(path, Trajectory)))
        if reason is not None:
            report["arms"][name]["degenerate"] = reason
            log(f"WARNING: {name} looks degenerate: {reason}")

    report["comparisons"] = comparisons(per_task, parents, cfg)
    report["claims"] = claims(cfg, per_task, report["arms"])
    # the claims' pairs in the comparisons table too (the HTML report and the CLI print it)
    keep = ("model", "against", "metric", "delta", "ci95", "gained", "lost", "mcnemar_p", "n")
    report["comparisons"] += [
        {**{k: c[k] for k in keep}, "claim": c["claim"]} for c in report["claims"]
    ]
    for c in report["claims"]:
        ratio = "-" if c["ratio"] is None else f"{c['ratio']:.2f}x"
        log(
            f"  claim: {c['statement']}: {c['verdict']} (EM {c['delta']:+.3f}, paired 95% CI "
            f"{c['ci95'][0]:+.3f}..{c['ci95'][1]:+.3f}, McNemar p {_num(c['mcnemar_p'])}, "
            f"ratio {ratio})"
        )
    report["seconds"] = {**seconds, "total": round(time.perf_counter() - t_all, 1)}
    atomic_write_text(out / "report.json", json.dumps(report, indent=2) + "\n")
    from searchprime.report import write_report

    log(f"report -> {write_report(out)}")
    return report

"""One study as it runs: its state and one method per stage, each cached by the files it writes.

:func:`searchprime.experiment.run_experiment` calls the stages in order: :meth:`Study.build_world`
-> :meth:`Study.run_teachers` -> :meth:`Study.prime_data` -> :meth:`Study.train_and_evaluate`
(SFT, dev evaluation, RL and its evaluation, model by model) -> :meth:`Study.teacher_rows` ->
:meth:`Study.behavior_stats` -> :meth:`Study.flag_degenerate` -> :meth:`Study.compare` ->
:meth:`Study.write`.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from searchprime.errors import ConfigError
from searchprime.experiment.analysis import (
    comparisons,
    em_by_task,
    entropy_journal,
    entropy_row,
    interval_row,
    legacy_entropy,
    sampling_row,
)
from searchprime.experiment.claims import claims
from searchprime.experiment.config import ExperimentConfig
from searchprime.experiment.ledger import StageLedger
from searchprime.experiment.policy import eval_agent_config, open_policy, sampling_agent_config
from searchprime.experiment.provenance import read_stamps, same_weights, stamp, training_outcome
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
from searchprime.report.model import ArmSummary

__all__ = ["Log", "ProgressFactory", "Study"]

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


def _unfinished(path: Path, tasks: list[Task]) -> bool:
    """Whether a one-attempt trajectory file holds some of ``tasks`` but not all."""
    from searchprime.agent.rollout import finished_keys

    return path.exists() and not {(t.id, 0) for t in tasks} <= finished_keys(path)


def _task_ids(path: Path) -> set[str] | None:
    """Task ids of a trajectory file, or None when it does not exist."""
    return {t.task_id for t in read_jsonl(path, Trajectory)} if path.exists() else None


@dataclass
class Study:
    """The state a study's stages share; each stage method skips the work its files show done."""

    cfg: ExperimentConfig
    out: Path
    progress: ProgressFactory = _no_progress
    log: Log = print
    seconds: dict[str, float] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)
    #: model name -> its scored, rules-labelled dev trajectories
    scored: dict[str, Path] = field(default_factory=dict)
    #: model name -> EM per dev task (the paired comparisons)
    per_task: dict[str, list[float]] = field(default_factory=dict)
    labelled: dict[str, Path] = field(default_factory=dict)
    data_dirs: dict[str, Path] = field(default_factory=dict)
    pools: dict[str, tuple[str, list[Task]]] = field(default_factory=dict)
    world: Any = None
    search: Any = None
    #: the RL task file (None: the study has no RL)
    rl_file: Path | None = None
    #: keeps a travelling copy of the results (``--carry``) in step after each stage
    carry: Any = None
    ledger: StageLedger = field(init=False)
    #: models whose weights this run makes again (a carried study): their summary file and
    #: the outcome it told of before they were trained again
    trained_again: dict[str, tuple[Path, dict[str, Any] | None]] = field(default_factory=dict)
    _started: float = field(default_factory=time.perf_counter)

    def __post_init__(self) -> None:
        self.world_dir = self.out / "world"
        self.index_dir = self.world_dir / "index"
        self.report = {"name": self.cfg.name, "selection": {}, "arms": {}}
        self.ledger = StageLedger(self.out)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time a stage, log its start and end, and note both in the stage ledger."""
        t0 = time.perf_counter()
        self.ledger.record(name, "start")
        self.log(f"stage {name} ...")
        try:
            yield
        except BaseException:
            self.ledger.record(name, "failed", time.perf_counter() - t0)
            self._sync()
            raise
        self.seconds[name] = round(time.perf_counter() - t0, 1)
        self.ledger.record(name, "done", self.seconds[name])
        self._sync()
        self.log(f"stage {name} done in {self.seconds[name]:.0f}s")

    def _sync(self) -> None:
        if self.carry is not None:
            self.carry.sync()

    # -- world and index ------------------------------------------------------------------
    def build_world(self) -> None:
        """The sandbox world and its BM25 index (built once)."""
        from searchprime.search.bm25 import BM25Search
        from searchprime.world import WorldConfig, build_world, load_world
        from searchprime.world.calibrate import ensure_index

        cfg = self.cfg
        with self.stage("world"):
            if not (self.world_dir / "world.json").exists():
                wcfg = WorldConfig(
                    seed=cfg.world.seed,
                    entities=cfg.world.entities,
                    tasks=cfg.world.tasks,
                    **cfg.world.extra,
                )
                build_world(wcfg, self.world_dir)
            self.world = load_world(self.world_dir)
            self.index_dir = ensure_index(self.world_dir)
            self.search = BM25Search.load(self.index_dir)

    # -- teachers on two disjoint train pools ---------------------------------------------
    def run_teachers(self) -> None:
        """The scripted teachers on the base and the priming pool, scored and rules-labelled."""
        from searchprime.agent.loop import AgentConfig
        from searchprime.world import Teacher

        cfg, tc = self.cfg, self.cfg.teachers
        train = self.world.split("train")
        if tc.base_pool + tc.prime_pool > len(train):
            raise ConfigError(
                f"teachers: base_pool + prime_pool = {tc.base_pool + tc.prime_pool} exceeds the "
                f"{len(train)} train tasks of the world; raise world.tasks or shrink the pools"
            )
        self.pools = {
            "base": (tc.base_preset, train[: tc.base_pool]),
            "prime": (tc.prime_preset, train[tc.base_pool : tc.base_pool + tc.prime_pool]),
        }
        # RL's tasks come after the pools: too few is refused before any teacher runs
        self.rl_file = rl_tasks(cfg, train, self.out)
        agent = AgentConfig(max_turns=tc.max_turns, topk=cfg.eval.topk, prompt=cfg.eval.prompt)
        with self.stage("teachers"):
            for pool, (preset, tasks) in self.pools.items():
                raw = self.out / "teachers" / f"{pool}-{preset}.jsonl"
                self.labelled[pool] = raw.with_suffix(".labelled.jsonl")
                if self.labelled[pool].exists():
                    continue
                trajs = _rollout(
                    raw,
                    tasks,
                    Teacher(self.world, preset),
                    self.search,
                    agent,
                    tc.concurrency,
                    self.progress,
                    f"teacher {preset} on pool {pool}",
                )
                write_jsonl(self.labelled[pool], score_and_label(trajs, self.world))

    # -- priming data ---------------------------------------------------------------------
    def prime_data(self) -> None:
        """Base SFT data from the base pool; one selection of the priming pool per arm."""
        from searchprime.data.prime import CARD_FILE, prime
        from searchprime.data.select import SelectionConfig

        cfg, s = self.cfg, self.cfg.sft
        cards = self.report["selection"]
        with self.stage("prime"):
            selections = [
                ("base", self.labelled["base"], s.base_strategy, s.base_n, s.base_stratify)
            ]
            wanted = cfg.wanted()
            selections += [
                (a.name, self.labelled["prime"], a.strategy, a.n, a.stratify)
                for a in cfg.arms
                if a.name in wanted
            ]
            tasks_by_id = {t.id: t for t in self.world.split("train")}
            for name, source, strategy, n, stratify in selections:
                self.data_dirs[name] = self.out / "data" / name
                card_file = self.data_dirs[name] / CARD_FILE
                if card_file.exists():
                    cards[name] = json.loads(card_file.read_text())
                    continue
                card = prime(
                    [source],
                    SelectionConfig(strategy=strategy, n=n, seed=cfg.seed, stratify=stratify),
                    self.data_dirs[name],
                    shape=cfg.sft.shape,
                    tasks=tasks_by_id,
                )
                cards[name] = json.loads(card.model_dump_json())
                for line in card.summary_lines():
                    self.log("  " + line)

    # -- models, each evaluated on dev as soon as it is trained ---------------------------
    @property
    def dev(self) -> list[Task]:
        return self.world.split("dev")[: self.cfg.eval.dev_n]

    def train_and_evaluate(self) -> None:
        """SFT the base and every arm; evaluate each model (and its prompt arms) on dev as it
        is ready, then each RL run that starts from it, and evaluate the RL'd model."""
        cfg = self.cfg
        wanted = cfg.wanted()
        rl_file = self.rl_file
        runs = [r for r in (cfg.rl.plan() if cfg.rl else []) if r.name in wanted]
        need = self.models_to_train()
        models = train_models(cfg, self.out, self.data_dirs, self.stage, self.log, need)
        for name, model_dir in models:
            self._evaluate_with_prompt_arms(name, model_dir)
            self.write_partial(name)
            for run in (r for r in runs if r.start_from == name and rl_file is not None):
                rl_dir, rl_summary = train_rl(
                    cfg,
                    run,
                    model_dir,
                    self.out,
                    rl_file,
                    self.world_dir,
                    self.index_dir,
                    self.stage,
                    self.log,
                    need=run.name in need,
                )
                row = self._evaluate_with_prompt_arms(run.name, rl_dir)
                row["rl"] = {k: getattr(rl_summary, k) for k in RL_REPORT_FIELDS}
                self.log(
                    f"  {run.name}: EM {self.report['arms'][name]['em']:.3f} -> "
                    f"{row['em']:.3f} on dev after {rl_summary.steps} RL steps (train reward "
                    f"{_num(rl_summary.reward_first)} -> {_num(rl_summary.reward_last)})"
                )
                self.write_partial(run.name)

    def models_to_train(self) -> set[str]:
        """The wanted models whose weights this run needs (all of them unless a carried
        study brought some evaluations back without their weights)."""
        from searchprime.experiment.carry import has_weights, models_to_train
        from searchprime.experiment.status import study_status, training_dirs

        cfg = self.cfg
        status = {m.name: m for m in study_status(cfg, self.out).models}
        dirs = training_dirs(cfg, self.out)
        weights = {n: has_weights(d) for n, (d, _) in dirs.items()}
        need = models_to_train(cfg, status, weights)
        # finished here once (its summary is here), weights gone: it is trained again
        again = {n for n in need if status[n].trained and not weights[n]}
        for n in again:
            summary = dirs[n][0] / dirs[n][1]
            self.trained_again[n] = (summary, training_outcome(summary))
        return need

    def _extend_or_set_aside(self, name: str, kind: str, model_dir: Path) -> None:
        """Before ``model_dir``'s weights extend ``name``'s unfinished ``kind`` file: set the
        file aside (it starts afresh) unless those weights wrote it — one file, one model.

        The file's stamp decides. A file from before stamping was written by these weights
        when its model was not trained again in this run, or when it was and the training
        came out as before, step for step (:func:`~searchprime.experiment.provenance.
        training_outcome`: the SFT here is deterministic on one machine kind).
        """
        from searchprime.experiment.carry import set_aside

        same = same_weights(self.out / "eval", name, kind, model_dir)
        if same is None:
            model = next((p.model for p in self.cfg.prompt_arms if p.name == name), name)
            if model not in self.trained_again:
                return
            summary, before = self.trained_again[model]
            same = before is not None and before == training_outcome(summary)
            self.log(
                f"  {name}'s unfinished {kind} predate weight stamps; its model trained again "
                + ("as before, step for step: going on with them" if same else "otherwise")
            )
        if same:
            return
        carried = self.carry.dest if self.carry is not None else None
        for path in set_aside(self.out, name, kind, carried):
            self.log(f"  set aside {path.name} in {path.parent}: unfinished, by other weights")

    def _evaluate_with_prompt_arms(self, name: str, model_dir: Path) -> dict[str, Any]:
        row = self.evaluate(name, model_dir)
        for arm in self.cfg.prompt_arms:
            if arm.model == name and arm.name in self.cfg.wanted():
                self.evaluate(arm.name, model_dir, arm.prompt)
        return row

    def evaluate(self, name: str, model_dir: Path, prompt: str | None = None) -> dict[str, Any]:
        """Roll ``model_dir`` out on dev (under ``prompt``), score, label with both
        annotators, and add its row (EM with CIs, behaviors, failures, entropy, pass@k)."""
        cfg, dev, world = self.cfg, self.dev, self.world
        dev_ids = {t.id for t in dev}
        with self.stage(f"eval {name}"):
            raw = self.out / "eval" / f"{name}.jsonl"
            self.scored[name] = raw.with_suffix(".labelled.jsonl")
            grounded = raw.with_suffix(".grounded.jsonl")
            if _task_ids(self.scored[name]) != dev_ids:  # missing, or written for another dev_n
                if _unfinished(raw, dev):
                    self._extend_or_set_aside(name, "rollouts", model_dir)
                agent_cfg = eval_agent_config(cfg, prompt)
                with open_policy(cfg, model_dir) as llm:
                    stamp(self.out / "eval", name, "rollouts", model_dir)
                    trajs = _rollout(
                        raw,
                        dev,
                        llm,
                        self.search,
                        agent_cfg,
                        cfg.eval.max_batch,
                        self.progress,
                        f"rollout {name} on dev",
                    )
                write_jsonl(self.scored[name], score_and_label(trajs, world))
            trajs = list(read_jsonl(self.scored[name], Trajectory))
            if _task_ids(grounded) != dev_ids:
                write_jsonl(grounded, label_grounded(trajs, world))
            row = summarize(trajs, dev, world)
            row.update(interval_row(trajs, dev, cfg))
            row.update(grounded_row(trajs, list(read_jsonl(grounded, Trajectory)), dev, cfg))
            parent = cfg.models()[name]
            if parent is not None:
                row["parent"] = parent
            if prompt is not None:
                row["prompt"] = prompt
            self.per_task[name] = em_by_task(trajs, dev)
            if cfg.eval.entropy:
                row.update(self._entropy(name, model_dir, trajs))
            if cfg.eval.samples > 1 and name in (cfg.eval.samples_models or [name]):
                row.update(self._sample(name, model_dir, prompt))
            self._note_weights(name, row)
            self.report["arms"][name] = row
            lo, hi = row["ci95"]["em"]
            entropy = row.get("entropy", {}).get("mean")
            self.log(
                f"  {name} on {len(dev)} dev tasks: EM {row['em']:.3f} [{lo:.3f}, {hi:.3f}], "
                f"valid turns {row['valid_turns']:.1%}, {row['searches']:.2f} searches/task"
                + (f", entropy {entropy:.3f}" if entropy is not None else "")
            )
        return row

    def _entropy(self, name: str, model_dir: Path, trajs: list[Trajectory]) -> dict[str, Any]:
        """The entropy row of ``trajs``, from the per-trajectory journal
        ``eval/<name>.entropy.jsonl``: a pass cut short (on long primed trajectories it takes
        ~20 min on 2 cores) resumes, and a finished one is re-read for any subset of dev."""
        eval_dir = self.out / "eval"
        if (legacy := legacy_entropy(eval_dir, name)) is not None:
            return json.loads(legacy.read_text())
        from searchprime.agent.rollout import finished_keys

        journal = entropy_journal(eval_dir, name)
        if not {t.key for t in trajs} <= finished_keys(journal):
            if journal.exists():
                self._extend_or_set_aside(name, "entropy", model_dir)
            stamp(eval_dir, name, "entropy", model_dir)
        with self.progress(f"entropy {name}", len(trajs)) as advance:
            row = entropy_row(model_dir, trajs, self.cfg, journal=journal, on_done=advance)
        atomic_write_text(journal.with_suffix(".json"), json.dumps(row, indent=2) + "\n")
        return row

    def _sample(self, name: str, model_dir: Path, prompt: str | None) -> dict[str, Any]:
        """``eval.samples`` sampled rollouts per task on the first ``samples_tasks`` dev tasks."""
        from searchprime.agent.rollout import finished_keys
        from searchprime.eval.score import score_one

        cfg = self.cfg
        tasks = self.dev[: cfg.eval.samples_tasks or len(self.dev)]
        path = self.out / "eval" / f"{name}.samples.jsonl"
        wanted = {(t.id, a) for t in tasks for a in range(cfg.eval.samples)}
        # all sampled already (a carried study's model may have no weights here): no policy
        finished = path.exists() and wanted <= finished_keys(path)
        if not finished:
            if path.exists():
                self._extend_or_set_aside(name, "samples", model_dir)
            stamp(self.out / "eval", name, "samples", model_dir)
        with nullcontext(None) if finished else open_policy(cfg, model_dir) as llm:
            trajs = _rollout(
                path,
                tasks,
                llm,
                self.search,
                sampling_agent_config(cfg, prompt),
                cfg.eval.max_batch,
                self.progress,
                f"sample {name} x{cfg.eval.samples}",
                attempts=cfg.eval.samples,
            )
        for t in trajs:
            t.scores = score_one(t, t.answers)
        row = sampling_row(trajs, tasks, cfg)
        ks = [k for k in (1, 4, 8) if str(k) in row["pass_at_k"]]
        self.log(
            f"  {name}: "
            + ", ".join(f"pass@{k} {row['pass_at_k'][str(k)]['mean']:.3f}" for k in ks)
        )
        return row

    def _note_weights(self, name: str, row: dict[str, Any]) -> None:
        """Put the weights that wrote each of ``name``'s evaluation files in its row, and say
        so when they are not all the same training (a carried model trained again)."""
        stamps = read_stamps(self.out / "eval", name)
        if not stamps:
            return
        row["weights"] = stamps
        if note := ArmSummary(name=name, n=len(self.dev), weights=stamps).trainings_note():
            self.log(f"  note: {name}'s {note}")

    # -- summaries ------------------------------------------------------------------------
    def teacher_rows(self) -> None:
        """Each teacher pool summarized like a model (on its own train tasks)."""
        for pool, (preset, tasks) in self.pools.items():
            trajs = list(read_jsonl(self.labelled[pool], Trajectory))
            self.report["arms"][f"teacher-{preset}"] = summarize(trajs, tasks, self.world)

    def behavior_stats(self) -> None:
        """Behavior statistics over every evaluated model, and their plots."""
        from searchprime.behaviors.stats import compute_stats
        from searchprime.report.plots import plot_behavior_stats

        with self.stage("stats"):
            stats = compute_stats(list(self.scored.values()), names=list(self.scored))
            atomic_write_text(self.out / "stats.json", stats.model_dump_json(indent=2) + "\n")
            self.report["plots"] = [str(p) for p in plot_behavior_stats(stats, self.out / "plots")]

    def flag_degenerate(self) -> None:
        """Mark (and warn about) models whose dev trajectories look broken."""
        for name, path in self.scored.items():
            reason = degeneracy(list(read_jsonl(path, Trajectory)))
            if reason is not None:
                self.report["arms"][name]["degenerate"] = reason
                self.log(f"WARNING: {name} looks degenerate: {reason}")

    def _measure_pairs(self) -> None:
        cfg, report = self.cfg, self.report
        report["comparisons"] = comparisons(self.per_task, cfg.models(), cfg)
        report["claims"] = claims(cfg, self.per_task, report["arms"])
        # the claims' pairs in the comparisons table too (the HTML report and the CLI print it)
        keep = ("model", "against", "metric", "delta", "ci95", "gained", "lost", "mcnemar_p", "n")
        report["comparisons"] += [
            {**{k: c[k] for k in keep}, "claim": c["claim"]} for c in report["claims"]
        ]

    def write_partial(self, after: str) -> None:
        """``report.json`` marked partial after each evaluated model: a study that spans runs
        shows what it has measured so far, even if this run is killed before its end."""
        self._measure_pairs()
        self.report["partial"] = {"after": after, "models": list(self.report["arms"])}
        self._write_json()

    def _write_json(self) -> None:
        # every run's stage times and where each stage ran (``seconds``: this run's)
        self.report["stages"] = self.ledger.summary()
        atomic_write_text(self.out / "report.json", json.dumps(self.report, indent=2) + "\n")
        self._sync()

    def compare(self) -> None:
        """Paired comparisons of each model with its parent, and the paper's claims."""
        self._measure_pairs()
        for c in self.report["claims"]:
            ratio = "-" if c["ratio"] is None else f"{c['ratio']:.2f}x"
            self.log(
                f"  claim: {c['statement']}: {c['verdict']} (EM {c['delta']:+.3f}, paired 95% "
                f"CI {c['ci95'][0]:+.3f}..{c['ci95'][1]:+.3f}, McNemar p "
                f"{_num(c['mcnemar_p'])}, ratio {ratio})"
            )

    def write(self) -> dict[str, Any]:
        """``report.json`` and ``report.html``; returns the report."""
        from searchprime.report import write_report

        total = round(time.perf_counter() - self._started, 1)
        self.report.pop("partial", None)
        self.report["seconds"] = {**self.seconds, "total": total}
        self._write_json()
        self.log(f"report -> {write_report(self.out)}")
        return self.report

"""The study's RL stage: GRPO from a trained model on train tasks the teachers never saw."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from searchprime.errors import ConfigError
from searchprime.experiment.config import ExperimentConfig, RLRun
from searchprime.records import Task, read_jsonl, write_jsonl

Log = Callable[[str], None]

#: What an RL'd model's report row keeps of its run summary.
RL_REPORT_FIELDS = ("steps", "reward_first", "reward_last", "zero_std_groups", "runtime_s")


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def rl_tasks(cfg: ExperimentConfig, train: list[Task], out: Path) -> Path | None:
    """Write the RL tasks (the train tasks after both teacher pools); None without RL.

    Rewritten only when ``rl.tasks`` changed, which the study allows before any RL run."""
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
    tasks = train[first:need]
    if not path.exists() or [t.id for t in read_jsonl(path, Task)] != [t.id for t in tasks]:
        write_jsonl(path, tasks)
    return path


def rl_run_config(
    cfg: ExperimentConfig,
    model_dir: Path,
    dest: Path,
    *,
    tasks: Path,
    index_dir: Path,
    run: RLRun | None = None,
) -> Any:
    """The :class:`~searchprime.rl.config.RLRunConfig` of one RL run (the ``rl`` section).

    The episodes use the dev rollouts' agent settings (prompt, topk), with ``rl.max_turns`` /
    ``rl.max_tokens`` where given; ``run`` changes the prompt and the rewards where it says.
    """
    from searchprime.experiment.policy import prompt_style
    from searchprime.rl.config import EpisodeSettings, RLHyper, RLRunConfig, SamplerSettings
    from searchprime.search.registry import SearchConfig

    rl = cfg.rl
    if rl is None:
        raise ConfigError("rl: this study has no rl section")
    knobs = rl.shared(RLHyper)
    if run is not None and run.rewards is not None:
        knobs["rewards"] = dict(run.rewards)
    knobs["trl"] = {
        "seed": cfg.seed,
        **({"use_cpu": True} if cfg.eval.device == "cpu" else {}),
        **rl.trl,
    }
    batch = rl.episodes_per_step()
    return RLRunConfig(
        model=str(model_dir),
        tasks=str(tasks),
        search=SearchConfig(kind="bm25", path=str(index_dir), topk=cfg.eval.topk),
        output_dir=str(dest),
        episode=EpisodeSettings(
            max_turns=rl.max_turns or cfg.eval.max_turns,
            topk=cfg.eval.topk,
            prompt=prompt_style(cfg, run.prompt if run is not None else None),
            max_tokens=rl.max_tokens or cfg.eval.max_tokens,
        ),
        sampler=SamplerSettings(kind=rl.sampler, max_batch=batch, threads=cfg.eval.threads),
        concurrency=batch,
        threads=cfg.eval.threads,
        resume=any(dest.glob("checkpoint-*")),
        **knobs,
    )


def episode_annotator(cfg: ExperimentConfig, run: RLRun, world_dir: Path) -> Any:
    """The annotator labelling a run's episodes (step-log behavior rates, ``behavior`` reward)."""
    kind = run.annotator or (cfg.rl.annotator if cfg.rl is not None else "rules")
    if kind == "grounded":
        from searchprime.behaviors.grounded import GroundedAnnotator

        return GroundedAnnotator(world_dir)
    from searchprime.behaviors.annotate import RulesAnnotator

    return RulesAnnotator(world_dir)


def train_rl(
    cfg: ExperimentConfig,
    run: RLRun,
    model_dir: Path,
    out: Path,
    tasks: Path,
    world_dir: Path,
    index_dir: Path,
    stage: Callable[[str], AbstractContextManager[None]],
    log: Log,
    need: bool = True,
) -> tuple[Path, Any]:
    """GRPO from ``model_dir`` into ``out/rl/<run.folder>`` (cached; resumes from checkpoints).

    ``need``: whether this run needs the RL'd weights. A finished run carried without them
    (``--carry``) is trained again only then; its carried step log makes way for the new one."""
    import shutil

    from searchprime.experiment.carry import has_weights
    from searchprime.experiment.sft_stage import drop_checkpoints
    from searchprime.rl.grpo import SUMMARY_FILE, RLSummary, run_rl

    dest = out / "rl" / run.folder
    if (dest / SUMMARY_FILE).exists():
        if has_weights(dest) or not need:
            drop_checkpoints(cfg, f"rl {run.folder}", dest, SUMMARY_FILE, log)
            return dest, RLSummary.model_validate_json((dest / SUMMARY_FILE).read_text())
        log(f"  {run.name}: evaluated, but its weights are not here; training it again")
        shutil.rmtree(dest)
        label = f"rl {run.folder} again"  # work of its own in the ledger
    else:
        label = f"rl {run.folder}"
    with stage(label):
        run_cfg = rl_run_config(cfg, model_dir, dest, tasks=tasks, index_dir=index_dir, run=run)
        annotator = episode_annotator(cfg, run, world_dir)
        summary = run_rl(run_cfg, annotator=annotator, log=log)
        log(
            f"  {run.name}: {summary.steps} RL steps, {summary.episodes} episodes, reward "
            f"{_num(summary.reward_first)} -> {_num(summary.reward_last)}, zero-variance groups "
            f"{_num(summary.zero_std_groups)}"
        )
    drop_checkpoints(cfg, f"rl {run.folder}", dest, SUMMARY_FILE, log)
    return dest, summary

"""GRPO with search in the loop, through TRL's ``GRPOTrainer`` and its ``rollout_func``.

This module wires a run: it loads the policy, tasks and search backend, builds the sampler,
the :class:`~searchprime.rl.episodes.EpisodeRunner` and the trainer
(:func:`~searchprime.rl.trainer.trainer_class`), trains, resumes and saves. The parts live
beside it: the rollout function TRL calls each step (:mod:`searchprime.rl.rollout`), the step
log (:mod:`searchprime.rl.steps`) and the run's summary (:mod:`searchprime.rl.summary`); their
public names are importable from here too.

Rewards are :mod:`searchprime.rl.rewards` functions, one TRL reward function each, weighted by
TRL (``reward_weights``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from searchprime._lazy import require
from searchprime.errors import ConfigError, MissingExtraError
from searchprime.records import Task, atomic_write_text
from searchprime.rl.config import CPU_DEFAULTS, RLRunConfig
from searchprime.rl.episodes import EpisodeRunner
from searchprime.rl.rollout import RolloutFunc, step_stats, trl_reward_funcs
from searchprime.rl.steps import STEPS_FILE, read_steps, step_logger, trim_steps
from searchprime.rl.summary import SUMMARY_FILE, RLSummary, summarize
from searchprime.rl.trainer import trainer_class
from searchprime.train.resume import resume_checkpoint
from searchprime.train.tracking import tracking

__all__ = [
    "STEPS_FILE",
    "SUMMARY_FILE",
    "RLBuilt",
    "RLSummary",
    "RolloutFunc",
    "build_trainer",
    "read_steps",
    "run_rl",
    "step_stats",
]


def grpo_config(cfg: RLRunConfig) -> Any:
    """The ``trl.GRPOConfig`` of a run: CPU defaults < the config's knobs and ``trl`` < our
    forced fields."""
    trl = require("trl", "train")
    torch = require("torch", "train")
    kwargs = {**CPU_DEFAULTS, **cfg.trl, **cfg.knob_trl()}
    if not torch.cuda.is_available() and kwargs.get("bf16"):
        kwargs.setdefault("use_cpu", True)
    kwargs.update(
        output_dir=cfg.output_dir,
        use_vllm=cfg.sampler.kind == "vllm",
        top_p=1.0,
        top_k=0,
        min_p=None,
        max_completion_length=cfg.episode.max_length,
        reward_weights=list(cfg.rewards.values()),
        shuffle_dataset=cfg.curriculum is None,
        log_completions=False,
    )
    try:
        return trl.GRPOConfig(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"trl: {exc} (see trl.GRPOConfig for the fields)") from None
    except ValueError as exc:
        raise ConfigError(f"trl: {exc}") from None


def _load_tasks(cfg: RLRunConfig) -> list[Task]:
    from searchprime.tasks import load_tasks

    tasks = load_tasks(cfg.tasks, limit=cfg.limit)
    if not tasks:
        raise ConfigError(f"tasks: {cfg.tasks} holds no tasks")
    if cfg.curriculum is not None:
        field = cfg.curriculum
        missing = [t.id for t in tasks if field not in (t.meta or {})]
        if missing:
            raise ConfigError(
                f"curriculum: task {missing[0]!r} ({cfg.tasks}) has no meta field {field!r}"
            )
        tasks = sorted(tasks, key=lambda t: t.meta[field])  # stable: file order within a level
    return tasks


def _make_sampler(
    cfg: RLRunConfig, model: Any, tokenizer: Any, work: Path, args: Any = None
) -> Any:
    if cfg.sampler.kind == "hf":
        from searchprime.rl.hf_sampler import HFSampler

        return HFSampler(model, tokenizer, max_batch=cfg.sampler.max_batch)
    if cfg.sampler.kind == "llamacpp":
        from searchprime.rl.llamacpp_sampler import LlamaCppSampler

        return LlamaCppSampler(
            cfg.model, work_dir=work, parallel=cfg.sampler.max_batch, threads=cfg.sampler.threads
        )
    return _vllm_sampler(cfg, args, tokenizer)


def _vllm_sampler(cfg: RLRunConfig, args: Any, tokenizer: Any) -> Any:
    """The agent loop's client of TRL's vLLM server (server mode: the config sees to it)."""
    from searchprime.rl.vllm_sampler import VLLMSampler

    url = cfg.sampler.url or getattr(args, "vllm_server_base_url", None)
    if not url:
        url = f"http://{args.vllm_server_host}:{args.vllm_server_port}"
    return VLLMSampler(
        url, cfg.sampler.served_model, vocab_size=len(tokenizer) if tokenizer else None
    )


def _judge(cfg: RLRunConfig) -> Any:
    if cfg.judge is None:
        return None
    from searchprime.eval.judge import LLMJudge
    from searchprime.llm.registry import load_llm

    return LLMJudge(load_llm(cfg.judge), cache=Path(cfg.output_dir) / "judge.sqlite")


def agent_config(cfg: RLRunConfig, temperature: float) -> Any:
    """The agent loop of the episodes: summaries off (they rewrite the trained sequence)."""
    from searchprime.agent.loop import AgentConfig, default_sampling

    e = cfg.episode
    return AgentConfig(
        max_turns=e.max_turns,
        topk=e.topk,
        prompt=e.prompt,
        thinking=e.thinking,
        search_reminder_after=e.search_reminder_after,
        turns_left_reminder=e.turns_left_reminder,
        context_budget_tokens=None,
        sampling=default_sampling().model_copy(
            update={"temperature": temperature, "max_tokens": e.max_tokens, "top_p": 1.0}
        ),
    )


@dataclass
class RLBuilt:
    """A GRPO trainer wired to the agent loop, before training (see :func:`build_trainer`)."""

    trainer: Any
    tokenizer: Any
    runner: EpisodeRunner
    rollout: RolloutFunc
    search: Any
    tasks: list[Task]
    resume: str | None
    prefilter: dict[str, Any] | None

    def close(self) -> None:
        """Stop the sampler (a llama.cpp server) and the search backend; close the loop."""
        try:
            self.runner.call(self.runner.sampler.aclose())
            aclose = getattr(self.search, "aclose", None)
            if aclose is not None:
                self.runner.call(aclose())
        finally:
            self.runner.close()


def build_trainer(
    cfg: RLRunConfig,
    callbacks: list | None = None,
    *,
    annotator: Any = None,
    log: Callable[[str], None] = lambda _m: None,
) -> RLBuilt:
    """Load the policy, tasks and search backend; build the sampler, runner and trainer.

    ``annotator`` (``async annotate(traj) -> BehaviorLabels``, e.g. the behaviors stage's
    ``RulesAnnotator`` of a sandbox world) labels every episode: behavior rates in the step
    log, and the labels the ``behavior`` reward reads.
    """
    transformers = require("transformers", "train")
    datasets = require("datasets", "train")
    from searchprime.search.registry import load_search

    if cfg.threads is not None:
        require("torch", "train").set_num_threads(cfg.threads)
    if "behavior" in cfg.rewards and annotator is None:
        raise ConfigError("rewards: 'behavior' needs an annotator (CLI: --world, a sandbox world)")
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    resume = resume_checkpoint(cfg.resume, cfg.output_dir)
    args = grpo_config(cfg)
    if cfg.model.endswith(".gguf"):
        raise ConfigError("model: a GGUF file cannot be trained; use an HF folder")
    try:
        tok = transformers.AutoTokenizer.from_pretrained(cfg.model)
        model = transformers.AutoModelForCausalLM.from_pretrained(cfg.model, dtype="float32")
    except (OSError, ValueError) as exc:
        raise ConfigError(f"model: cannot load {cfg.model!r}: {exc}") from None
    tasks = _load_tasks(cfg)
    search = load_search(cfg.search)
    sampler = _make_sampler(cfg, model, tok, out / "sampler", args)
    runner = EpisodeRunner(
        sampler,
        tok,
        search,
        agent_config(cfg, args.temperature),
        max_length=cfg.episode.max_length,
        concurrency=cfg.concurrency,
        annotator=annotator,
        judge=_judge(cfg),
    )
    built = RLBuilt(None, tok, runner, None, search, tasks, resume, None)  # type: ignore[arg-type]
    try:
        if cfg.prefilter is not None:
            from searchprime.rl.prefilter import prefilter_tasks

            built.tasks, built.prefilter = prefilter_tasks(
                tasks, runner, cfg.prefilter, cfg.rewards, out / "prefilter.json", log=log
            )
        dataset = datasets.Dataset.from_list([{"prompt": t.id} for t in built.tasks])
        built.rollout = RolloutFunc(
            runner,
            {t.id: t for t in built.tasks},
            cfg.rewards,
            out,
            seed=args.seed,
            synced_step=-1 if resume else 0,
        )
        steps_path = out / STEPS_FILE
        if resume:
            trim_steps(steps_path, int(Path(resume).name.rsplit("-", 1)[-1]))
        elif steps_path.exists():
            steps_path.unlink()
        try:
            built.trainer = trainer_class()(
                model=model,
                reward_funcs=trl_reward_funcs(cfg.rewards),
                args=args,
                train_dataset=dataset,
                processing_class=tok,
                rollout_func=built.rollout,
                callbacks=[step_logger(built.rollout, steps_path), *(callbacks or [])],
            )
        except (ValueError, RuntimeError) as exc:
            raise ConfigError(f"cannot build the GRPO trainer: {exc}") from None
    except BaseException:
        built.close()
        raise
    built.trainer.is_correction = cfg.sampler.importance_sampling and cfg.sampler.kind == "llamacpp"
    built.trainer.is_clip = cfg.sampler.is_clip
    return built


def run_rl(
    cfg: RLRunConfig,
    callbacks: list | None = None,
    *,
    annotator: Any = None,
    log: Callable[[str], None] = lambda _m: None,
) -> RLSummary:
    """Train with GRPO; save the final model and ``searchprime_rl.json`` into ``output_dir``.

    ``annotator``: see :func:`build_trainer`.
    """
    out = Path(cfg.output_dir)
    with tracking(cfg.report_to, out):
        built = build_trainer(cfg, callbacks, annotator=annotator, log=log)
        runtime = _train(built, out)
    summary = summarize(
        cfg,
        out,
        len(built.tasks),
        built.runner.sampler.name,
        built.trainer.state.global_step,
        runtime,
    )
    summary.resumed_from = built.resume
    summary.prefilter = built.prefilter
    atomic_write_text(out / SUMMARY_FILE, summary.model_dump_json(indent=2) + "\n")
    try:
        from searchprime.rl.curves import plot_curves

        plot_curves(read_steps(out), out / "curves.png")
    except MissingExtraError:  # the plots extra is optional
        pass
    card = {"kind": "rl", "base_model": cfg.model, "tasks": cfg.tasks, "rewards": cfg.rewards}
    atomic_write_text(out / "searchprime_model.json", json.dumps(card, indent=2) + "\n")
    return summary


def _train(built: RLBuilt, out: Path) -> float:
    """Train (or restore a run killed after its last checkpoint), save; return the seconds."""
    try:
        start = time.perf_counter()
        if built.resume and _finished(built.resume, built.trainer.args.max_steps):
            # killed after its last checkpoint: Trainer would run one more step from there
            built.trainer._load_from_checkpoint(built.resume)
            built.trainer.state = type(built.trainer.state).load_from_json(
                str(Path(built.resume) / "trainer_state.json")
            )
        else:
            built.trainer.train(resume_from_checkpoint=built.resume)
        runtime = time.perf_counter() - start
        built.trainer.save_model(str(out))
        built.tokenizer.save_pretrained(out)
    finally:
        built.close()
    return runtime


def _finished(checkpoint: str, max_steps: int) -> bool:
    """Whether ``checkpoint`` was saved at the run's last step."""
    try:
        state = json.loads((Path(checkpoint) / "trainer_state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return max_steps > 0 and int(state.get("global_step", 0)) >= max_steps

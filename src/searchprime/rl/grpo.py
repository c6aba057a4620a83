"""GRPO with search in the loop, through TRL's ``GRPOTrainer`` and its ``rollout_func``.

Each optimizer step TRL hands :class:`RolloutFunc` a batch of task ids, each repeated
``num_generations`` times consecutively (one GRPO group per task). The rollout function

1. gives the sampler the trainer's current weights when the step has changed (llama.cpp: save,
   export to GGUF, restart; hf: nothing, it decodes with the trainer's model itself);
2. runs one agent episode per row through :class:`~searchprime.rl.episodes.EpisodeRunner` —
   the same agent loop as ``rollout`` — and scores and labels each trajectory;
3. returns each episode as one token sequence: ``prompt_ids``, ``completion_ids`` (sampled ids
   and environment tokens in order), ``env_mask`` (0 = environment: zero gradient) and the
   sampler's ``logprobs``; the trajectories ride along for the reward functions;
4. writes the step's trajectories to ``episodes/step-NNNNNN.jsonl`` and its statistics (reward,
   EM, zero-variance groups, valid actions, turns, searches, tokens, behavior rates, time split)
   for the step log.

Rewards are :mod:`searchprime.rl.rewards` functions, one TRL reward function each, weighted by
TRL (``reward_weights``). ``steps.jsonl`` gets one line per logged step: TRL's metrics (loss,
entropy, KL when ``beta > 0``, clip ratios, ...) merged with the rollout statistics.
"""

from __future__ import annotations

import json
import math
import statistics
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from searchprime._lazy import require
from searchprime.errors import ConfigError, MissingExtraError
from searchprime.records import BEHAVIORS, Task, atomic_write_text, write_jsonl
from searchprime.rl.config import CPU_DEFAULTS, RLRunConfig
from searchprime.rl.episodes import Episode, EpisodeRunner
from searchprime.rl.rewards import get_reward, weighted_reward
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

#: Written into the output folder.
SUMMARY_FILE = "searchprime_rl.json"
STEPS_FILE = "steps.jsonl"
EPISODES_DIR = "episodes"


class RLSummary(BaseModel):
    """What a run did (``searchprime_rl.json``)."""

    model_config = ConfigDict(extra="forbid")

    output_dir: str
    base_model: str
    tasks: int
    sampler: str
    rewards: dict[str, float]
    steps: int
    episodes: int
    reward_first: float | None
    reward_last: float | None
    em_first: float | None
    em_last: float | None
    zero_std_groups: float | None
    runtime_s: float
    resumed_from: str | None
    prefilter: dict[str, Any] | None = None


def step_stats(episodes: list[Episode], rewards: list[float], group: int) -> dict[str, Any]:
    """Statistics of one step's episodes (``group`` consecutive episodes per task)."""
    trajs = [e.trajectory for e in episodes]
    turns = [t for tr in trajs for t in tr.turns]
    groups = [rewards[i : i + group] for i in range(0, len(rewards), group)]
    n = len(trajs) or 1
    out: dict[str, Any] = {
        "episodes": len(trajs),
        "reward_mean": statistics.fmean(rewards) if rewards else 0.0,
        "reward_std": statistics.pstdev(rewards) if len(rewards) > 1 else 0.0,
        "em": sum(float(tr.scores.em or 0) for tr in trajs if tr.scores) / n,
        "zero_std_groups": sum(max(g) == min(g) for g in groups) / (len(groups) or 1),
        "valid_actions": sum(t.action.kind != "invalid" for t in turns) / (len(turns) or 1),
        "answered": sum(tr.termination == "answer" for tr in trajs) / n,
        "out_of_turns": sum(tr.termination == "max_turns" for tr in trajs) / n,
        "errors": sum(tr.termination == "error" for tr in trajs),
        "turns": len(turns) / n,
        "searches": sum(tr.n_searches for tr in trajs) / n,
        "policy_tokens": sum(e.tokens.policy_tokens for e in episodes),
        "env_tokens": sum(len(e.tokens.completion_ids) - e.tokens.policy_tokens for e in episodes),
        "broken_sequences": sum(e.tokens.broken is not None for e in episodes),
    }
    if any(tr.labels is not None for tr in trajs):
        out["behaviors"] = {
            b: sum(bool(tr.labels and tr.labels.has(b)) for tr in trajs) / n for b in BEHAVIORS
        }
    return out


def _seed(*parts: Any) -> int:
    return zlib.crc32(json.dumps(parts).encode()) & 0x7FFFFFFF


class RolloutFunc:
    """TRL's ``rollout_func``: task ids in, token sequences (and trajectories) out."""

    def __init__(
        self,
        runner: EpisodeRunner,
        tasks: dict[str, Task],
        rewards: dict[str, float],
        out_dir: Path,
        *,
        seed: int = 0,
        synced_step: int = 0,
    ):
        self.runner = runner
        self.tasks = tasks
        self.rewards = rewards
        self.out_dir = out_dir
        self.seed = seed
        self.synced_step = synced_step
        #: statistics per optimizer step (filled here, written to steps.jsonl by the logger)
        self.pending: dict[int, dict[str, Any]] = {}

    def __call__(self, prompts: list[Any], trainer: Any) -> dict[str, list]:
        step = int(trainer.state.global_step)
        sync_s = 0.0
        model = trainer.accelerator.unwrap_model(trainer.model)
        if step != self.synced_step:
            sync_s = self.runner.sampler.sync_weights(model)
            self.synced_step = step
        try:
            tasks = [self.tasks[str(p)] for p in prompts]
        except KeyError as exc:
            raise ConfigError(f"rollout: prompt {exc} is not a known task id") from None
        group = int(trainer.num_generations)
        seeds = [_seed(self.seed, step, i, t.id) for i, t in enumerate(tasks)]
        attempts = [i % group for i in range(len(tasks))]
        t0 = time.perf_counter()
        training = model.training
        model.eval()
        try:
            episodes = self.runner.run(tasks, seeds, attempts)
        finally:
            model.train(training)
        rollout_s = time.perf_counter() - t0
        rewards = [weighted_reward(e.trajectory, self.rewards) for e in episodes]
        for i, (e, r) in enumerate(zip(episodes, rewards, strict=True)):
            e.trajectory.meta["rl"].update(step=step + 1, group=i // group, reward=r)
        write_jsonl(
            self.out_dir / EPISODES_DIR / f"step-{step + 1:06d}.jsonl",
            [e.trajectory for e in episodes],
        )
        stats = step_stats(episodes, rewards, group)
        stats["time"] = {"rollout_s": round(rollout_s, 3), "sync_s": round(sync_s, 3)}
        self.pending[step + 1] = stats
        return {
            "prompt_ids": [e.tokens.prompt_ids for e in episodes],
            "completion_ids": [e.tokens.completion_ids for e in episodes],
            "logprobs": [e.tokens.logprobs for e in episodes],
            "env_mask": [e.tokens.env_mask for e in episodes],
            "trajectory": [e.trajectory for e in episodes],
        }


def trl_reward_funcs(rewards: dict[str, float]) -> list[Callable[..., list[float]]]:
    """One TRL reward function per named reward; each reads the rollout's trajectories."""
    funcs = []
    for name in rewards:
        fn = get_reward(name)

        def reward(prompts: list, completions: list, trajectory: list, _fn=fn, **_: Any):
            return [float(_fn(t)) for t in trajectory]

        reward.__name__ = name.replace(":", "_").replace(".", "_")
        funcs.append(reward)
    return funcs


def _trainer_class() -> type:
    """``GRPOTrainer`` with an importance-sampling correction for non-vLLM samplers.

    TRL corrects the sampler/trainer gap only on its vLLM path. For llama.cpp we apply the same
    truncated per-token weights (``min(exp(logp_trainer - logp_sampler), cap)``; NaN sampler
    logprobs weigh 1) through TRL's loss. On policy (one optimisation pass per generation) the
    trainer's logprobs are those of the loss's own forward pass, detached, so the weights cost
    no extra forward pass; when TRL computes ``old_per_token_logps`` itself, those are used.
    """
    trl = require("trl", "train")
    torch = require("torch", "train")

    class SearchGRPOTrainer(trl.GRPOTrainer):
        is_correction: bool = False
        is_clip: float = 3.0

        def _is_ratio(self, trainer_logps: Any, inputs: dict[str, Any]) -> Any:
            sampling = inputs["sampling_per_token_logps"]
            mask = inputs["completion_mask"] * inputs.get("tool_mask", 1)
            diff = torch.nan_to_num((trainer_logps.detach() - sampling) * mask, nan=0.0)
            picked = diff[mask.bool() & ~torch.isnan(sampling)].abs()
            mode = "train" if self.model.training else "eval"
            if picked.numel():
                metrics = self._metrics[mode]
                metrics["sampling/sampling_logp_difference/mean"].append(picked.mean().item())
                metrics["sampling/sampling_logp_difference/max"].append(picked.max().item())
            return torch.exp(diff).clamp(max=self.is_clip)

        def _compute_loss(self, model: Any, inputs: dict[str, Any]) -> Any:
            if not self.is_correction or self.use_vllm or "sampling_per_token_logps" not in inputs:
                return super()._compute_loss(model, inputs)
            old = inputs.get("old_per_token_logps")
            if old is not None:
                inputs["importance_sampling_ratio"] = self._is_ratio(old, inputs)
            else:
                # the weights come from the loss pass's own logprobs: hook the one forward
                forward = self._get_per_token_logps_and_entropies

                def forward_and_weigh(*args: Any, **kwargs: Any) -> Any:
                    result = forward(*args, **kwargs)
                    inputs["importance_sampling_ratio"] = self._is_ratio(result[0], inputs)
                    return result

                self._get_per_token_logps_and_entropies = forward_and_weigh
            # TRL multiplies the loss by inputs["importance_sampling_ratio"] only when
            # use_vllm is set; inside _compute_loss the flag gates nothing else for our losses.
            self.use_vllm = True
            try:
                return super()._compute_loss(model, inputs)
            finally:
                self.use_vllm = False
                self.__dict__.pop("_get_per_token_logps_and_entropies", None)

    return SearchGRPOTrainer


def _step_logger(rollout: RolloutFunc, path: Path) -> Any:
    transformers = require("transformers", "train")

    class StepLogger(transformers.TrainerCallback):
        """Writes one ``steps.jsonl`` line per logged step: TRL's metrics + rollout stats."""

        def __init__(self) -> None:
            self.t0 = time.perf_counter()
            self.step_s: dict[int, float] = {}

        def on_step_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            self.t0 = time.perf_counter()

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            self.step_s[state.global_step] = time.perf_counter() - self.t0

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any):
            step = int(state.global_step)
            stats = rollout.pending.pop(step, None)
            if not logs or "train_runtime" in logs or stats is None:
                return
            total = self.step_s.get(step)
            if total is not None:
                t = stats["time"]
                t["step_s"] = round(total, 3)
                t["train_s"] = round(max(0.0, total - t["rollout_s"] - t["sync_s"]), 3)
            row = {"step": step, **stats, "trl": {k: _finite(v) for k, v in logs.items()}}
            with path.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(row) + "\n")

    return StepLogger()


def _finite(v: Any) -> Any:
    return None if isinstance(v, float) and not math.isfinite(v) else v


def _trim_steps(path: Path, last_step: int) -> None:
    """Drop step-log lines written after the checkpoint a run resumes from."""
    if not path.exists():
        return
    keep = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            if int(json.loads(line)["step"]) <= last_step:
                keep.append(line)
        except (ValueError, KeyError, TypeError):
            continue  # a line cut by a crash
    atomic_write_text(path, "".join(x + "\n" for x in keep))


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


def _make_sampler(cfg: RLRunConfig, model: Any, tokenizer: Any, work: Path) -> Any:
    if cfg.sampler.kind == "hf":
        from searchprime.rl.hf_sampler import HFSampler

        return HFSampler(model, tokenizer, max_batch=cfg.sampler.max_batch)
    if cfg.sampler.kind == "llamacpp":
        from searchprime.rl.llamacpp_sampler import LlamaCppSampler

        return LlamaCppSampler(
            cfg.model, work_dir=work, parallel=cfg.sampler.max_batch, threads=cfg.sampler.threads
        )
    raise ConfigError(
        "sampler.kind: 'vllm' needs a GPU machine with vLLM; on this install use 'hf' or 'llamacpp'"
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
    sampler = _make_sampler(cfg, model, tok, out / "sampler")
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
            _trim_steps(steps_path, int(Path(resume).name.rsplit("-", 1)[-1]))
        elif steps_path.exists():
            steps_path.unlink()
        try:
            built.trainer = _trainer_class()(
                model=model,
                reward_funcs=trl_reward_funcs(cfg.rewards),
                args=args,
                train_dataset=dataset,
                processing_class=tok,
                rollout_func=built.rollout,
                callbacks=[_step_logger(built.rollout, steps_path), *(callbacks or [])],
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
    summary = _summarize(
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


def read_steps(path: str | Path) -> list[dict[str, Any]]:
    """The step log of a run (``steps.jsonl``), skipping a line cut by a crash."""
    rows = []
    p = Path(path)
    if p.is_dir():
        p = p / STEPS_FILE
    if not p.exists():
        return rows
    for line in p.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue
    return rows


def _summarize(
    cfg: RLRunConfig, out: Path, n_tasks: int, sampler: str, steps: int, runtime: float
) -> RLSummary:
    rows = read_steps(out)

    def mean_of(key: str, part: list[dict[str, Any]]) -> float | None:
        vals = [r[key] for r in part if r.get(key) is not None]
        return statistics.fmean(vals) if vals else None

    k = max(1, min(3, len(rows) // 2))
    head, tail = rows[:k], rows[-k:]
    return RLSummary(
        output_dir=str(out),
        base_model=cfg.model,
        tasks=n_tasks,
        sampler=sampler,
        rewards=cfg.rewards,
        steps=steps,
        episodes=sum(r.get("episodes", 0) for r in rows),
        reward_first=mean_of("reward_mean", head),
        reward_last=mean_of("reward_mean", tail),
        em_first=mean_of("em", head),
        em_last=mean_of("em", tail),
        zero_std_groups=mean_of("zero_std_groups", rows),
        runtime_s=round(runtime, 1),
        resumed_from=None,
    )

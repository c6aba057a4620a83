"""The experiment file: one YAML that names every stage of the Behavior Priming study."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from searchprime.agent.prompts import PROMPT_STYLES
from searchprime.rl.config import RLHyper, vllm_server_mode
from searchprime.train.sft_config import SFTHyper


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WorldSection(_Strict):
    """The sandbox world to generate (``world build``); see WorldConfig for every knob."""

    seed: int = Field(default=0, description="World seed: same seed, same files.")
    entities: int = Field(default=600, ge=10, description="Entities in the world.")
    tasks: int = Field(default=2400, ge=10, description="Tasks over all splits.")
    extra: dict[str, Any] = Field(
        default_factory=dict, description="Further WorldConfig fields (trap rates, ...)."
    )


class TeacherSection(_Strict):
    """Scripted-teacher rollouts on the train split: pool A (base data), pool B (priming data)."""

    base_preset: str = Field(default="plain", description="Teacher for the base model's data.")
    base_pool: int = Field(default=400, ge=1, description="Train tasks of pool A.")
    prime_preset: str = Field(default="all", description="Teacher for the priming data.")
    prime_pool: int = Field(default=1500, ge=1, description="Train tasks of pool B (disjoint).")
    max_turns: int = Field(
        default=10, ge=1, description="Teachers' turn limit (behavior-rich runs take ~8 turns)."
    )
    concurrency: int = Field(default=32, ge=1)


class ArmSection(_Strict):
    """One SFT arm trained from the base checkpoint on a selection of pool B."""

    name: str = Field(description="Arm name, e.g. 'primed'.")
    strategy: str = Field(
        default="behavior",
        description="Selection strategy: behavior | behavior-incorrect | correct | random | "
        "single:<behavior> | py:<module:function> | expr:<expression>.",
    )
    n: int = Field(default=160, ge=1, description="Exact number of trajectories selected.")
    stratify: str | None = Field(
        default=None, description="Keep pool B's mix of this task meta field (e.g. 'hops')."
    )
    epochs: float | None = Field(default=None, gt=0, description="Override sft.epochs.")
    learning_rate: float | None = Field(
        default=None, gt=0, description="Override sft.learning_rate."
    )
    mix_base: bool = Field(
        default=False,
        description="Also train on the base model's SFT data (rehearsal: the arm keeps "
        "practising the base policy while it learns the selection's moves).",
    )


#: An arm's prompt: "handbook" (``eval.prompt`` and the four behaviors) or a prompt style.
PROMPT_CHOICES = ("handbook", *PROMPT_STYLES)


def _prompt_choice(v: str | None) -> str | None:
    if v is not None and v not in PROMPT_CHOICES:
        raise ValueError(f"{v!r} is no prompt; choose from {', '.join(PROMPT_CHOICES)}")
    return v


class PromptArm(_Strict):
    """A trained model evaluated under another system prompt, without training.

    ``{name: handbook, model: base, prompt: handbook}`` is in-context priming: the base model
    with the four behaviors described in its system prompt.
    """

    name: str = Field(description="Arm name, e.g. 'handbook'.")
    model: str = Field(
        default="base", description="The trained model to evaluate: base, an arm or an RL run."
    )
    prompt: str = Field(
        default="handbook",
        description="'handbook' (eval.prompt followed by the four behaviors) or a prompt style: "
        + ", ".join(PROMPT_STYLES)
        + ".",
    )

    @field_validator("prompt")
    @classmethod
    def _known_prompt(cls, v: str) -> str:
        return _prompt_choice(v) or v


class SFTSection(SFTHyper):
    """Supervised fine-tuning shared by the base and every arm.

    The knobs (epochs, learning_rate, batch_size, max_length, report_to, trl) are
    :class:`~searchprime.train.sft_config.SFTHyper`'s; the study's defaults are 2 epochs at
    1e-4, batches of 8, 1,536 tokens.
    """

    knob_defaults: ClassVar[dict[str, Any]] = {
        "epochs": 2.0,
        "learning_rate": 1e-4,
        "batch_size": 8,
        "max_length": 1536,
    }
    knob_prefix: ClassVar[str] = "sft."

    model: Literal["smollm2", "tiny"] | str = Field(
        default="smollm2",
        description="'smollm2' (offline SmolLM2-135M-Instruct), 'tiny' (test fixture) or an "
        "HF folder / hub id.",
    )
    base_strategy: str = Field(default="correct", description="Selection of pool A for base.")
    base_n: int = Field(default=160, ge=1, description="Trajectories for the base model.")
    base_stratify: str | None = Field(
        default=None,
        description="Keep pool A's mix of this task meta field (e.g. 'hops'): the 'correct' "
        "runs of a plain teacher are mostly the 1-hop tasks.",
    )
    shape: Literal["turn", "trajectory"] = Field(default="turn", description="Sample shape.")


#: ``eval`` fields that the teachers, SFT or RL also read: a study resumed with another value
#: would mix two studies (the teachers' prompt and top-k, the training device, RL's turn and
#: token limits when ``rl`` leaves them to ``eval``).
EVAL_SHAPES_TRAINING = ("prompt", "topk", "device", "max_turns", "max_tokens")
#: ``eval`` fields that shape the dev rollouts themselves (the others shape only the summary).
EVAL_SHAPES_ROLLOUTS = (
    *EVAL_SHAPES_TRAINING,
    "temperature",
    "backend",
    "samples_temperature",
)


class EvalSection(_Strict):
    """Rolling the trained policies out on the dev split."""

    dev_n: int = Field(default=100, ge=1, description="Dev tasks per model.")
    max_turns: int = Field(default=10, ge=1, description="Turn limit of the trained policies.")
    prompt: Literal["full", "compact"] = Field(
        default="full",
        description="System prompt style for teachers and policies (see AgentConfig.prompt).",
    )
    topk: int = Field(default=3, ge=1)
    temperature: float = Field(default=0.0, ge=0.0, description="0 = greedy decoding.")
    max_tokens: int = Field(
        default=512,
        ge=16,
        description="Most tokens per turn; with static batching one runaway row stalls its batch.",
    )
    max_batch: int = Field(default=16, ge=1, description="Agents decoded together in one batch.")
    backend: Literal["hf", "llamacpp"] = Field(
        default="hf",
        description="'hf': transformers in-process, static batches (any model, any device); "
        "'llamacpp': the checkpoint exported to GGUF and served by llama.cpp with max_batch "
        "slots (continuous batching, each agent's earlier turns kept in its KV cache; SmolLM2 "
        "/ Llama models, CPU).",
    )
    device: str = Field(default="cpu", description="torch device for training and decoding.")
    threads: int | None = Field(default=None, ge=1, description="torch CPU threads.")
    samples: int = Field(
        default=1,
        ge=1,
        description="Sampled rollouts per task for pass@k / maj@k (1 = greedy only). Costs "
        "samples x a greedy eval on samples_tasks tasks.",
    )
    samples_tasks: int | None = Field(
        default=None, ge=1, description="Sample on the first N dev tasks only (None: all dev_n)."
    )
    samples_temperature: float = Field(
        default=1.0, gt=0.0, description="Temperature of the sampled rollouts."
    )
    samples_models: list[str] | None = Field(
        default=None,
        description="Models to sample (e.g. [base, primed]; None: every trained model).",
    )
    entropy: bool = Field(
        default=True,
        description="Mean per-token policy entropy over each model's own dev trajectories "
        "(a teacher-forced forward pass; observations excluded).",
    )
    resamples: int = Field(default=2000, ge=100, description="Bootstrap resamples for CIs.")

    @model_validator(mode="after")
    def _backend_fits_device(self) -> EvalSection:
        if self.backend == "llamacpp" and self.device != "cpu":
            raise ValueError(
                f"backend: 'llamacpp' decodes on the CPU; with device {self.device!r} use "
                "backend 'hf' (or --backend hf)"
            )
        return self


#: The report name of a model after a shorthand RL run: ``base+rl``.
RL_SUFFIX = "+rl"


def _no_judge(v: dict[str, float]) -> dict[str, float]:
    if "judge" in v:
        raise ValueError("'judge' needs a judge model, which the experiment does not run")
    return v


class RLRun(_Strict):
    """One RL run of the study, under the ``rl`` section's budget (steps, tasks, group size).

    ``{name: prompted-rl, start_from: base, prompt: handbook}``: the four behaviors in the
    prompt during RL only (the dev evaluation uses ``eval.prompt``);
    ``{name: bonus-rl, start_from: base, rewards: {em: 1.0, behavior: 0.1}, annotator: grounded}``:
    a small bonus for the behaviors the agent's moves show.
    """

    name: str = Field(description="The RL'd model's name in the report, e.g. 'behavior-rl'.")
    start_from: str = Field(default="base", description="'base' or an arm name.")
    prompt: str | None = Field(
        default=None,
        description="System prompt during RL only: 'handbook' or a style (None: eval.prompt).",
    )
    rewards: dict[str, float] | None = Field(
        default=None, description="Reward name -> weight (None: rl.rewards)."
    )
    annotator: Literal["rules", "grounded"] | None = Field(
        default=None, description="Episode labeller (None: rl.annotator)."
    )

    @field_validator("prompt")
    @classmethod
    def _known_prompt(cls, v: str | None) -> str | None:
        return _prompt_choice(v)

    @field_validator("rewards")
    @classmethod
    def _known_rewards(cls, v: dict[str, float] | None) -> dict[str, float] | None:
        if v is None:
            return v
        from searchprime.rl.rewards import check_reward_weights

        return _no_judge(check_reward_weights(v))

    @property
    def folder(self) -> str:
        """Its folder under ``rl/``: the start model's for a shorthand run (``rl/base``); unique,
        since run names differ from model names."""
        if self.name == self.start_from + RL_SUFFIX:
            return self.start_from
        return self.name


class RLSection(RLHyper):
    """GRPO with search in the loop, applied to trained models (``searchprime.rl``).

    The knobs (max_steps, num_generations, tasks_per_step, micro_batch, learning_rate, beta,
    temperature, save_steps, rewards, prefilter, curriculum, report_to, trl) are
    :class:`~searchprime.rl.config.RLHyper`'s. Defaults are sized for a 2-core CPU: a step is 2
    tasks x 4 episodes; with the hf sampler on SmolLM2 a step takes ~35-60 s from a base model
    (~2 turns per episode) and ~1.5-3 min from a primed one (~6 turns, ~1,400 tokens per episode,
    trained at ~85-200 tokens/s), so one run of 4 steps takes ~2-6 min.
    """

    knob_defaults: ClassVar[dict[str, Any]] = {
        "max_steps": 4,
        "num_generations": 4,
        "tasks_per_step": 2,
        "learning_rate": 2e-6,  # as docs/rl/grpo_smollm2_cpu.yaml (SmolLM2)
        "beta": 0.0,
        "temperature": 1.0,
        "save_steps": 5,
    }
    knob_prefix: ClassVar[str] = "rl."

    start_from: list[str] | None = Field(
        default=None,
        min_length=1,
        description="Shorthand for runs: one plain run from each of these models ('base' = RL "
        "without priming, or arm names), evaluated on dev as '<name>+rl' (neither this nor runs: "
        "[base]).",
    )
    runs: list[RLRun] | None = Field(
        default=None,
        min_length=1,
        description="Named RL runs, each with this section's budget: start model, and the prompt "
        "(during RL only), rewards and annotator where they differ from the section's.",
    )
    annotator: Literal["rules", "grounded"] = Field(
        default="rules",
        description="Labels each episode for the step log's behavior rates and the 'behavior' "
        "reward: 'rules' (the teachers' cue phrases) or 'grounded' (the moves made).",
    )
    tasks: int = Field(
        default=64,
        ge=1,
        description="Train tasks for RL, taken after the two teacher pools (disjoint from both).",
    )
    max_turns: int | None = Field(
        default=None, ge=1, description="Model calls per episode (None: eval.max_turns)."
    )
    max_tokens: int | None = Field(
        default=None, ge=16, description="Most sampled tokens per turn (None: eval.max_tokens)."
    )
    sampler: Literal["hf", "llamacpp", "vllm"] = Field(
        default="hf",
        description="'hf': the trainer's model decodes (any model); 'llamacpp': a llama.cpp "
        "server given the new weights every step (Llama-architecture models, CPU); 'vllm': "
        "a `trl vllm-serve` server (GPUs; rl.trl.vllm_server_base_url), to which TRL pushes "
        "each run's weights before its first rollout and after every step.",
    )

    @field_validator("start_from")
    @classmethod
    def _unique_names(cls, v: list[str] | None) -> list[str] | None:
        if v is not None and len(set(v)) != len(v):
            raise ValueError("names must be unique")
        return v

    @field_validator("rewards")
    @classmethod
    def _no_judge(cls, v: dict[str, float]) -> dict[str, float]:
        return _no_judge(v)

    @model_validator(mode="after")
    def _one_way_to_name_runs(self) -> RLSection:
        if self.start_from is not None and self.runs is not None:
            raise ValueError("give rl.start_from (the shorthand) or rl.runs, not both")
        if self.sampler == "vllm":  # checked here too: an RL run starts hours into a study
            vllm_server_mode(self.trl, "rl.trl")
        return self

    def plan(self) -> list[RLRun]:
        """The RL runs: ``runs``, else one plain ``<name>+rl`` run per ``start_from`` model."""
        if self.runs is not None:
            return list(self.runs)
        return [RLRun(name=m + RL_SUFFIX, start_from=m) for m in self.start_from or ["base"]]


class ExperimentConfig(_Strict):
    """The whole study: world -> teachers -> score -> annotate -> prime -> SFT -> eval (-> RL)."""

    name: str = Field(default="study", description="A label for the report.")
    seed: int = Field(default=0, description="Seed for selection and training.")
    seeds: list[int] | None = Field(
        default=None,
        min_length=1,
        description="Repeat the study (selection, SFT, RL, eval) once per seed into "
        "<out>/seed-<s>/ and report mean ± sd across seeds (None: one run with `seed`).",
    )
    world: WorldSection = Field(default_factory=WorldSection)
    teachers: TeacherSection = Field(default_factory=TeacherSection)
    sft: SFTSection = Field(default_factory=SFTSection)
    arms: list[ArmSection] = Field(
        default_factory=lambda: [ArmSection(name="primed", strategy="behavior")],
        description="SFT arms trained from the base checkpoint.",
    )
    eval: EvalSection = Field(default_factory=EvalSection)
    prompt_arms: list[PromptArm] = Field(
        default_factory=list,
        description="Trained models evaluated under another system prompt (no training).",
    )
    rl: RLSection | None = Field(
        default=None, description="GRPO after SFT for the named models (None: no RL)."
    )
    seed_models: list[str] | None = Field(
        default=None,
        min_length=1,
        description="With seeds: the first seed runs the whole study, later seeds only these "
        "models and the ones they start from (e.g. [direct-rl, behavior-rl]; None: all).",
    )
    keep_checkpoints: bool = Field(
        default=False,
        description="Keep the checkpoint-*/ folders of finished SFT and RL runs (for SmolLM2 "
        "1.6 GB each, most of it optimizer state; they serve only to resume). Off: removed once "
        "a run's final model and summary are written.",
    )
    seed_exploration: bool = Field(
        default=False,
        description="With seeds and seed_models: later seeds also sample pass@k and take the "
        "policy entropy (eval.samples, eval.entropy). Off: they measure what the seeds "
        "aggregate (EM, F1, turns, searches, behaviors) and leave the exploration analyses to "
        "the first seed (on a 2-core CPU they cost ~3 h a seed for the headline pair).",
    )
    only: list[str] | None = Field(
        default=None,
        min_length=1,
        description="Run only these models and the ones they start from (None: every model).",
    )

    def models(self) -> dict[str, str | None]:
        """Every model of the study -> the model it starts from (None for base), in run order."""
        out: dict[str, str | None] = {"base": None}
        out.update((a.name, "base") for a in self.arms)
        out.update((r.name, r.start_from) for r in (self.rl.plan() if self.rl else []))
        out.update((p.name, p.model) for p in self.prompt_arms)
        return out

    def wanted(self) -> set[str]:
        """The models this run makes: ``only`` and everything they start from."""
        models = self.models()
        todo, out = list(self.only or models), set()
        while todo:
            name = todo.pop()
            if name is not None and name not in out:
                out.add(name)
                todo.append(models[name])
        return out

    @model_validator(mode="after")
    def _unique_arms(self) -> ExperimentConfig:
        names = [a.name for a in self.arms]
        if self.seeds is not None and len(set(self.seeds)) != len(self.seeds):
            raise ValueError("seeds: must be distinct")
        if len(set(names)) != len(names) or "base" in names:
            raise ValueError("arms: names must be unique and not 'base'")
        trained = ["base", *names]
        runs = self.rl.plan() if self.rl is not None else []
        for i, run in enumerate(runs):
            if run.start_from not in trained:
                where = "rl.start_from" if self.rl and self.rl.runs is None else f"rl.runs.{i}"
                raise ValueError(
                    f"{where}: {run.start_from!r} is no model of this study; choose from "
                    f"{', '.join(trained)}"
                )
        checkpoints = trained + [r.name for r in runs]
        every = checkpoints + [p.name for p in self.prompt_arms]
        clash = sorted({n for n in every[len(trained) :] if every.count(n) > 1})
        if clash:
            raise ValueError(
                f"rl.runs / prompt_arms: names must differ from every other model's: "
                f"{', '.join(clash)}"
            )
        for i, arm in enumerate(self.prompt_arms):
            if arm.model not in checkpoints:
                raise ValueError(
                    f"prompt_arms.{i}.model: {arm.model!r} is no trained model of this study; "
                    f"choose from {', '.join(checkpoints)}"
                )
        chosen = {
            "only": self.only,
            "seed_models": self.seed_models,
            "eval.samples_models": self.eval.samples_models,
        }
        for key, names in chosen.items():
            unknown = [n for n in names or [] if n not in every]
            if unknown:
                raise ValueError(f"{key}: {', '.join(map(repr, unknown))}: no model of this study")
        return self

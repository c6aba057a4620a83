"""The experiment file: one YAML that names every stage of the Behavior Priming study."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from searchprime.rl.config import RLHyper
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

    start_from: list[str] = Field(
        default_factory=lambda: ["base"],
        min_length=1,
        description="Models to continue with RL: 'base' (RL without priming) and/or arm names; "
        "each is evaluated on dev as '<name>+rl'.",
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
    sampler: Literal["hf", "llamacpp"] = Field(
        default="hf",
        description="'hf': the trainer's model decodes (any model); 'llamacpp': a llama.cpp "
        "server given the new weights every step (Llama-architecture models, CPU).",
    )

    @field_validator("start_from")
    @classmethod
    def _unique_names(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("names must be unique")
        return v

    @field_validator("rewards")
    @classmethod
    def _no_judge(cls, v: dict[str, float]) -> dict[str, float]:
        if "judge" in v:
            raise ValueError("'judge' needs a judge model, which the experiment does not run")
        return v


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
    rl: RLSection | None = Field(
        default=None, description="GRPO after SFT for the named models (None: no RL)."
    )

    @model_validator(mode="after")
    def _unique_arms(self) -> ExperimentConfig:
        names = [a.name for a in self.arms]
        if self.seeds is not None and len(set(self.seeds)) != len(self.seeds):
            raise ValueError("seeds: must be distinct")
        if len(set(names)) != len(names) or "base" in names:
            raise ValueError("arms: names must be unique and not 'base'")
        if self.rl is not None:
            models = ["base", *names]
            for name in self.rl.start_from:
                if name not in models:
                    raise ValueError(
                        f"rl.start_from: {name!r} is no model of this study; choose from "
                        f"{', '.join(models)}"
                    )
        return self

"""The experiment file: one YAML that names every stage of the Behavior Priming study."""

from __future__ import annotations

import difflib
from functools import lru_cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from searchprime.rl.config import PrefilterSettings


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


class SFTSection(_Strict):
    """Supervised fine-tuning shared by the base and every arm."""

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
    epochs: float = Field(default=2.0, gt=0)
    learning_rate: float = Field(default=1e-4, gt=0)
    batch_size: int = Field(default=8, ge=1)
    max_length: int = Field(default=1536, ge=64)
    trl: dict[str, Any] = Field(default_factory=dict, description="Extra trl.SFTConfig fields.")


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


#: ``trl`` keys that ``rl`` declares itself (one place to set each).
_RL_OWNED_TRL = {
    "max_steps": "max_steps",
    "num_generations": "num_generations",
    "per_device_train_batch_size": "micro_batch",
    "gradient_accumulation_steps": "tasks_per_step and rl.micro_batch",
    "steps_per_generation": "tasks_per_step and rl.micro_batch",
    "generation_batch_size": "tasks_per_step",
    "learning_rate": "learning_rate",
    "beta": "beta",
    "temperature": "temperature",
    "save_steps": "save_steps",
}


@lru_cache(maxsize=1)
def _grpo_fields() -> frozenset[str]:
    """Field names of ``trl.GRPOConfig`` (imports trl once: ~9 s on a 2-core CPU)."""
    import dataclasses

    from searchprime._lazy import require

    return frozenset(f.name for f in dataclasses.fields(require("trl", "train").GRPOConfig))


def _rl_run_rule(field: str, value: Any) -> None:
    """Apply :class:`~searchprime.rl.config.RLRunConfig`'s check of ``field`` to ``value``."""
    from searchprime.rl.config import RLRunConfig

    try:
        RLRunConfig(
            model="-",
            tasks="-",
            search={"kind": "bm25", "path": "-"},
            output_dir="-",
            **{field: value},
        )
    except ValidationError as exc:
        msg = exc.errors()[0]["msg"].removeprefix("Value error, ")
        raise ValueError(msg) from None


class RLSection(_Strict):
    """GRPO with search in the loop, applied to trained models (``searchprime.rl``).

    Defaults are sized for a 2-core CPU: a step is 2 tasks x 4 episodes; with the hf sampler on
    SmolLM2 a step takes ~35-60 s from a base model (~2 turns per episode) and ~1.5-3 min from a
    primed one (~6 turns, ~1,400 tokens per episode, trained at ~85-200 tokens/s), so one run of
    4 steps takes ~2-6 min.
    """

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
    rewards: dict[str, float] = Field(
        default_factory=lambda: {"em": 1.0},
        description="Reward name -> weight: em, f1, format, behavior, py:module:fn.",
    )
    max_steps: int = Field(default=4, ge=1, description="Optimizer steps.")
    num_generations: int = Field(default=4, ge=2, description="Episodes per task (GRPO group).")
    tasks_per_step: int = Field(default=2, ge=1, description="Tasks (groups) per optimizer step.")
    micro_batch: int | None = Field(
        default=None,
        ge=1,
        description="Episodes per forward/backward pass, accumulated into one optimizer step "
        "(None: one group, num_generations). Memory grows ~1 MB per padded token: 16 sandbox "
        "episodes in one pass took 24 GB.",
    )
    learning_rate: float = Field(
        default=2e-6, gt=0, description="As docs/rl/grpo_smollm2_cpu.yaml (SmolLM2)."
    )
    beta: float = Field(default=0.0, ge=0, description="KL coefficient (0: no reference model).")
    temperature: float = Field(default=1.0, gt=0, description="Sampling temperature of episodes.")
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
    prefilter: PrefilterSettings | None = Field(
        default=None, description="Keep only tasks the starting model sometimes solves."
    )
    curriculum: str | None = Field(
        default=None,
        description="Order tasks by this meta field (e.g. 'hops') instead of shuffling.",
    )
    save_steps: int = Field(default=5, ge=1, description="Checkpoint every N steps (resume).")
    trl: dict[str, Any] = Field(
        default_factory=dict, description="Further trl.GRPOConfig fields (passed through)."
    )

    @model_validator(mode="after")
    def _micro_batches_fill_a_step(self) -> RLSection:
        batch = self.tasks_per_step * self.num_generations
        if self.micro_batch is not None and batch % self.micro_batch:
            raise ValueError(
                f"micro_batch: {self.micro_batch} does not divide the {batch} episodes of a step "
                "(tasks_per_step x num_generations)"
            )
        return self

    @field_validator("start_from")
    @classmethod
    def _unique_names(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("names must be unique")
        return v

    @field_validator("rewards")
    @classmethod
    def _known_rewards(cls, v: dict[str, float]) -> dict[str, float]:
        if "judge" in v:
            raise ValueError("'judge' needs a judge model, which the experiment does not run")
        _rl_run_rule("rewards", v)
        return v

    @field_validator("trl")
    @classmethod
    def _trl_fields(cls, v: dict[str, Any]) -> dict[str, Any]:
        for key in v:
            if key in _RL_OWNED_TRL:
                raise ValueError(f"{key}: set it as rl.{_RL_OWNED_TRL[key]}")
        _rl_run_rule("trl", v)
        known = _grpo_fields() if v else frozenset()
        for key in v:
            if key not in known:
                close = difflib.get_close_matches(key, known, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ValueError(f"{key}: not a trl.GRPOConfig field{hint}")
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

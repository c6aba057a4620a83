"""The experiment file: one YAML that names every stage of the Behavior Priming study."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


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

    @model_validator(mode="after")
    def _backend_fits_device(self) -> EvalSection:
        if self.backend == "llamacpp" and self.device != "cpu":
            raise ValueError(
                f"backend: 'llamacpp' decodes on the CPU; with device {self.device!r} use "
                "backend 'hf' (or --backend hf)"
            )
        return self


class ExperimentConfig(_Strict):
    """The whole study: world -> teachers -> score -> annotate -> prime -> SFT -> eval."""

    name: str = Field(default="study", description="A label for the report.")
    seed: int = Field(default=0, description="Seed for selection and training.")
    world: WorldSection = Field(default_factory=WorldSection)
    teachers: TeacherSection = Field(default_factory=TeacherSection)
    sft: SFTSection = Field(default_factory=SFTSection)
    arms: list[ArmSection] = Field(
        default_factory=lambda: [ArmSection(name="primed", strategy="behavior")],
        description="SFT arms trained from the base checkpoint.",
    )
    eval: EvalSection = Field(default_factory=EvalSection)

    @model_validator(mode="after")
    def _unique_arms(self) -> ExperimentConfig:
        names = [a.name for a in self.arms]
        if len(set(names)) != len(names) or "base" in names:
            raise ValueError("arms: names must be unique and not 'base'")
        return self

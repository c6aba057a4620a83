"""The RL run's configuration: what to train, on which tasks, with which sampler and rewards.

:class:`RLHyper` declares each GRPO knob once (with the ``trl.GRPOConfig`` field it sets); the
run config (:class:`RLRunConfig`) and the experiment's ``rl:`` section both inherit it. ``trl``
passes any other :class:`trl.GRPOConfig` field through unchanged, checked when the config loads.
:data:`CPU_DEFAULTS` are the TRL values used unless a knob or ``trl`` says otherwise: sized for a
2-core CPU. ``docs/rl/grpo_paper_gpu.yaml`` is the paper's recipe for GPUs.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from searchprime.agent.prompts import PromptStyle
from searchprime.llm.registry import LLMConfig
from searchprime.search.registry import SearchConfig
from searchprime.train.hyper import Hyper, knob

__all__ = [
    "CPU_DEFAULTS",
    "FORCED_TRL",
    "EpisodeSettings",
    "PrefilterSettings",
    "RLHyper",
    "RLRunConfig",
    "SamplerSettings",
    "vllm_server_mode",
]

#: TRL fields we set unless the config's ``trl`` block does (2-core CPU sizes).
CPU_DEFAULTS: dict[str, Any] = {
    "num_generations": 4,
    # 2 tasks x 4 episodes per optimizer step, one group per forward/backward pass (memory grows
    # ~1 MB per padded token: 16 sandbox episodes in one pass took 24 GB)
    "per_device_train_batch_size": 4,
    "gradient_accumulation_steps": 2,
    "learning_rate": 1e-6,
    "beta": 0.0,
    "temperature": 1.0,
    "max_steps": 20,
    "logging_steps": 1,
    "save_steps": 5,
    "save_total_limit": 2,
    "bf16": False,  # fp32 keeps the hf sampler's logprobs equal to the trainer's
    # small models: recomputing activations costs more than it saves (as for SFT); TRL turns it on
    "gradient_checkpointing": False,
    "dataloader_pin_memory": False,
}


def vllm_server_mode(trl: dict[str, Any], field: str = "trl") -> dict[str, Any]:
    """``trl`` with ``vllm_mode: server`` for the vllm sampler (TRL's default is colocate);
    an explicit other mode is refused: the agent loop calls the server turn by turn, and
    colocate mode has no server to call."""
    mode = trl.get("vllm_mode", "server")
    if mode != "server":
        raise ValueError(
            f"the vllm sampler calls a `trl vllm-serve` server turn by turn; {field}.vllm_mode "
            f"{mode!r} has no server to call (use server, on its own GPUs, or the hf sampler)"
        )
    return {**trl, "vllm_mode": "server"}


#: TRL fields searchprime sets itself (the episodes come from our agent loop).
FORCED_TRL = ("output_dir", "use_vllm", "top_p", "top_k", "min_p", "max_completion_length")
#: TRL fields that ``tasks_per_step`` / ``micro_batch`` decide -> the knobs to set instead.
_STEP_TRL = {
    "per_device_train_batch_size": "micro_batch",
    "gradient_accumulation_steps": "tasks_per_step and micro_batch",
    "steps_per_generation": "tasks_per_step and micro_batch",
    "generation_batch_size": "tasks_per_step",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EpisodeSettings(_Strict):
    """The agent loop during RL (the same loop as ``rollout``)."""

    max_turns: int = Field(default=6, ge=1, description="Model calls per episode.")
    topk: int = Field(default=3, ge=1, description="Documents per search.")
    prompt: PromptStyle = Field(
        default="compact", description="System prompt style (see AgentConfig.prompt)."
    )
    thinking: Literal["explicit", "internal", "none"] = Field(default="explicit")
    max_tokens: int = Field(default=160, ge=1, description="Most sampled tokens per turn.")
    max_length: int = Field(
        default=4096,
        ge=64,
        description="Most prompt + completion tokens of one episode (its trained sequence); "
        "a turn that would start past it ends the episode (context_limit, reward as scored).",
    )
    search_reminder_after: int = Field(default=4, ge=0)
    turns_left_reminder: int = Field(default=2, ge=0)


class SamplerSettings(_Strict):
    """Who samples the episodes."""

    kind: Literal["hf", "llamacpp", "vllm"] = Field(
        default="hf",
        description="'hf': the trainer's model in-process (any model, any device, always in "
        "sync); 'llamacpp': a llama.cpp server given the new weights after every step "
        "(Llama-architecture models on CPU); 'vllm': TRL's vLLM server (`trl vllm-serve`, "
        "server mode; TRL pushes the weights to it before each rollout).",
    )
    url: str | None = Field(
        default=None,
        description="vllm: the server (default: trl.vllm_server_base_url, else "
        "http://<trl.vllm_server_host>:<trl.vllm_server_port>).",
    )
    served_model: str | None = Field(
        default=None, description="vllm: the served model's name (default: GET /v1/models)."
    )
    max_batch: int = Field(default=16, ge=1, description="Turns decoded together / slots.")
    threads: int | None = Field(default=None, ge=1, description="llama.cpp CPU threads.")
    importance_sampling: bool = Field(
        default=True,
        description="Correct the sampler/trainer logprob gap with truncated importance "
        "weights (llamacpp; TRL does it itself for vllm; hf has no gap).",
    )
    is_clip: float = Field(default=3.0, gt=0, description="Cap of the importance weights.")


class PrefilterSettings(_Strict):
    """Keep only training tasks the starting policy sometimes solves (GRPO learns nothing from
    a group whose rewards are all equal)."""

    samples: int = Field(
        default=4, ge=2, description="Episodes per task to estimate its pass rate."
    )
    keep: Literal["pass_rate", "varied"] = Field(
        default="pass_rate",
        description="'pass_rate': keep tasks whose pass rate (share of episodes with a positive "
        "weighted reward) lies in (low, high); 'varied': keep tasks whose sampled rewards "
        "differ, the GRPO criterion, which also works next to shaping rewards such as "
        "'answered' (low/high unused).",
    )
    low: float = Field(default=0.0, ge=0, lt=1, description="Keep pass rate > low ...")
    high: float = Field(default=1.0, gt=0, le=1, description="... and < high.")
    max_tasks: int | None = Field(default=None, ge=1, description="Tasks to sample at most.")


class RLHyper(Hyper):
    """The GRPO knobs (None: ``trl`` or :data:`CPU_DEFAULTS`), rewards, task order and ``trl``."""

    trl_config: ClassVar[str] = "GRPOConfig"
    forced_trl: ClassVar[dict[str, str]] = {
        **dict.fromkeys(FORCED_TRL, "episodes come from its agent loop"),
        "reward_weights": "give the weights in `rewards: {name: weight}`",
    }

    max_steps: int | None = knob(trl="max_steps", ge=1, description="Optimizer steps.")
    num_generations: int | None = knob(
        trl="num_generations", ge=2, description="Episodes per task (GRPO group)."
    )
    tasks_per_step: int | None = Field(
        default=None,
        ge=1,
        description="Tasks (groups) per optimizer step (None: trl's per_device_train_batch_size "
        "x gradient_accumulation_steps episodes).",
    )
    micro_batch: int | None = Field(
        default=None,
        ge=1,
        description="Episodes per forward/backward pass, accumulated into one optimizer step "
        "(None: one group, num_generations; needs tasks_per_step). Memory grows ~1 MB per "
        "padded token: 16 sandbox episodes in one pass took 24 GB.",
    )
    beta: float | None = knob(trl="beta", ge=0, description="KL coefficient (0: no reference).")
    temperature: float | None = knob(
        trl="temperature", gt=0, description="Sampling temperature of episodes."
    )
    save_steps: int | None = knob(
        trl="save_steps", ge=1, description="Checkpoint every N steps (resume)."
    )
    rewards: dict[str, float] = Field(
        default_factory=lambda: {"em": 1.0},
        description="Reward name -> weight: em, f1, judge, format, behavior, py:module:fn.",
    )
    prefilter: PrefilterSettings | None = Field(
        default=None, description="Keep only tasks the starting model sometimes solves."
    )
    curriculum: str | None = Field(
        default=None,
        description="Order tasks by this meta field, ascending (e.g. 'hops'), instead of "
        "shuffling them.",
    )
    trl: dict[str, Any] = Field(
        default_factory=dict,
        description="Further trl.GRPOConfig fields (see CPU_DEFAULTS), checked when the config "
        "loads.",
    )

    @classmethod
    def owned_trl(cls, values: dict[str, Any]) -> dict[str, str]:
        owned = super().owned_trl(values)
        if values.get("tasks_per_step") is not None:
            p = cls.knob_prefix
            owned.update({k: v.replace(" and ", f" and {p}") for k, v in _STEP_TRL.items()})
        return owned

    @field_validator("rewards")
    @classmethod
    def _known_rewards(cls, v: dict[str, float]) -> dict[str, float]:
        from searchprime.rl.rewards import check_reward_weights

        return check_reward_weights(v)

    @model_validator(mode="after")
    def _micro_batches_fill_a_step(self) -> RLHyper:
        if self.micro_batch is None:
            return self
        if self.tasks_per_step is None:
            raise ValueError(f"micro_batch: needs {self.knob_prefix}tasks_per_step")
        batch = self.episodes_per_step()
        if batch % self.micro_batch:
            raise ValueError(
                f"micro_batch: {self.micro_batch} does not divide the {batch} episodes of a step "
                "(tasks_per_step x num_generations)"
            )
        return self

    def group_size(self) -> int:
        """Episodes per task (GRPO's G): the knob, else ``trl``'s, else the CPU default."""
        return int(
            self.num_generations
            or self.trl.get("num_generations")
            or CPU_DEFAULTS["num_generations"]
        )

    def episodes_per_step(self) -> int:
        """Episodes of one optimizer step (``tasks_per_step`` groups; else trl's batch)."""
        if self.tasks_per_step is not None:
            return self.tasks_per_step * self.group_size()
        merged = {**CPU_DEFAULTS, **self.trl}
        return merged["per_device_train_batch_size"] * merged["gradient_accumulation_steps"]

    def knob_trl(self) -> dict[str, Any]:
        out = super().knob_trl()
        if self.tasks_per_step is not None:
            micro = self.micro_batch or self.group_size()
            # one optimizer step per generation of a step's episodes, in micro-batches
            out["per_device_train_batch_size"] = micro
            out["gradient_accumulation_steps"] = self.episodes_per_step() // micro
        return out


class RLRunConfig(RLHyper):
    """One GRPO run with search in the loop."""

    model: str = Field(description="HF folder (or hub id) of the policy to train.")
    tasks: str = Field(description="Training tasks (any format `rollout` reads).")
    search: SearchConfig = Field(description="Search backend of the episodes.")
    output_dir: str = Field(description="Final model, checkpoint-*/, steps.jsonl, episodes/.")
    limit: int | None = Field(default=None, ge=1, description="Use the first N tasks.")
    episode: EpisodeSettings = Field(default_factory=EpisodeSettings)
    sampler: SamplerSettings = Field(default_factory=SamplerSettings)
    judge: LLMConfig | None = Field(
        default=None,
        description="LLMConfig of the judge model (needed by the 'judge' reward); answers are "
        "judged once and cached in output_dir/judge.sqlite.",
    )
    concurrency: int = Field(default=16, ge=1, description="Episodes run at once.")
    threads: int | None = Field(
        default=None,
        ge=1,
        description="torch CPU threads (process-wide). On a busy 2-core machine one thread ran "
        "SmolLM2's RL steps 3-20x faster than two (bench/rl.py); None: torch's default.",
    )
    resume: bool | str = Field(
        default=False, description="True: from the last checkpoint in output_dir; or a path."
    )

    @model_validator(mode="after")
    def _judge_configured(self) -> RLRunConfig:
        if "judge" in self.rewards and self.judge is None:
            raise ValueError("rewards: 'judge' needs a `judge:` model (an LLMConfig)")
        return self

    @model_validator(mode="after")
    def _vllm_server_mode(self) -> RLRunConfig:
        if self.sampler.kind == "vllm":
            self.trl = vllm_server_mode(self.trl)
        return self

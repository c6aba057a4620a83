"""The SFT run's configuration: our fields, the shared knobs (:class:`SFTHyper`) and ``trl``.

:class:`SFTHyper` declares each SFT knob once, with the ``trl.SFTConfig`` field it sets; the run
config (:class:`SFTRunConfig`) and the experiment's ``sft:`` section both inherit it. ``trl``
passes any other ``trl.SFTConfig`` / ``TrainingArguments`` field through unchanged.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from searchprime.train.hyper import Hyper, knob

__all__ = ["TRL_DEFAULTS", "LoraSettings", "SFTHyper", "SFTRunConfig"]

#: Our defaults for TRL/Trainer fields (any of them can be overridden through a knob or ``trl``).
TRL_DEFAULTS: dict[str, Any] = {
    "activation_checkpointing": False,  # small models: recomputation costs more than it saves
    "save_total_limit": 2,
    "logging_steps": 5,
    "include_num_input_tokens_seen": "non_padding",
    "max_length": 2048,
}


class LoraSettings(BaseModel):
    """LoRA adapter settings (peft ``LoraConfig``)."""

    model_config = ConfigDict(extra="forbid")

    r: int = Field(default=16, ge=1, description="Adapter rank.")
    alpha: int = Field(default=32, ge=1, description="lora_alpha (scale = alpha / r).")
    dropout: float = Field(default=0.05, ge=0.0, lt=1.0, description="Adapter dropout.")
    target_modules: list[str] | str = Field(
        default="all-linear", description="Modules to adapt; 'all-linear' = every linear layer."
    )
    merge: bool = Field(
        default=True,
        description="Save a merged full model in the output folder (adapter in ./adapter).",
    )


class SFTHyper(Hyper):
    """The SFT knobs (None: ``trl`` or TRL's default) and the ``trl`` passthrough."""

    trl_config: ClassVar[str] = "SFTConfig"
    forced_trl: ClassVar[dict[str, str]] = dict.fromkeys(
        ("completion_only_loss", "assistant_only_loss", "output_dir"),
        "loss covers only policy tokens",
    )

    epochs: float | None = knob(trl="num_train_epochs", gt=0, description="Training epochs.")
    batch_size: int | None = knob(
        trl="per_device_train_batch_size", ge=1, description="Samples per device per micro-batch."
    )
    max_length: int | None = knob(
        trl="max_length",
        ge=64,
        description="Most tokens of a sample (or packed row); longer samples are dropped, not cut "
        "(default 2048).",
    )
    trl: dict[str, Any] = Field(
        default_factory=dict,
        description="Further trl.SFTConfig / TrainingArguments fields (warmup_steps, max_steps, "
        "gradient_accumulation_steps, packing, bf16, ...), checked when the config loads.",
    )


class SFTRunConfig(SFTHyper):
    """One SFT run: what to train, on what, where; ``trl`` passes SFTConfig fields through."""

    model: str = Field(description="HF folder or hub id of the model to fine-tune.")
    data: str | list[str] = Field(
        description="A `prime --format trl` folder, or its train.jsonl; a list trains on "
        "several together (e.g. the priming data mixed with the base model's)."
    )
    output_dir: str = Field(description="Output folder: final HF model + checkpoint-*/ folders.")
    lora: LoraSettings | None = Field(default=None, description="LoRA instead of full FT.")
    resume: Literal["auto"] | bool | str = Field(
        default="auto",
        description="'auto': resume a run of the same settings found in output_dir; True: "
        "must resume (a longer max_steps/num_train_epochs is accepted); a checkpoint path; "
        "False: never resume.",
    )
    overwrite: bool = Field(
        default=False, description="Delete output_dir's checkpoints and records and start over."
    )
    limit: int | None = Field(default=None, ge=1, description="Use only the first N samples.")

    @field_validator("data")
    @classmethod
    def _some_data(cls, v: str | list[str]) -> str | list[str]:
        if isinstance(v, list) and not v:
            raise ValueError("an empty list names no data")
        return v

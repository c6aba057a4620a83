"""What an SFT run did (``searchprime_sft.json``), and its whole-run loss across resumes."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["SUMMARY_FILE", "SFTSummary", "whole_run_loss"]

#: Written into the output folder at the end of a run.
SUMMARY_FILE = "searchprime_sft.json"


class SFTSummary(BaseModel):
    """What a run did (``searchprime_sft.json``)."""

    model_config = ConfigDict(extra="forbid")

    output_dir: str
    base_model: str
    data: str
    samples: int
    dropped_too_long: int = Field(description="Samples over trl.max_length, not trained.")
    assistant_only_loss: bool
    lora: bool
    packing: bool
    steps: int = Field(description="Optimizer steps of the whole run.")
    epochs: float
    first_loss: float | None = Field(description="First logged loss of the whole run.")
    last_loss: float | None = Field(description="Last logged loss of the whole run.")
    train_loss: float | None = Field(
        description="Mean loss over every step of the whole run, resumed parts included "
        "(None if a resumed part's log is incomplete; then see run_train_loss)."
    )
    tokens_seen: int = Field(description="Non-padding input tokens of the whole run.")
    runtime_s: float = Field(description="Training time of this process.")
    tokens_per_s: float = Field(description="run_tokens / runtime_s (this process only).")
    resumed_from: str | None
    start_step: int = Field(default=0, description="Step this process started at.")
    steps_run: int | None = Field(default=None, description="Steps this process ran.")
    run_tokens: int | None = Field(default=None, description="Tokens this process trained on.")
    run_train_loss: float | None = Field(
        default=None, description="Mean loss over the steps this process ran."
    )


def whole_run_loss(
    history: list[dict], start_step: int, run_loss: float | None, steps_run: int
) -> float | None:
    """Mean per-step loss over steps ``1..start_step+steps_run``.

    Steps before ``start_step`` come from the logged losses (each the mean over the steps
    since the previous log); ``None`` when those logs do not reach ``start_step``.
    """
    total, prev = 0.0, 0
    for h in history:
        if "loss" in h and h["step"] <= start_step:
            total += h["loss"] * (h["step"] - prev)
            prev = h["step"]
    if prev != start_step:
        return None
    steps = start_step + steps_run
    if steps == 0:
        return None
    return (total + (run_loss or 0.0) * steps_run) / steps

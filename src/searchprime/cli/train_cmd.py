"""``searchprime train sft``: fine-tune a model on primed samples (TRL SFTTrainer)."""

from __future__ import annotations

from pathlib import Path

import typer

from searchprime.cli._common import out, summary

train_app = typer.Typer(help="Training stages.", no_args_is_help=True)


@train_app.command("sft")
def sft(
    model: str | None = typer.Option(None, "--model", help="HF folder or hub id."),
    data: Path | None = typer.Option(None, "--data", help="`prime --format trl` folder or file."),
    output_dir: Path | None = typer.Option(None, "--out", help="Output folder."),
    config: Path | None = typer.Option(None, "--config", help="YAML of SFTRunConfig fields."),
    lora: bool = typer.Option(False, "--lora", help="Train a LoRA adapter (merged on save)."),
    lora_r: int | None = typer.Option(None, help="LoRA rank."),
    epochs: float | None = typer.Option(None, "--epochs", help="trl.num_train_epochs."),
    max_steps: int | None = typer.Option(None, help="trl.max_steps (overrides epochs)."),
    lr: float | None = typer.Option(None, "--lr", help="trl.learning_rate."),
    batch_size: int | None = typer.Option(None, help="trl.per_device_train_batch_size."),
    grad_accum: int | None = typer.Option(None, help="trl.gradient_accumulation_steps."),
    max_length: int | None = typer.Option(None, help="trl.max_length (tokens per sample/row)."),
    packing: bool | None = typer.Option(None, "--packing/--no-packing", help="BFD packing."),
    save_steps: int | None = typer.Option(None, help="trl.save_steps (checkpoint interval)."),
    seed: int | None = typer.Option(None, help="trl.seed."),
    limit: int | None = typer.Option(None, help="Use only the first N samples."),
    resume: bool = typer.Option(False, "--resume", help="Resume from the last checkpoint in OUT."),
) -> None:
    """Fine-tune MODEL on DATA; loss only on the policy's own tokens. Final HF model in OUT."""
    from searchprime.config import load_config
    from searchprime.train.sft import SFTRunConfig, run_sft

    overrides = {
        "model": model,
        "data": str(data) if data else None,
        "output_dir": str(output_dir) if output_dir else None,
        "limit": limit,
        "resume": True if resume else None,
        "trl.num_train_epochs": epochs,
        "trl.max_steps": max_steps,
        "trl.learning_rate": lr,
        "trl.per_device_train_batch_size": batch_size,
        "trl.gradient_accumulation_steps": grad_accum,
        "trl.max_length": max_length,
        "trl.packing": packing,
        "trl.save_steps": save_steps,
        "trl.seed": seed,
    }
    if lora or lora_r is not None:
        overrides["lora.r"] = lora_r if lora_r is not None else 16
    cfg = load_config(SFTRunConfig, config, overrides)
    if lora and cfg.lora is None:
        from searchprime.train.sft import LoraSettings

        cfg.lora = LoraSettings()
    s = run_sft(cfg)
    losses = (
        f"; logged loss {s.first_loss:.4f} -> {s.last_loss:.4f}" if s.first_loss is not None else ""
    )
    out.print(
        f"steps {s.steps} ({s.epochs:.2f} epochs) over {s.samples} samples "
        f"({s.dropped_too_long} longer than max_length dropped){losses}; "
        f"{s.tokens_seen} tokens in {s.runtime_s:.1f}s",
        highlight=False,
    )
    resumed = f", resumed from {s.resumed_from}" if s.resumed_from else ""
    summary(
        f"SFT {'LoRA' if s.lora else 'full'}: {s.steps} steps, train loss {s.train_loss:.4f}, "
        f"{s.tokens_per_s:.0f} tokens/s{resumed} -> {s.output_dir}"
    )


def register(app: typer.Typer) -> None:
    """Add ``train`` to ``app``."""
    app.add_typer(train_app, name="train")

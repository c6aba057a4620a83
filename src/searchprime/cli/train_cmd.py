"""``searchprime train sft`` (TRL SFTTrainer) and ``train rl`` (GRPO with search in the loop)."""

from __future__ import annotations

from pathlib import Path

import typer

from searchprime.cli._common import out, summary

train_app = typer.Typer(help="Training stages.", no_args_is_help=True)


def _as_file_spells(overrides: dict, model: type, config: Path | None) -> dict:
    """Flags name TRL fields (``trl.learning_rate``); where the YAML sets the same value by its
    knob (``learning_rate:``), the flag overrides the knob instead, so a knob and its ``trl:``
    spelling never meet (the config refuses both)."""
    if config is None or not config.is_file():
        return overrides
    import yaml

    from searchprime.train.hyper import trl_name

    try:
        data = yaml.safe_load(config.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return overrides  # load_config reports the file's problem
    if not isinstance(data, dict):
        return overrides
    knob_of = {trl_name(f): k for k, f in model.model_fields.items() if trl_name(f)}
    out = {}
    for key, value in overrides.items():
        field = key.removeprefix("trl.")
        knob = knob_of.get(field) if key.startswith("trl.") else None
        out[knob if knob is not None and data.get(knob) is not None else key] = value
    return out


@train_app.command("sft")
def sft(
    model: str | None = typer.Option(None, "--model", help="HF folder or hub id."),
    data: list[Path] | None = typer.Option(
        None, "--data", help="`prime --format trl` folder or file; repeat to train on several."
    ),
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
    resume: bool = typer.Option(
        False,
        "--resume",
        help="Must resume from OUT's last checkpoint; a longer --max-steps/--epochs is accepted. "
        "Without it a run of the same settings in OUT resumes anyway.",
    ),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Delete OUT's checkpoints and records and start over."
    ),
    report_to: str | None = typer.Option(
        None,
        "--report-to",
        help="none | tensorboard | wandb (offline); comma-separated for both (track extra).",
    ),
) -> None:
    """Fine-tune MODEL on DATA; loss only on the policy's own tokens. Final HF model in OUT.

    Rerunning the same command after a kill resumes from OUT's last checkpoint; OUT holding a
    run of other settings is refused (--overwrite starts over).
    """
    from searchprime.config import load_config
    from searchprime.train.sft import SFTRunConfig, plan_sft, run_sft

    overrides = {
        "model": model,
        "data": (str(data[0]) if len(data) == 1 else [str(d) for d in data]) if data else None,
        "output_dir": str(output_dir) if output_dir else None,
        "limit": limit,
        "resume": True if resume else None,
        "overwrite": True if overwrite else None,
        "trl.num_train_epochs": epochs,
        "trl.max_steps": max_steps,
        "trl.learning_rate": lr,
        "trl.per_device_train_batch_size": batch_size,
        "trl.gradient_accumulation_steps": grad_accum,
        "trl.max_length": max_length,
        "trl.packing": packing,
        "trl.save_steps": save_steps,
        "trl.seed": seed,
        "report_to": _report_to(report_to),
    }
    if lora or lora_r is not None:
        overrides["lora.r"] = lora_r if lora_r is not None else 16
    cfg = load_config(SFTRunConfig, config, _as_file_spells(overrides, SFTRunConfig, config))
    if lora and cfg.lora is None:
        from searchprime.train.sft import LoraSettings

        cfg.lora = LoraSettings()
    plan = plan_sft(cfg)
    if plan.finished:
        summary(
            f"SFT already finished with these settings -> {cfg.output_dir} (--overwrite redoes it)"
        )
        return
    if plan.checkpoint:
        changed = f" (changed: {', '.join(plan.changed)})" if plan.changed else ""
        out.print(f"resuming from {plan.checkpoint}{changed}", highlight=False)
    s = run_sft(cfg, plan=plan)
    losses = (
        f"; logged loss {s.first_loss:.4f} -> {s.last_loss:.4f}" if s.first_loss is not None else ""
    )
    part = f"steps {s.start_step}->{s.steps}" if s.start_step else f"steps {s.steps}"
    out.print(
        f"{part} ({s.epochs:.2f} epochs) over {s.samples} samples "
        f"({s.dropped_too_long} longer than max_length dropped){losses}; "
        f"{s.run_tokens} tokens in {s.runtime_s:.1f}s",
        highlight=False,
    )
    if s.train_loss is not None:
        loss = f"train loss {s.train_loss:.4f}" + (" (whole run)" if s.start_step else "")
    elif s.run_train_loss is not None:
        loss = f"train loss {s.run_train_loss:.4f} (steps {s.start_step + 1}-{s.steps} only)"
    else:
        loss = "no steps trained"
    resumed = f", resumed from {s.resumed_from}" if s.resumed_from else ""
    summary(
        f"SFT {'LoRA' if s.lora else 'full'}: {s.steps} steps, {loss}, "
        f"{s.tokens_per_s:.0f} tokens/s{resumed} -> {s.output_dir}"
    )


def _report_to(value: str | None) -> str | list[str] | None:
    return value.split(",") if value and "," in value else value


@train_app.command("rl")
def rl(
    model: str | None = typer.Option(None, "--model", help="HF folder of the policy to train."),
    tasks: str | None = typer.Option(None, "--tasks", help="Training tasks file."),
    index: Path | None = typer.Option(None, "--index", help="BM25 index folder (search.path)."),
    output_dir: Path | None = typer.Option(None, "--out", help="Output folder."),
    config: Path | None = typer.Option(None, "--config", help="YAML of RLRunConfig fields."),
    world: Path | None = typer.Option(
        None, "--world", help="Sandbox world: label episodes (rules annotator)."
    ),
    sampler: str | None = typer.Option(None, "--sampler", help="hf | llamacpp | vllm."),
    reward: list[str] | None = typer.Option(
        None, "--reward", help="NAME[=WEIGHT], repeatable (em, f1, judge, format, behavior)."
    ),
    max_steps: int | None = typer.Option(None, help="trl.max_steps."),
    num_generations: int | None = typer.Option(None, "--group", help="trl.num_generations (G)."),
    batch_size: int | None = typer.Option(
        None, help="trl.per_device_train_batch_size (episodes per step, a multiple of G)."
    ),
    lr: float | None = typer.Option(None, "--lr", help="trl.learning_rate."),
    beta: float | None = typer.Option(None, help="trl.beta (KL coefficient; 0 = no reference)."),
    temperature: float | None = typer.Option(None, help="trl.temperature (sampler and trainer)."),
    max_turns: int | None = typer.Option(None, help="episode.max_turns."),
    save_steps: int | None = typer.Option(None, help="trl.save_steps (checkpoint interval)."),
    seed: int | None = typer.Option(None, help="trl.seed."),
    limit: int | None = typer.Option(None, help="Use only the first N tasks."),
    threads: int | None = typer.Option(None, help="torch CPU threads (1 on a busy 2-core CPU)."),
    resume: bool = typer.Option(False, "--resume", help="Resume from the last checkpoint in OUT."),
    report_to: str | None = typer.Option(
        None,
        "--report-to",
        help="none | tensorboard | wandb (offline); comma-separated for both (track extra).",
    ),
    export_verl: Path | None = typer.Option(
        None,
        "--export-verl",
        help="Write a verl bundle (parquet, reward, agent loop, run_grpo.sh) to this folder "
        "instead of training here.",
    ),
    layout: str | None = typer.Option(
        None, "--layout", help="--export-verl rows: searchprime (default) | bp (the paper's)."
    ),
    val_tasks: str | None = typer.Option(
        None, "--val-tasks", help="--export-verl validation tasks (default: 10% held out)."
    ),
) -> None:
    """GRPO with search in the loop: episodes run the agent loop; only sampled tokens train.

    With --export-verl OUT, write the same run for verl (cluster scale) and exit.
    """
    from searchprime.config import load_config
    from searchprime.rl.config import RLRunConfig
    from searchprime.rl.grpo import run_rl

    overrides: dict = {
        "model": model,
        "tasks": tasks,
        "output_dir": str(output_dir) if output_dir else None,
        "sampler.kind": sampler,
        "limit": limit,
        "threads": threads,
        "resume": True if resume else None,
        "episode.max_turns": max_turns,
        "trl.max_steps": max_steps,
        "trl.num_generations": num_generations,
        "trl.per_device_train_batch_size": batch_size,
        "trl.learning_rate": lr,
        "trl.beta": beta,
        "trl.temperature": temperature,
        "trl.save_steps": save_steps,
        "trl.seed": seed,
        "report_to": _report_to(report_to),
    }
    if index is not None:
        overrides["search"] = {"kind": "bm25", "path": str(index)}
    if reward:
        overrides["rewards"] = _parse_rewards(reward)
    if export_verl is None and (layout or val_tasks):
        from searchprime.errors import ConfigError

        raise ConfigError("--layout and --val-tasks go with --export-verl")
    if export_verl is not None:
        from searchprime.rl.verl import VerlExportConfig, export_bundle

        overrides.update({"verl.layout": layout, "verl.val_tasks": val_tasks})
        verl_overrides = _as_file_spells(overrides, VerlExportConfig, config)
        card = export_bundle(load_config(VerlExportConfig, config, verl_overrides), export_verl)
        summary(
            f"verl bundle ({card['layout']} rows, reward {card['metric']}): "
            f"{card['rows']['train']} train / {card['rows']['val']} val tasks -> {export_verl} "
            f"(run: MODEL=... bash {export_verl / 'run_grpo.sh'})"
        )
        return
    cfg = load_config(RLRunConfig, config, _as_file_spells(overrides, RLRunConfig, config))
    annotator = None
    if world is not None:
        from searchprime.behaviors.annotate import RulesAnnotator

        annotator = RulesAnnotator(world)
    s = run_rl(cfg, annotator=annotator, log=lambda m: out.print(m, highlight=False))
    if s.reward_first is not None:
        out.print(
            f"reward {s.reward_first:.3f} -> {s.reward_last:.3f} (first/last 3 steps), EM "
            f"{s.em_first:.3f} -> {s.em_last:.3f}; zero-variance groups {s.zero_std_groups:.0%}; "
            f"{s.episodes} episodes in {s.runtime_s:.0f}s",
            highlight=False,
        )
    resumed = f", resumed from {s.resumed_from}" if s.resumed_from else ""
    summary(f"GRPO: {s.steps} steps with sampler {s.sampler}{resumed} -> {s.output_dir}")


def _parse_rewards(items: list[str]) -> dict[str, float]:
    from searchprime.errors import ConfigError

    weights: dict[str, float] = {}
    for item in items:
        name, _, weight = item.partition("=")
        try:
            weights[name.strip()] = float(weight) if weight else 1.0
        except ValueError:
            raise ConfigError(f"--reward {item!r}: the weight must be a number") from None
    return weights


def register(app: typer.Typer) -> None:
    """Add ``train`` to ``app``."""
    app.add_typer(train_app, name="train")

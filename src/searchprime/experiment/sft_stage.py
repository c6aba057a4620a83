"""The study's SFT stage: the base model, then every arm from the base."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

from searchprime.experiment.config import ExperimentConfig

Log = Callable[[str], None]


def train_models(
    cfg: ExperimentConfig,
    out: Path,
    data_dirs: dict[str, Path],
    stage: Callable[[str], AbstractContextManager[None]],
    log: Log,
) -> Iterator[tuple[str, Path]]:
    """SFT the base model from the start checkpoint, then every arm from the base.

    Yields ``(name, checkpoint)`` as each is ready (trained now or earlier).
    """
    from searchprime.train.models import init_tiny, prepare_smollm2
    from searchprime.train.sft import SFTRunConfig, run_sft

    with stage("policy model"):
        if cfg.sft.model == "smollm2":
            start = prepare_smollm2(out / "models" / "smollm2")
        elif cfg.sft.model == "tiny":
            start = out / "models" / "tiny"
            if not (start / "config.json").exists():
                init_tiny(start)
        else:
            start = Path(cfg.sft.model) if Path(cfg.sft.model).exists() else cfg.sft.model
    trl = {
        "num_train_epochs": cfg.sft.epochs,
        "learning_rate": cfg.sft.learning_rate,
        "per_device_train_batch_size": cfg.sft.batch_size,
        "max_length": cfg.sft.max_length,
        "save_steps": 50,
        "logging_steps": 1,
        "seed": cfg.seed,
        **({"use_cpu": True} if cfg.eval.device == "cpu" else {}),
        **cfg.sft.trl,
    }
    base: Path | None = None
    epochs = {a.name: a.epochs for a in cfg.arms if a.epochs is not None}
    order = [("base", start)] + [(a.name, None) for a in cfg.arms]
    for name, init in order:
        dest = out / "sft" / name
        with (
            stage(f"sft {name}") if not (dest / "searchprime_sft.json").exists() else nullcontext()
        ):
            if not (dest / "searchprime_sft.json").exists():
                summary = run_sft(
                    SFTRunConfig(
                        model=str(init or base),
                        data=str(data_dirs[name]),
                        output_dir=str(dest),
                        trl={**trl, "num_train_epochs": epochs.get(name, cfg.sft.epochs)},
                    )
                )
                log(
                    f"  {name}: {summary.samples} samples, {summary.steps} steps, loss "
                    f"{summary.first_loss} -> {summary.last_loss}, {summary.tokens_per_s:.0f} tok/s"
                )
        base = base or dest
        yield name, dest

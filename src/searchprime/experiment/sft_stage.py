"""The study's SFT stage: the base model, then every arm from the base."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from searchprime.experiment.config import ExperimentConfig

Log = Callable[[str], None]


def sft_run_config(
    cfg: ExperimentConfig, name: str, model: Path | str, data_dirs: dict[str, Path], dest: Path
) -> Any:
    """The :class:`~searchprime.train.sft_config.SFTRunConfig` of model ``name`` (the ``sft``
    section's knobs as they are; an arm's ``epochs`` / ``learning_rate`` where given, and
    the base model's data next to its own with ``mix_base``)."""
    from searchprime.train.sft_config import SFTHyper, SFTRunConfig

    knobs = cfg.sft.shared(SFTHyper)
    arm = next((a for a in cfg.arms if a.name == name), None)
    data: str | list[str] = str(data_dirs[name])
    if arm is not None:
        if arm.epochs is not None:
            knobs["epochs"] = arm.epochs
        if arm.learning_rate is not None:
            knobs["learning_rate"] = arm.learning_rate
        if arm.mix_base:
            data = [str(data_dirs[name]), str(data_dirs["base"])]
    knobs["trl"] = {
        # a checkpoint every few minutes on a CPU: a session's end loses little of a short arm
        "save_steps": 10,
        "logging_steps": 1,
        "seed": cfg.seed,
        **({"use_cpu": True} if cfg.eval.device == "cpu" else {}),
        **cfg.sft.trl,
    }
    return SFTRunConfig(model=str(model), data=data, output_dir=str(dest), **knobs)


def drop_checkpoints(cfg: ExperimentConfig, name: str, dest: Path, finished: str, log: Log) -> None:
    """Remove a finished run's checkpoints unless ``keep_checkpoints`` (they only resume it)."""
    from searchprime.train.resume import prune_checkpoints

    if not cfg.keep_checkpoints and (freed := prune_checkpoints(dest, finished)):
        log(f"  {name}: finished; removed its checkpoints ({freed / 2**30:.1f} GiB)")


def train_models(
    cfg: ExperimentConfig,
    out: Path,
    data_dirs: dict[str, Path],
    stage: Callable[[str], AbstractContextManager[None]],
    log: Log,
    need: set[str] | None = None,
) -> Iterator[tuple[str, Path]]:
    """SFT the base model from the start checkpoint, then every arm from the base (the ones
    :meth:`ExperimentConfig.wanted`).

    Yields ``(name, checkpoint)`` as each is ready (trained now or earlier). ``need``: the
    models whose weights this run needs (:func:`~searchprime.experiment.carry.models_to_train`;
    None: all). A finished model outside it is yielded as it is, weights or not (a carried
    study's evaluated model); one inside it whose weights are gone is trained again.
    """
    from searchprime.experiment.carry import has_weights
    from searchprime.train.models import init_tiny, prepare_smollm2
    from searchprime.train.sft import SUMMARY_FILE, run_sft

    def needed(name: str) -> bool:
        return need is None or name in need

    with stage("policy model"):
        if not needed("base"):
            start: Path | str = cfg.sft.model  # nothing to train: the start model is not read
        elif cfg.sft.model == "smollm2":
            start = prepare_smollm2(out / "models" / "smollm2")
        elif cfg.sft.model == "tiny":
            start = out / "models" / "tiny"
            if not (start / "config.json").exists():
                init_tiny(start)
        else:
            start = Path(cfg.sft.model) if Path(cfg.sft.model).exists() else cfg.sft.model
    base: Path | None = None
    wanted = cfg.wanted()
    order = [("base", start)] + [(a.name, None) for a in cfg.arms if a.name in wanted]
    for name, init in order:
        dest = out / "sft" / name
        finished = (dest / SUMMARY_FILE).exists()
        label = f"sft {name}"
        if finished and needed(name) and not has_weights(dest):
            log(f"  {name}: evaluated, but its weights are not here; training it again")
            (dest / SUMMARY_FILE).unlink()
            finished, label = False, f"sft {name} again"  # work of its own in the ledger
        if not finished and needed(name):
            with stage(label):
                summary = run_sft(sft_run_config(cfg, name, init or base, data_dirs, dest))
                log(
                    f"  {name}: {summary.samples} samples, {summary.steps} steps, loss "
                    f"{summary.first_loss} -> {summary.last_loss}, {summary.tokens_per_s:.0f} tok/s"
                )
        elif not has_weights(dest):
            log(f"  {name}: evaluated; nothing still to do needs its weights")
        drop_checkpoints(cfg, f"sft {name}", dest, SUMMARY_FILE, log)
        base = base or dest
        yield name, dest

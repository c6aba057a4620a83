"""Run the Behavior Priming study from an :class:`ExperimentConfig`, stage by stage.

world -> BM25 index -> scripted teachers on two disjoint train pools -> score + rules
annotator -> prime (base data from pool A, one selection of pool B per arm) -> SFT the base
model, then each arm from the base -> roll every model out on dev through the real agent
loop (and each ``prompt_arms`` entry: a trained model under another system prompt) ->
(``rl:``) each RL run from its start model on further train tasks, the RL'd model rolled out
on dev under the run's name -> score, label with the rules and the action-grounded annotators,
behavior stats and plots -> comparisons and the paper's claims -> ``report.json``.

Every stage writes its files under the output folder and is skipped when they exist;
rollouts resume record by record and SFT and RL resume from their last checkpoint, so a killed
run picks up where it stopped.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from searchprime.experiment.config import ExperimentConfig
from searchprime.experiment.study import Log, ProgressFactory, Study, _no_progress
from searchprime.records import atomic_write_text

__all__ = ["run_experiment"]


#: Top-level settings that choose which models a run makes, not how any stage makes them.
_CHOOSERS = ("only", "seed_models")
#: Top-level settings that shape no stage's result: what is kept on disk, and whether later
#: seeds run the exploration analyses (eval.samples / eval.entropy, free themselves).
_BOOKKEEPING = ("keep_checkpoints", "seed_exploration")


def _rl_started(out: Path) -> bool:
    """Whether any RL run has a folder under ``out/rl`` (the RL tasks file is not a run)."""
    rl = out / "rl"
    return rl.is_dir() and any(p.is_dir() for p in rl.iterdir())


def _check_same_settings(cfg: ExperimentConfig, saved: Path) -> None:
    """Stages are cached by their files: resuming with other settings would mix two studies.

    Every section must match, except that ``eval`` fields that only shape the evaluation may
    change while nothing was evaluated yet, and those that only shape the summary (CIs,
    entropy, sampling counts, batch sizes, threads) at any time. ``eval`` fields that shape
    the teachers, SFT or RL (:data:`~searchprime.experiment.config.EVAL_SHAPES_TRAINING`) are
    checked like any other section. The ``rl`` section may change while no RL run has
    started (a long study's RL can be settled while its SFT runs), and ``only`` /
    ``seed_models`` (which models run, not how) and ``keep_checkpoints`` /
    ``seed_exploration`` (what is kept and analysed) at any time.
    """
    if not saved.exists():
        return
    from searchprime.errors import ResumeError
    from searchprime.experiment.config import EVAL_SHAPES_ROLLOUTS, EVAL_SHAPES_TRAINING

    old = json.loads(saved.read_text())
    try:  # a folder written before a field was added holds that field's default
        old = json.loads(ExperimentConfig.model_validate(old).model_dump_json())
    except ValueError:
        pass
    new = json.loads(cfg.model_dump_json())
    for study in (old, new):  # tracking can be turned on for a study that is resumed
        for section in ("sft", "rl"):
            if isinstance(study.get(section), dict):
                study[section].pop("report_to", None)
    old_eval, new_eval = old.get("eval") or {}, new.get("eval") or {}

    def changed(fields: tuple[str, ...]) -> list[str]:
        return [f"eval.{f}" for f in fields if old_eval.get(f) != new_eval.get(f)]

    free = {"eval", *_CHOOSERS, *_BOOKKEEPING}
    if not _rl_started(saved.parent):
        free.add("rl")
    diff = sorted(k for k in set(old) | set(new) if k not in free and old.get(k) != new.get(k))
    diff += changed(EVAL_SHAPES_TRAINING)
    if diff:
        raise ResumeError(
            f"{saved}: this folder holds a study with other settings ({', '.join(diff)}); "
            "use a new --out folder, or the same settings to resume"
        )
    evaluated = sorted((saved.parent / "eval").glob("*.jsonl"))
    redo = changed(tuple(f for f in EVAL_SHAPES_ROLLOUTS if f not in EVAL_SHAPES_TRAINING))
    if redo and evaluated:
        raise ResumeError(
            f"{saved}: the models were evaluated with other settings ({', '.join(redo)}); "
            f"remove {saved.parent / 'eval'} to evaluate them again with these (the trained "
            "models are kept), or resume with the same settings"
        )


def run_experiment(
    cfg: ExperimentConfig,
    out_dir: str | Path,
    *,
    progress: ProgressFactory = _no_progress,
    log: Log = print,
    carry: str | Path | None = None,
) -> dict[str, Any]:
    """Run (or resume) the study in ``out_dir``; return the report also written as JSON.

    With ``seeds``, one study per seed in ``out_dir/seed-<s>/`` and the mean ± sd across them
    (:mod:`searchprime.experiment.seeds`). ``carry``: a folder holding the study's results
    without weights (:mod:`searchprime.experiment.carry`): restored into ``out_dir`` first,
    kept in step after every stage, so the study can go on from it on another machine.
    """
    from searchprime.records.lock import OutputLock

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.seeds:
        from searchprime.experiment.seeds import run_seeds

        def one(c: ExperimentConfig, o: Path) -> dict[str, Any]:
            sub = Path(carry) / o.name if carry is not None else None
            return run_experiment(c, o, progress=progress, log=log, carry=sub)

        with OutputLock(out, purpose="searchprime experiment (seeds)"):
            return run_seeds(cfg, out, one, log=log)
    # one study per folder at a time: a second `experiment` on it is refused, naming the first
    with OutputLock(out, purpose="searchprime experiment"):
        if carry is None:
            return _run_study(cfg, out, progress, log)
        from searchprime.experiment.carry import CarrySync, unpack

        restored = unpack(carry, out)
        if restored:
            log(f"restored {len(restored)} result files from {carry}")
        with CarrySync(out, Path(carry)) as sync:
            return _run_study(cfg, out, progress, log, sync)


def _run_study(
    cfg: ExperimentConfig, out: Path, progress: ProgressFactory, log: Log, carry: Any = None
) -> dict:
    _check_same_settings(cfg, out / "experiment.json")
    atomic_write_text(out / "experiment.json", cfg.model_dump_json(indent=2) + "\n")
    study = Study(cfg, out, progress, log, carry=carry)
    study.build_world()
    study.run_teachers()
    study.prime_data()
    study.train_and_evaluate()
    study.teacher_rows()
    study.behavior_stats()
    study.flag_degenerate()
    study.compare()
    return study.write()

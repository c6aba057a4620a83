"""Where a study stands, read from its folder alone: nothing runs and nothing is written, so it
is safe beside the study itself (``searchprime experiment FILE --out DIR --status``).

Per model, in run order: its training (SFT or RL: done, the last step logged, the last
checkpoint a resume starts from), and how many of its dev rollouts, entropy-journal lines and
sampled rollouts exist against how many the settings ask for; then the ledger's last event
(which stage a live or killed run was in) and the work it has recorded.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from searchprime.agent.rollout import finished_keys
from searchprime.experiment.analysis import entropy_journal, legacy_entropy
from searchprime.experiment.config import ExperimentConfig, RLRun
from searchprime.records import Task, iter_json_lines, read_jsonl

__all__ = ["ModelStatus", "StudyStatus", "study_status", "training_dirs"]


@dataclass(frozen=True)
class ModelStatus:
    """One model's progress; a count pair is (done, wanted), ``None`` where not asked for."""

    name: str
    parent: str | None
    training: str
    trained: bool
    rollouts: tuple[int, int]
    entropy: tuple[int, int] | None
    samples: tuple[int, int] | None

    @property
    def evaluated(self) -> bool:
        """Every dev rollout, entropy line and sampled rollout the settings ask for exists."""
        pairs = [p for p in (self.rollouts, self.entropy, self.samples) if p is not None]
        return all(got >= want for got, want in pairs)

    @property
    def done(self) -> bool:
        return self.trained and self.evaluated


@dataclass(frozen=True)
class StudyStatus:
    models: list[ModelStatus]
    last_event: dict[str, Any] | None
    running: bool
    work_hours: float


def _dev_keys(out: Path, n: int) -> list[str]:
    path = out / "world" / "tasks" / "dev.jsonl"
    return [t.id for t in read_jsonl(path, Task)][:n] if path.exists() else []


def _checkpoint(dest: Path) -> int | None:
    """The step of the last complete checkpoint in ``dest`` (``checkpoint-<step>``)."""
    from searchprime.train.resume import last_checkpoint

    found = last_checkpoint(dest)
    return int(Path(found).name.rsplit("-", 1)[1]) if found else None


def training_dirs(cfg: ExperimentConfig, out: Path) -> dict[str, tuple[Path, str]]:
    """Per trained model (not the prompt arms), its training folder and the file that marks
    the training finished."""
    from searchprime.rl.summary import SUMMARY_FILE as RL_DONE
    from searchprime.train.sft_summary import SUMMARY_FILE as SFT_DONE

    dirs = {name: (out / "sft" / name, SFT_DONE) for name in ["base", *(a.name for a in cfg.arms)]}
    runs = cfg.rl.plan() if cfg.rl else []
    dirs.update((r.name, (out / "rl" / r.folder, RL_DONE)) for r in runs)
    return dirs


def _training(
    cfg: ExperimentConfig, name: str, dirs: dict[str, tuple[Path, str]], runs: dict[str, RLRun]
) -> tuple[str, bool]:
    if name not in dirs:  # a prompt arm: its model under another prompt, nothing to train
        return "none (prompt arm)", True
    dest, done = dirs[name]
    if (dest / done).exists():
        from searchprime.experiment.carry import has_weights

        # a carried study (``--carry``) brings a run's summary back, not its weights
        return ("done" if has_weights(dest) else "done, weights not here"), True
    if not dest.exists():
        return "not started", False
    ckpt = _checkpoint(dest)
    resume = f"resumes from step {ckpt}" if ckpt is not None else "no checkpoint yet"
    if name in runs and cfg.rl is not None:
        steps = (
            sum(1 for _ in iter_json_lines(dest / "steps.jsonl"))
            if (dest / "steps.jsonl").exists()
            else 0
        )
        return f"step {steps}/{cfg.rl.max_steps} logged, {resume}", False
    return f"in progress, {resume}", False


def _running(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def study_status(cfg: ExperimentConfig, out: str | Path) -> StudyStatus:
    """The progress of the study ``cfg`` in folder ``out`` (read-only)."""
    from searchprime.experiment.ledger import LEDGER_FILE

    out = Path(out)
    ev = out / "eval"
    dev = _dev_keys(out, cfg.eval.dev_n)
    greedy = {(k, 0) for k in dev}
    sampled = {
        (k, a) for k in dev[: cfg.eval.samples_tasks or len(dev)] for a in range(cfg.eval.samples)
    }
    runs = {r.name: r for r in (cfg.rl.plan() if cfg.rl else [])}
    dirs = training_dirs(cfg, out)
    models = []
    for name, parent in cfg.models().items():
        training, trained = _training(cfg, name, dirs, runs)
        entropy = None
        if cfg.eval.entropy:
            if legacy_entropy(ev, name) is not None:
                entropy = (len(dev), len(dev))  # a whole-pass result from before the journal
            else:
                entropy = (len(finished_keys(entropy_journal(ev, name)) & greedy), len(dev))
        samples = None
        if cfg.eval.samples > 1 and name in (cfg.eval.samples_models or [name]):
            samples = (len(finished_keys(ev / f"{name}.samples.jsonl") & sampled), len(sampled))
        rollouts = (len(finished_keys(ev / f"{name}.jsonl") & greedy), len(dev))
        models.append(ModelStatus(name, parent, training, trained, rollouts, entropy, samples))
    ledger = out / LEDGER_FILE
    events = [e for _, e in iter_json_lines(ledger)] if ledger.exists() else []
    last = events[-1] if events else None
    hours = sum(float(e.get("seconds") or 0.0) for e in events) / 3600
    running = last is not None and last.get("event") == "start" and _running(last.get("pid"))
    return StudyStatus(models, last, running, round(hours, 2))

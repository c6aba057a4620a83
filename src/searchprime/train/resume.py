"""Which checkpoint a training run resumes from (SFT and RL share the rule).

:func:`resume_checkpoint` answers an explicit request (``--resume`` or a path).
:func:`plan_run` decides for a run folder as a whole: a folder holding checkpoints made with the
same settings (a fingerprint stored in the folder at start) resumes by default, ``overwrite``
starts over, and a folder holding a run of other settings is refused, naming what differs.
Only complete checkpoints count: ``trainer_state.json`` is the last file the Trainer writes into
one, so a run killed while saving leaves a folder without it, and the previous one is used.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from searchprime.errors import ResumeError
from searchprime.records import atomic_write_text
from searchprime.train.fingerprint import diff_settings, normalise

__all__ = [
    "ResumePlan",
    "last_checkpoint",
    "plan_run",
    "prune_checkpoints",
    "resume_checkpoint",
]

_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def _checkpoint_dirs(out: Path) -> list[Path]:
    """``checkpoint-N`` folders in ``out``, by step."""
    if not out.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in out.iterdir() if (m := _CHECKPOINT.match(p.name))]
    return [p for _, p in sorted(found) if p.is_dir()]


def _complete(ckpt: Path) -> bool:
    try:
        state = json.loads((ckpt / "trainer_state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(state, dict) and "global_step" in state


def last_checkpoint(output_dir: str | Path) -> str | None:
    """The last complete ``checkpoint-*`` folder in ``output_dir`` (``None`` when none)."""
    done = [p for p in _checkpoint_dirs(Path(output_dir)) if _complete(p)]
    return str(done[-1]) if done else None


def prune_checkpoints(output_dir: str | Path, finished_file: str) -> int:
    """Remove the ``checkpoint-*`` folders of a finished run; return the bytes freed.

    A run is finished when ``finished_file`` (its summary, written after the final model) is in
    ``output_dir``; the checkpoints only served to resume it (SmolLM2's hold 1.6 GB each, most
    of it optimizer state). An unfinished run is left alone.
    """
    out = Path(output_dir)
    if not (out / finished_file).is_file():
        return 0
    freed = 0
    for ckpt in _checkpoint_dirs(out):
        freed += sum(f.stat().st_size for f in ckpt.rglob("*") if f.is_file())
        shutil.rmtree(ckpt)
    return freed


def resume_checkpoint(resume: bool | str, output_dir: str) -> str | None:
    """``False``/``""``: none; ``True``: the last complete ``checkpoint-*`` in ``output_dir``;
    or a path.

    Raises :class:`ResumeError` when the asked-for checkpoint does not exist.
    """
    if resume is False or resume == "":
        return None
    if resume is True:
        last = last_checkpoint(output_dir)
        if last is None:
            raise ResumeError(
                f"{output_dir}: no checkpoint to resume from (no complete checkpoint-* folder)"
            )
        return last
    if not Path(str(resume)).is_dir():
        raise ResumeError(f"resume: checkpoint folder {resume} not found")
    return str(resume)


@dataclass(frozen=True)
class ResumePlan:
    """What a run does with its output folder."""

    checkpoint: str | None
    """Resume from this checkpoint; ``None``: start at step 0."""
    finished: bool = False
    """The folder already holds the finished run of these settings: nothing to train."""
    changed: tuple[str, ...] = ()
    """Settings that differ from the stored ones and were accepted (explicit resume)."""


def _read_settings(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ResumeError(f"{path}: unreadable ({exc}); --overwrite starts over") from None
    return data if isinstance(data, dict) else {}


def _clear(out: Path, names: Collection[str]) -> None:
    for ckpt in _checkpoint_dirs(out):
        shutil.rmtree(ckpt, ignore_errors=True)  # other ranks of a multi-process launch clear too
    for name in names:
        (out / name).unlink(missing_ok=True)


def plan_run(
    output_dir: str | Path,
    settings: dict[str, Any],
    *,
    resume: bool | str | Literal["auto"] = "auto",
    overwrite: bool = False,
    settings_file: str,
    finished_file: str | None = None,
    length_keys: Collection[str] = (),
) -> ResumePlan:
    """Decide how a run uses ``output_dir``, store ``settings`` there, and return the plan.

    ``resume``: ``"auto"`` resumes a run of the same settings when there is one; ``True``
    must resume (and accepts changes to ``length_keys`` only, e.g. a larger ``trl.max_steps``);
    a path resumes from that checkpoint as asked; ``False`` never resumes. ``overwrite``
    deletes the folder's checkpoints and records first. ``finished_file`` marks a finished run
    (it is removed whenever training starts again, so it only marks the settings stored).
    Raises :class:`ResumeError`, naming what differs, when the folder holds another run.
    """
    out = Path(output_dir)
    path = out / settings_file
    records = [settings_file] + ([finished_file] if finished_file else [])
    explicit = resume is not False and resume != "auto"
    if overwrite and explicit:
        raise ResumeError("resume and overwrite exclude each other: pick one")
    if overwrite:
        _clear(out, records)
    old = _read_settings(path)
    dirs = _checkpoint_dirs(out)
    finished = finished_file is not None and (out / finished_file).exists()
    plan = ResumePlan(None)
    if isinstance(resume, str) and resume != "auto":
        plan = ResumePlan(resume_checkpoint(resume, str(out)))
    elif dirs or finished:
        plan = _plan_existing(out, old, normalise(settings), resume, finished, length_keys)
    elif resume is True:
        raise ResumeError(f"{out}: no checkpoint to resume from (no complete checkpoint-* folder)")
    if not plan.finished:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(settings, indent=2, sort_keys=True, default=str) + "\n")
        if finished_file:
            (out / finished_file).unlink(missing_ok=True)
    return plan


def _plan_existing(
    out: Path,
    old: dict[str, Any] | None,
    new: dict[str, Any],
    resume: bool | str,
    finished: bool,
    length_keys: Collection[str],
) -> ResumePlan:
    hint = "--overwrite starts over, or choose another output folder"
    if old is None:
        if resume is True:  # a folder from before settings were stored: trust the request
            return ResumePlan(resume_checkpoint(True, str(out)))
        raise ResumeError(
            f"{out}: holds checkpoints without a record of their settings: "
            f"--resume continues them, {hint}"
        )
    changed = diff_settings(old, new)
    accepted = resume is True and all(k in length_keys for k in changed)
    if changed and not accepted:
        shown = "; ".join(f"{k}: {v}" for k, v in list(changed.items())[:3])
        more = f" (+{len(changed) - 3} more)" if len(changed) > 3 else ""
        raise ResumeError(f"{out}: holds a run with other settings ({shown}{more}): {hint}")
    if resume is False:
        raise ResumeError(f"{out}: holds a run of these settings and resume is off: {hint}")
    if finished and not changed:
        return ResumePlan(None, finished=True)
    ckpt = last_checkpoint(out)
    if ckpt is None and resume is True:
        raise ResumeError(f"{out}: no checkpoint to resume from (no complete checkpoint-* folder)")
    return ResumePlan(ckpt, changed=tuple(changed))

"""Which checkpoint a training run resumes from (SFT and RL share the rule)."""

from __future__ import annotations

from pathlib import Path

from searchprime.errors import ResumeError

__all__ = ["resume_checkpoint"]


def resume_checkpoint(resume: bool | str, output_dir: str) -> str | None:
    """``False``/``""``: none; ``True``: the last ``checkpoint-*`` in ``output_dir``; or a path.

    Raises :class:`ResumeError` when the asked-for checkpoint does not exist.
    """
    if resume is False or resume == "":
        return None
    if resume is True:
        from transformers.trainer_utils import get_last_checkpoint

        out = Path(output_dir)
        last = get_last_checkpoint(str(out)) if out.is_dir() else None
        if last is None:
            raise ResumeError(f"{output_dir}: no checkpoint-* folder to resume from")
        return last
    if not Path(str(resume)).is_dir():
        raise ResumeError(f"resume: checkpoint folder {resume} not found")
    return str(resume)

"""Experiment tracking of a training run (``report_to``): TensorBoard, and wandb kept offline.

TensorBoard writes event files under ``<output_dir>/runs/`` (transformers' default). wandb runs
with ``WANDB_MODE=offline`` and ``WANDB_DIR=<output_dir>`` unless the user set them, so nothing
leaves the machine; ``wandb sync <output_dir>/wandb/offline-run-*`` uploads a run later.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from searchprime._lazy import require

__all__ = ["trackers", "tracking"]

#: The packages each tracker needs (all in the ``track`` extra).
_PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb"}


def trackers(report_to: Any) -> list[str]:
    """The trackers named by a ``report_to`` value ('none' -> [])."""
    if report_to is None or report_to == "none":
        return []
    return [report_to] if isinstance(report_to, str) else [t for t in report_to if t != "none"]


@contextmanager
def tracking(report_to: Any, output_dir: str | Path) -> Iterator[None]:
    """Prepare the trackers of one run for its duration; finish its wandb run at the end."""
    names = trackers(report_to)
    for name in names:
        require(_PACKAGES[name], "track")
    if "wandb" not in names:
        yield
        return
    Path(output_dir).mkdir(parents=True, exist_ok=True)
    saved = {key: os.environ.get(key) for key in ("WANDB_MODE", "WANDB_DIR")}
    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("WANDB_DIR", str(output_dir))
    try:
        yield
    finally:
        wandb = sys.modules.get("wandb")
        if wandb is not None:
            # transformers leaves the run open (the next run of this process would log into
            # it), and wandb keeps the settings it first read (WANDB_DIR) until torn down
            if wandb.run is not None:
                wandb.finish()
            wandb.teardown()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

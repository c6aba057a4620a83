"""A study's results in a small folder that can travel (``searchprime experiment --carry DIR``).

A long study outlives the machine it started on: a preempted cluster job lands on another node,
a CPU session's VM may not come back. The trained weights are large and can be made again;
what took the hours to measure is small — the dev rollouts, their labels, the entropy journal,
the sampled rollouts, the RL step logs and the stage ledger. :func:`pack` copies those (gzipped,
byte-stable, so an unchanged file leaves version control alone) into a folder that can be
committed or synced; :func:`unpack` puts them back into an output folder. The runner then
trains only the models that something still to do needs (:func:`models_to_train`).

Weights never travel: a model whose evaluation came back this way but whose weights are gone is
trained again only when an RL run or an evaluation still to do starts from it.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from searchprime.experiment.config import ExperimentConfig
from searchprime.records import atomic_write_bytes

if TYPE_CHECKING:
    from searchprime.experiment.status import ModelStatus

__all__ = [
    "CarrySync",
    "has_weights",
    "models_to_train",
    "pack",
    "eval_files",
    "set_aside",
    "unpack",
]

#: Files at the top of the output folder that travel.
_TOP = ("experiment.json", "stages.jsonl", "report.json")
#: Files in a finished SFT / RL run's folder that travel (never weights or checkpoints).
_RUN_FILES = (
    "searchprime_sft.json",
    "searchprime_sft_settings.json",
    "searchprime_rl.json",
    "steps.jsonl",
)
_SUFFIX = ".gz"


def _carried(out: Path) -> Iterator[Path]:
    """The files of ``out`` that travel, relative to it."""
    for name in _TOP:
        if (out / name).is_file():
            yield Path(name)
    if (out / "eval").is_dir():
        for p in sorted((out / "eval").rglob("*")):
            # a writer's lock file and an atomic write's temp file are not results
            if p.is_file() and p.suffix != ".lock" and not p.name.startswith("."):
                yield p.relative_to(out)
    for stage in ("sft", "rl"):
        if not (out / stage).is_dir():
            continue
        for run in sorted(p for p in (out / stage).iterdir() if p.is_dir()):
            for name in _RUN_FILES:
                if (run / name).is_file():
                    yield (run / name).relative_to(out)


def _carried_copy(dest: Path, rel: Path) -> Path:
    """Where ``dest`` keeps the copy of the result file ``rel`` (relative to the output)."""
    return dest / (str(rel) + _SUFFIX)


def _complete_lines(data: bytes, path: Path) -> bytes:
    """A JSONL file being appended to may end in a torn line: keep whole lines only."""
    if path.suffix != ".jsonl" or data.endswith(b"\n") or not data:
        return data
    return data[: data.rfind(b"\n") + 1]


def pack(out: str | Path, dest: str | Path) -> list[Path]:
    """Copy ``out``'s results (not weights) into ``dest`` as ``<path>.gz``; return the files
    written (an unchanged file is not rewritten). Safe while the study runs."""
    out, dest = Path(out), Path(dest)
    written = []
    for rel in _carried(out):
        data = _complete_lines((out / rel).read_bytes(), rel)
        # mtime 0: the same content gives the same bytes, so version control sees no change
        blob = gzip.compress(data, compresslevel=9, mtime=0)
        target = _carried_copy(dest, rel)
        if target.is_file() and target.read_bytes() == blob:
            continue
        atomic_write_bytes(target, blob)
        written.append(target)
    return written


def unpack(src: str | Path, out: str | Path) -> list[Path]:
    """Restore the results carried in ``src`` into ``out``; return the files restored.

    A file ``out`` lacks is restored; one it has is replaced only when the carried copy
    extends it (an append-only log or rollout file that ran further elsewhere). Any other
    difference keeps ``out``'s file: the folder being resumed is the one that ran last.
    """
    src, out = Path(src), Path(out)
    restored = []
    if not src.is_dir():
        return restored
    for blob in sorted(src.rglob("*" + _SUFFIX)):
        rel = blob.relative_to(src)
        target = out / str(rel)[: -len(_SUFFIX)]
        try:
            data = gzip.decompress(blob.read_bytes())
        except (OSError, EOFError) as e:
            raise ValueError(f"{blob}: not a readable gzip file ({e})") from None
        if target.is_file():
            have = target.read_bytes()
            if len(data) <= len(have) or not data.startswith(have):
                continue
        atomic_write_bytes(target, data)
        restored.append(target)
    return restored


def has_weights(model_dir: Path) -> bool:
    """Whether a trained model's weights are in ``model_dir`` (not only its summary)."""
    return (model_dir / "config.json").is_file() and any(model_dir.glob("*.safetensors"))


def models_to_train(
    cfg: ExperimentConfig, status: dict[str, ModelStatus], weights: dict[str, bool]
) -> set[str]:
    """The wanted models whose weights a run needs: those not fully evaluated, and those a
    model still to be trained starts from (its parent, recursively).

    ``status``: every model's :class:`~searchprime.experiment.status.ModelStatus`;
    ``weights``: per trained model, whether its weights are here now. A prompt arm needs its
    model's weights while its own evaluation is unfinished.
    """
    wanted = cfg.wanted()
    need: set[str] = set()
    # children come after their parents in cfg.models(): walk back, so a child's need is
    # known when its parent is reached
    for name, parent in reversed(list(cfg.models().items())):
        if name not in wanted:
            continue
        evaluated = status[name].evaluated
        if name not in weights:  # a prompt arm: its model under another prompt
            if not evaluated and parent is not None:
                need.add(parent)
            continue
        if not evaluated:
            need.add(name)
        if name in need and not weights[name] and parent is not None:
            need.add(parent)
    return need


class CarrySync:
    """Keep ``dest`` in step with ``out`` while a study runs: :meth:`sync` on demand (after
    each stage) and every ``every`` seconds from a daemon thread, so a machine that vanishes
    mid-stage loses at most that much of a long evaluation."""

    def __init__(self, out: Path, dest: Path, every: float = 600.0) -> None:
        import threading

        self.out, self.dest, self.every = out, dest, every
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="carry-sync", daemon=True)

    def sync(self) -> list[Path]:
        with self._lock:
            return pack(self.out, self.dest)

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.sync()
            except OSError:  # a full disk or a vanished file: the next stage end retries
                pass

    def __enter__(self) -> CarrySync:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sync()


def eval_files(out: Path, name: str, kind: str) -> list[Path]:
    """Model ``name``'s evaluation files of one kind (``rollouts``, ``entropy``, ``samples``)."""
    from searchprime.experiment.analysis import entropy_journal

    ev = out / "eval"
    if kind == "rollouts":
        return [ev / f"{name}{s}" for s in (".jsonl", ".labelled.jsonl", ".grounded.jsonl")]
    if kind == "entropy":
        return [entropy_journal(ev, name)]
    if kind == "samples":
        return [ev / f"{name}.samples.jsonl"]
    raise ValueError(f"unknown evaluation kind {kind!r}")


def set_aside(out: Path, name: str, kind: str, carried: Path | None = None) -> list[Path]:
    """Move model ``name``'s ``kind`` evaluation files to ``out/eval/stale/`` (and drop their
    stamp); return the files moved.

    The runner does this to an unfinished file that the weights at hand did not write:
    finishing it would mix two models in one file. The carried copies of the moved files (and
    of the stamp) are removed from ``carried`` too, so another machine does not bring them back.
    """
    from searchprime.experiment.provenance import stamp, stamp_file

    ev = out / "eval"
    stamp(ev, name, kind, None)
    if carried is not None:  # the next sync carries the stamps that are left
        _carried_copy(carried, stamp_file(ev, name).relative_to(out)).unlink(missing_ok=True)
    moved = []
    for f in (f for f in eval_files(out, name, kind) if f.exists()):
        target = ev / "stale" / f.name
        target.parent.mkdir(parents=True, exist_ok=True)
        f.replace(target)
        moved.append(target)
        if carried is not None:
            _carried_copy(carried, f.relative_to(out)).unlink(missing_ok=True)
    return moved

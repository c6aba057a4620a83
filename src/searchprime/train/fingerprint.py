"""Fingerprints of a training run's inputs, and how two fingerprints differ.

A run folder stores the fingerprint of the settings it was started with, so a rerun can tell
"the same run, resume it" from "another run, refuse to mix it in". Files are identified by
size and SHA-256; large files (model weights) by size and the SHA-256 of three 1 MiB samples
(head, middle, tail), so a multi-GB checkpoint is fingerprinted in milliseconds and a
rewritten one is still told apart.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

__all__ = ["diff_settings", "file_digest", "model_digest", "normalise"]

#: Files up to this size are hashed whole.
FULL_HASH_BYTES = 16 * 2**20
_SAMPLE = 2**20


def file_digest(path: str | Path, *, full_up_to: int = FULL_HASH_BYTES) -> dict[str, Any]:
    """``{"bytes": n, "sha256": hex}``; above ``full_up_to`` bytes the hash covers 3 samples."""
    p = Path(path)
    size = p.stat().st_size
    h = hashlib.sha256()
    with p.open("rb") as f:
        if size <= full_up_to:
            for block in iter(lambda: f.read(2**20), b""):
                h.update(block)
            return {"bytes": size, "sha256": h.hexdigest()}
        for offset in (0, size // 2 - _SAMPLE // 2, size - _SAMPLE):
            f.seek(offset)
            h.update(f.read(_SAMPLE))
    return {"bytes": size, "sha256_sampled": h.hexdigest()}


def model_digest(model: str) -> dict[str, Any]:
    """A local model folder by its files' digests (not its path); a hub id by name."""
    p = Path(model)
    if not p.is_dir():
        return {"id": model}
    files = sorted(x for x in p.iterdir() if x.is_file() and not x.name.startswith("."))
    return {"files": {x.name: file_digest(x) for x in files}}


def normalise(value: Any) -> Any:
    """``value`` as it reads back from JSON (tuples become lists, keys strings)."""
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def _flatten(value: Any, prefix: str, out: dict[str, Any]) -> None:
    if isinstance(value, dict) and value:
        for k, v in value.items():
            _flatten(v, f"{prefix}.{k}" if prefix else str(k), out)
    else:
        out[prefix] = value


def _short(value: Any) -> str:
    text = "unset" if value is _MISSING else json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


_MISSING = object()


def diff_settings(old: dict[str, Any], new: dict[str, Any]) -> dict[str, str]:
    """Dotted keys whose values differ, each with ``"<old> then, <new> now"``.

    >>> diff_settings({"trl": {"lr": 1}}, {"trl": {"lr": 2}})
    {'trl.lr': '1 then, 2 now'}
    """
    a: dict[str, Any] = {}
    b: dict[str, Any] = {}
    _flatten(normalise(old), "", a)
    _flatten(normalise(new), "", b)
    out = {}
    for key in sorted(a.keys() | b.keys()):
        va, vb = a.get(key, _MISSING), b.get(key, _MISSING)
        if va != vb:
            out[key] = f"{_short(va)} then, {_short(vb)} now"
    return out

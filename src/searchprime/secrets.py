"""Secrets (API keys, bearer tokens) that must never be written or printed.

Whatever reads a secret from the environment registers its value here (:func:`register_env`);
every text that leaves the process through a record, an error message or the console goes
through :func:`mask`, which replaces each occurrence of a registered secret, and of any piece
of :data:`MIN_FRAGMENT` or more of its characters, with ``***``. Mask before you cut: a text
truncated first can keep the head of a key that straddled the cut.

The registry is process-wide on purpose: a key read by the LLM client must also be masked in
the error text a search backend or the CLI prints about it.

>>> register("sk-abcdefghijklmnop")
>>> mask("auth: Bearer sk-abcdefghijklmnop, or half of it: sk-abcdefg")
'auth: Bearer ***, or half of it: ***'
"""

from __future__ import annotations

import json
import os
import threading
from urllib.parse import quote

__all__ = ["MASK", "MIN_FRAGMENT", "mask", "register", "register_env"]

MASK = "***"
#: Pieces of a secret this long or longer are masked wherever they appear.
MIN_FRAGMENT = 8
#: Shorter secrets than this are not masked at all: a one-letter "key" would garble every text.
MIN_SECRET = 4

_lock = threading.Lock()
_secrets: set[str] = set()
# every MIN_FRAGMENT-character window of every registered secret (and of its escaped forms),
# plus whole secrets shorter than MIN_FRAGMENT; rebuilt on register, read without the lock
_needles: tuple[str, ...] = ()


def register(value: str | None) -> None:
    """Mask ``value`` (and its pieces) from now on in this process."""
    global _needles
    if not value or len(value.strip()) < MIN_SECRET:
        return
    with _lock:
        if value in _secrets:
            return
        _secrets.add(value)
        needles = set(_needles)
        for form in _forms(value):
            if len(form) < MIN_FRAGMENT:
                needles.add(form)
            else:
                needles.update(form[i : i + MIN_FRAGMENT] for i in range(len(form) - 7))
        _needles = tuple(sorted(needles))


def register_env(name: str | None) -> str | None:
    """Register the value of environment variable ``name`` (if set); return the value."""
    value = os.environ.get(name) if name else None
    register(value)
    return value


def _forms(value: str) -> set[str]:
    """The secret as written raw, JSON-escaped (also with ``\\/``) and URL-quoted."""
    escaped = json.dumps(value)[1:-1]
    return {value, escaped, escaped.replace("/", "\\/"), quote(value, safe="")}


def mask(text: str) -> str:
    """``text`` with every registered secret, and every 8+-character piece of one, as ``***``."""
    needles = _needles
    if not needles or not text:
        return text
    spans: list[tuple[int, int]] = []
    for needle in needles:
        at = text.find(needle)
        while at >= 0:
            spans.append((at, at + len(needle)))
            at = text.find(needle, at + 1)
    if not spans:
        return text
    spans.sort()
    out: list[str] = []
    pos = 0
    start, end = spans[0]
    for s, e in spans[1:]:
        if s <= end:  # overlapping or touching windows are one piece of the secret
            end = max(end, e)
            continue
        out += [text[pos:start], MASK]
        pos, start, end = end, s, e
    out += [text[pos:start], MASK, text[end:]]
    return "".join(out)

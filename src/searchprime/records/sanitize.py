"""The text boundary: every text that enters a record is made writable here.

A model reply may hold a lone surrogate (``"\\ud800"`` is valid JSON, but no UTF-8 encoder
takes it); a backend's notes may hold objects JSON cannot express; an error message may be a
multi-line dump that echoes an API key. :class:`TextBoundary` turns each text into one that
can always be written: lone surrogates become U+FFFD (and are counted), registered secrets are
masked (:mod:`searchprime.secrets`), other values become JSON scalars. :func:`format_error`
turns an exception into one readable, bounded line.

>>> b = TextBoundary()
>>> b.text("ok \\ud800 then")
'ok \\ufffd then'
>>> b.replaced
1
>>> format_error(KeyError("choices"))
"KeyError: 'choices'"
"""

from __future__ import annotations

import math
import re
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from searchprime.secrets import mask

__all__ = ["ERROR_CHARS", "REPLACEMENT", "TextBoundary", "clean_text", "format_error", "one_line"]

REPLACEMENT = "\ufffd"
#: The longest error text written into a record (characters).
ERROR_CHARS = 400

_SURROGATE = re.compile("[\ud800-\udfff]")
M = TypeVar("M", bound=BaseModel)


def clean_text(text: str) -> tuple[str, int]:
    """``text`` with lone surrogates replaced by U+FFFD and secrets masked; and the count."""
    n = 0
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # only surrogates fail a strict UTF-8 encode
            text, n = _SURROGATE.subn(REPLACEMENT, text)
    return mask(text), n


def one_line(text: str, limit: int = ERROR_CHARS) -> str:
    """``text`` cleaned, masked, on one line (whitespace runs collapsed), at most ``limit``
    characters (cut with ``…``). Masking comes first, so a cut never keeps part of a key."""
    text = " ".join(clean_text(text)[0].split())
    return text if len(text) <= limit else text[: max(0, limit - 1)] + "…"


def format_error(exc: BaseException, limit: int = ERROR_CHARS) -> str:
    """One readable line for ``exc``: ``Type: message``, bounded, secrets masked.

    A pydantic ``ValidationError`` gives its first problem (``Model.field: msg``) and how many
    more there are, never the multi-line dump with the input echoed.

    >>> format_error(ValueError("bad\\n  value"))
    'ValueError: bad value'
    """
    name = type(exc).__name__
    if isinstance(exc, ValidationError):
        problems = exc.errors(include_url=False, include_input=False)
        first = problems[0] if problems else {}
        loc = ".".join(str(p) for p in first.get("loc", ())) or "<value>"
        message = f"{exc.title}.{loc}: {first.get('msg', 'invalid')}"
        if len(problems) > 1:
            message += f" (+{len(problems) - 1} more)"
    else:
        try:
            message = str(exc)
        except Exception:  # noqa: BLE001 - a broken __str__ must not hide the error
            message = ""
    return one_line(f"{name}: {message}" if message.strip() else name, limit)


class TextBoundary:
    """Cleans the texts of one record as they enter it; :attr:`replaced` counts the lone
    surrogates replaced so far."""

    def __init__(self) -> None:
        self.replaced = 0

    def text(self, value: str) -> str:
        """A writable copy of ``value`` (a non-string becomes its ``str``)."""
        if not isinstance(value, str):
            value = str(value)
        value, n = clean_text(value)
        self.replaced += n
        return value

    def optional(self, value: str | None) -> str | None:
        """:meth:`text`, keeping ``None``."""
        return None if value is None else self.text(value)

    def value(self, obj: Any) -> Any:
        """A JSON-writable copy of ``obj``: strings cleaned, containers walked, numpy scalars
        unwrapped, non-finite floats to ``None``, anything else to its cleaned ``str``."""
        if isinstance(obj, str):
            return self.text(obj)
        if obj is None or isinstance(obj, (bool, int)):
            return obj
        if isinstance(obj, float):
            return obj if math.isfinite(obj) else None
        if isinstance(obj, dict):
            return {self.text(str(k)): self.value(v) for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return [self.value(v) for v in obj]
        if isinstance(obj, BaseModel):
            return self.value(obj.model_dump(mode="python"))
        item = getattr(obj, "item", None)  # numpy scalars
        if callable(item):
            try:
                return self.value(item())
            except (TypeError, ValueError):
                pass
        return self.text(str(obj))

    def model(self, record: M) -> M:
        """``record`` with every text cleaned (the same object when nothing changed)."""
        dumped = record.model_dump(mode="python")
        before = self.replaced
        cleaned = self.value(dumped)
        if cleaned == dumped and self.replaced == before:
            return record
        return type(record).model_validate(cleaned)

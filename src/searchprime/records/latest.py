"""The last record per key wins: how readers of finished files treat repeats and partial tails.

A key (a trajectory's ``(task_id, attempt)``) written more than once means a rerun retried an
attempt, or two writers shared a file; the later record supersedes the earlier ones. A final
line cut short by a killed writer is skipped. :class:`ReadReport` says what was left out, so
every reader can tell the user.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import TypeVar

__all__ = ["ReadReport", "latest_per_key"]

R = TypeVar("R")

#: Duplicated keys named in :meth:`ReadReport.notes` (the report itself keeps all of them).
_EXAMPLES = 3


@dataclass
class ReadReport:
    """What a reader skipped in one file."""

    path: str = "<input>"
    records: int = 0
    """Records kept (one per key when deduplicated)."""
    truncated_line: int | None = None
    """Line number of a partial last line that was skipped (the remains of a killed writer)."""
    duplicate_lines: dict[Hashable, list[int]] = field(default_factory=dict)
    """Each key seen more than once -> its line numbers in file order; the last one was used."""

    @property
    def truncated(self) -> int:
        """Truncated lines skipped (0 or 1)."""
        return 0 if self.truncated_line is None else 1

    @property
    def duplicates(self) -> int:
        """Earlier records skipped because a later record had the same key."""
        return sum(len(lines) - 1 for lines in self.duplicate_lines.values())

    def notes(self) -> list[str]:
        """One line per kind of skip, empty when nothing was skipped."""
        notes = []
        if self.truncated_line is not None:
            notes.append(
                f"{self.path}:{self.truncated_line}: skipped a truncated last line "
                "(the remains of a killed writer)"
            )
        if self.duplicate_lines:
            shown = list(self.duplicate_lines.items())[:_EXAMPLES]
            examples = "; ".join(
                f"{key!r} at lines {', '.join(map(str, lines))} -> line {lines[-1]}"
                for key, lines in shown
            )
            more = len(self.duplicate_lines) - len(shown)
            notes.append(
                f"{self.path}: {len(self.duplicate_lines)} key(s) written more than once; "
                f"skipped {self.duplicates} earlier record(s) and used the last record of each "
                f"({examples}{f'; {more} more' if more else ''})"
            )
        return notes


def latest_per_key(
    numbered: Iterable[tuple[int, R]],
    key: Callable[[R], Hashable],
    report: ReadReport | None = None,
) -> tuple[list[R], ReadReport]:
    """Keep the last record of each key, placed where the key first appeared.

    ``numbered`` yields ``(line number, record)`` pairs, as
    :func:`~searchprime.records.iter_json_lines` does. Returns the kept records and
    ``report`` (a new one when not given) with ``records`` and ``duplicate_lines`` filled in.

    >>> rows = [(1, {"k": "a", "v": 1}), (2, {"k": "b", "v": 2}), (3, {"k": "a", "v": 3})]
    >>> kept, rep = latest_per_key(rows, key=lambda r: r["k"])
    >>> [r["v"] for r in kept], rep.duplicates, rep.duplicate_lines
    ([3, 2], 1, {'a': [1, 3]})
    """
    report = report if report is not None else ReadReport()
    latest: dict[Hashable, R] = {}
    lines: dict[Hashable, list[int]] = {}
    for line, record in numbered:
        k = key(record)
        latest[k] = record  # a dict keeps the first insertion's position
        lines.setdefault(k, []).append(line)
    report.duplicate_lines = {k: ls for k, ls in lines.items() if len(ls) > 1}
    report.records = len(latest)
    return list(latest.values()), report

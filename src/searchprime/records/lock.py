"""One writer per output: an advisory lock on an output file or folder.

    with OutputLock("runs/traj.jsonl", purpose="searchprime rollout"):
        ...  # another process asking for the same lock gets LockHeldError at once

The lock is ``fcntl.flock`` on a lock file: ``<file>.lock`` beside an output file, or
``<folder>/.searchprime.lock`` inside an existing output folder (``lock_path``). The kernel
drops it when the holder exits however it exits (``kill -9`` included), so a lock file left
behind never blocks anyone. The file holds the holder's pid, host, start time and purpose, which
the refusal names; it is removed on release. Without ``fcntl`` (Windows) the lock does nothing.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from searchprime.errors import ResumeError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks
    fcntl = None  # type: ignore[assignment]

__all__ = ["LockHeldError", "OutputLock", "lock_path"]


class LockHeldError(ResumeError):
    """Another process holds the output's lock (the CLI prints it as one line, exit 2)."""

    def __init__(self, target: Path, holder: dict[str, Any]):
        self.target = target
        self.holder = holder
        super().__init__(
            f"{target}: in use by another writer ({_describe(holder)}); "
            "wait for it to finish or choose another output"
        )


def _describe(holder: dict[str, Any]) -> str:
    if not holder.get("pid"):
        return "holder unknown, it is just starting"
    text = f"pid {holder['pid']}"
    if holder.get("host"):
        text += f" on {holder['host']}"
    if holder.get("started_at"):
        text += f", since {holder['started_at']}"
    if holder.get("purpose"):
        text += f", {holder['purpose']}"
    return text


def lock_path(target: str | Path) -> Path:
    """The lock file of ``target``: inside it for an existing folder, else beside it."""
    target = Path(target)
    if target.is_dir():
        return target / ".searchprime.lock"
    return target.with_name(target.name + ".lock")


class OutputLock:
    """An exclusive, non-blocking, advisory lock on ``target`` (a context manager).

    Args:
        target: the output file or folder to protect.
        purpose: what the holder is doing, shown to whoever is refused (no secrets here).
    """

    def __init__(self, target: str | Path, purpose: str = ""):
        self.target = Path(target)
        self.path = lock_path(self.target)
        self.purpose = purpose
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """True between :meth:`acquire` and :meth:`release`."""
        return self._fd is not None

    def acquire(self) -> OutputLock:
        """Take the lock or raise :class:`LockHeldError` naming the holder; never waits."""
        if self._fd is not None or fcntl is None:
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    os.close(fd)  # no locks on this filesystem: nothing to enforce with
                    return self
                holder = _read_holder(fd)
                os.close(fd)
                raise LockHeldError(self.target, holder) from None
            # a releasing holder unlinks the file before unlocking: if we locked that old
            # inode, the lock no longer guards the path; open the new file and try again
            if _same_file(fd, self.path):
                break
            os.close(fd)
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "purpose": self.purpose,
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        """Drop the lock and remove the lock file (safe to call twice)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            if _same_file(fd, self.path):
                os.unlink(self.path)  # while still locked: see acquire()
        os.close(fd)  # closing drops the flock

    def __enter__(self) -> OutputLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _same_file(fd: int, path: Path) -> bool:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)


def _read_holder(fd: int) -> dict[str, Any]:
    """The holder's note; it may be a moment late right after the holder took the lock."""
    for _ in range(5):
        try:
            raw = os.pread(fd, 4096, 0)
            holder = json.loads(raw) if raw.strip() else None
        except (OSError, ValueError):
            holder = None
        if isinstance(holder, dict):
            return holder
        time.sleep(0.02)
    return {}

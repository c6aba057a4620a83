"""Serve a GGUF model with llama.cpp's own OpenAI-compatible server, via ``xllamacpp``.

``xllamacpp`` (the ``serve`` extra) ships llama.cpp's ``llama-server`` as a Python extension:
building ``xllamacpp.Server(CommonParams)`` loads the model and starts the HTTP server on its own
threads. :class:`GGUFServer` builds it in a child process of its own
(:mod:`searchprime.llm._serve_child`) and adds a free port, a ``/health`` wait, ``base_url``
and a context manager.

Why a child process: stopping is then a process exit, bounded in time (the extension's
destructor joins llama.cpp's threads, and a study was seen to stall there and, once, in the
constructor when SIGTERM arrived while the threads started); llama.cpp's threads never see the
caller's signals; a crash in llama.cpp fails the requests instead of killing the caller; and
the model's memory is returned when the server stops. The child ends when its stdin ends, so
it never outlives the caller, even one killed with SIGKILL.

    >>> from searchprime.llm.models import smollm2_gguf_path
    >>> with GGUFServer(smollm2_gguf_path()) as server:          # doctest: +SKIP
    ...     llm = OpenAIChat(server.base_url)

The context is *unified*: ``ctx_size`` tokens of KV cache are shared by the ``parallel`` slots
and any one request may use all of them (llama.cpp ``--kv-unified``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from searchprime._lazy import require
from searchprime.errors import ConfigError, LLMError

__all__ = ["GGUFServer"]

#: How long a server that was asked to stop may take before it is killed.
_STOP_GRACE_S = 10.0


class GGUFServer:
    """llama.cpp's HTTP server for one GGUF model (started on construction).

    Args:
        model_path: the ``.gguf`` file.
        host: interface to bind (keep ``127.0.0.1`` unless you mean to expose it).
        port: TCP port; ``0`` picks a free one.
        parallel: server slots, i.e. requests decoded together (continuous batching).
        ctx_size: KV-cache tokens shared by all slots (each request may use up to this many).
        threads: CPU threads for decoding; ``None`` lets llama.cpp choose (all cores). On a
            CPU shared with other busy processes fewer threads are much faster: measured on a
            2-core machine under load 6, SmolLM2 ran at 42 tok/s with 1 thread, 10 with 2.
        api_key: optional key the server will demand (``Authorization: Bearer``); not logged.
        startup_timeout_s: how long to wait for ``/health`` to answer ``ok``.
        verbosity: llama.cpp log level; ``-1`` (default) keeps it quiet.
    """

    def __init__(
        self,
        model_path: str | Path,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        parallel: int = 4,
        ctx_size: int = 8192,
        threads: int | None = None,
        api_key: str | None = None,
        startup_timeout_s: float = 120.0,
        verbosity: int = -1,
    ):
        path = Path(model_path)
        if not path.is_file():
            raise ConfigError(f"{path}: GGUF model file not found")
        if parallel < 1:
            raise ConfigError(f"parallel: must be >= 1, got {parallel}")
        if ctx_size < 64:
            raise ConfigError(f"ctx_size: must be >= 64, got {ctx_size}")
        if not 0 <= port <= 65535:
            raise ConfigError(f"port: must be in 0..65535, got {port}")
        require("xllamacpp", "serve")  # a clear error here, not in the child
        self.model_path = path
        self.host = host
        self.parallel = parallel
        self.ctx_size = ctx_size
        self.threads = threads
        settings = {
            "model_path": str(path),
            "host": host,
            "port": port,
            "parallel": parallel,
            "ctx_size": ctx_size,
            "threads": threads,
            "verbosity": verbosity,
            "api_key": api_key,  # on the pipe, never on the command line
        }
        start = time.perf_counter()
        self._log = tempfile.TemporaryFile()  # llama.cpp's stderr, quoted when it fails
        self._proc: subprocess.Popen[bytes] | None = subprocess.Popen(
            [sys.executable, "-m", "searchprime.llm._serve_child"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
        )
        assert self._proc.stdin is not None
        self._proc.stdin.write(json.dumps(settings).encode() + b"\n")
        self._proc.stdin.flush()
        reply = self._first_reply(startup_timeout_s)
        if "error" in reply:
            why = reply["error"] + self._log_tail()  # read before close() drops the log
            self.close()
            raise LLMError(f"{path}: llama.cpp server failed to start: {why}")
        address = str(reply["address"]).rstrip("/")
        if not address.startswith("http"):
            address = f"http://{address}"
        self.root_url = address
        self.port = int(address.rsplit(":", 1)[1])
        self._wait_healthy(max(1.0, startup_timeout_s - (time.perf_counter() - start)))
        self.startup_s = time.perf_counter() - start

    @property
    def pid(self) -> int | None:
        """The server process's id (``None`` once stopped)."""
        return self._proc.pid if self._proc is not None else None

    def _first_reply(self, timeout_s: float) -> dict[str, Any]:
        """The child's one-line answer, or ``{"error": ...}`` when it died or timed out."""
        assert self._proc is not None and self._proc.stdout is not None
        stdout = self._proc.stdout
        got: list[bytes] = []
        # a thread, because a pipe's readline has no timeout and the child may hang or die
        reader = threading.Thread(target=lambda: got.append(stdout.readline()), daemon=True)
        reader.start()
        reader.join(timeout_s)
        line = got[0] if got else b""
        try:
            reply = json.loads(line) if line.strip() else None
        except ValueError:
            reply = None
        if isinstance(reply, dict) and ("address" in reply or "error" in reply):
            return reply
        if reader.is_alive():
            return {"error": f"no answer after {timeout_s:g} s"}
        try:  # the line ended (or the pipe did): a dying child is gone within moments
            code = self._proc.wait(timeout=2.0)
        except subprocess.TimeoutExpired:
            return {"error": f"unreadable answer {line[:200]!r}"}
        return {"error": f"the server process exited with code {code}"}

    def _log_tail(self, limit: int = 2000) -> str:
        """The end of the child's stderr, for an error message ('' when empty)."""
        try:
            self._log.seek(0, os.SEEK_END)
            size = self._log.tell()
            self._log.seek(max(0, size - limit))
            text = self._log.read().decode("utf-8", "replace").strip()
        except (OSError, ValueError):
            return ""
        return f"; its log ends: {text}" if text else ""

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible base URL, ``http://host:port/v1``."""
        return f"{self.root_url}/v1"

    def _wait_healthy(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        last = "no answer"
        while time.monotonic() < deadline:
            try:
                response = httpx.get(f"{self.root_url}/health", timeout=5.0)
                if response.status_code == 200:
                    return
                last = f"HTTP {response.status_code}"
            except httpx.HTTPError as exc:
                last = type(exc).__name__
            time.sleep(0.1)
        self.close()
        raise LLMError(f"{self.model_path}: server not healthy after {timeout_s:g} s ({last})")

    def describe(self) -> dict[str, Any]:
        """What is being served, for run records."""
        return {
            "server": "llama.cpp (xllamacpp)",
            "model_path": os.fspath(self.model_path),
            "base_url": self.base_url,
            "parallel": self.parallel,
            "ctx_size": self.ctx_size,
            "threads": self.threads,
        }

    def close(self) -> None:
        """Stop the server (idempotent): end its stdin, wait, kill it if it lingers."""
        proc, self._proc = getattr(self, "_proc", None), None
        if proc is not None:
            try:
                if proc.stdin is not None:
                    proc.stdin.close()
            except OSError:
                pass  # the child is gone already
            try:
                proc.wait(timeout=_STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        log = getattr(self, "_log", None)
        if log is not None:
            log.close()

    def __enter__(self) -> GGUFServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "running" if getattr(self, "_proc", None) is not None else "closed"
        return f"GGUFServer({os.fspath(self.model_path)!r}, base_url={self.base_url!r}, {state})"

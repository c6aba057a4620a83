"""Serve a GGUF model with llama.cpp's own OpenAI-compatible server, in-process, via ``xllamacpp``.

``xllamacpp`` (the ``serve`` extra) ships llama.cpp's ``llama-server`` as a Python extension:
building ``xllamacpp.Server(CommonParams)`` loads the model and starts the HTTP server on its own
threads; dropping the object stops it. :class:`GGUFServer` wraps that with a free port, a
``/health`` wait, ``base_url`` and a context manager.

    >>> from searchprime.llm.models import smollm2_gguf_path
    >>> with GGUFServer(smollm2_gguf_path()) as server:          # doctest: +SKIP
    ...     llm = OpenAIChat(server.base_url)

The context is *unified*: ``ctx_size`` tokens of KV cache are shared by the ``parallel`` slots
and any one request may use all of them (llama.cpp ``--kv-unified``).
"""

from __future__ import annotations

import gc
import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from searchprime._lazy import require
from searchprime.errors import ConfigError, LLMError

__all__ = ["GGUFServer"]

_STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


@contextmanager
def _stop_signals_stay_with_python() -> Iterator[None]:
    """Block SIGINT / SIGTERM in this thread while llama.cpp starts its threads.

    A new thread inherits its creator's signal mask, so the server's threads never receive
    them: the kernel hands a process-wide SIGTERM to a thread that does not block it, and one
    of llama.cpp's C++ threads is the wrong place for Python's handler to run. (A study sent
    SIGTERM while its server was starting hung in the server's constructor; with the mask the
    signal waits for the constructor to return, then reaches Python's handler.)
    """
    if not hasattr(signal, "pthread_sigmask"):  # not on Windows
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


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
        xllamacpp = require("xllamacpp", "serve")
        self.model_path = path
        self.host = host
        self.parallel = parallel
        self.ctx_size = ctx_size
        self.threads = threads
        params = xllamacpp.CommonParams()
        params.model.path = str(path)
        params.hostnames = [host]
        params.port = port
        params.n_parallel = parallel
        params.n_ctx = ctx_size
        params.kv_unified = True
        params.verbosity = verbosity
        params.endpoint_metrics = False
        if threads is not None:
            params.cpuparams.n_threads = threads
            params.cpuparams_batch.n_threads = threads
        if api_key:
            params.api_keys = [api_key]
        start = time.perf_counter()
        try:
            with _stop_signals_stay_with_python():
                self._server: Any = xllamacpp.Server(params)
        except Exception as exc:  # noqa: BLE001 - the extension raises plain RuntimeErrors
            raise LLMError(f"{path}: llama.cpp server failed to start: {exc}") from exc
        address = str(self._server.listening_address).rstrip("/")
        if not address.startswith("http"):
            address = f"http://{address}"
        self.root_url = address
        self.port = int(address.rsplit(":", 1)[1])
        self._wait_healthy(startup_timeout_s)
        self.startup_s = time.perf_counter() - start

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
        """Stop the server (idempotent)."""
        server = getattr(self, "_server", None)
        if server is not None:
            self._server = None
            del server
            gc.collect()

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
        state = "running" if getattr(self, "_server", None) is not None else "closed"
        return f"GGUFServer({os.fspath(self.model_path)!r}, base_url={self.base_url!r}, {state})"

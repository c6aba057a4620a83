"""``searchprime serve-model [MODEL.gguf]``: llama.cpp's OpenAI-compatible server, in-process."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import typer

from searchprime.cli._common import console, out, summary


def serve_model(
    model: Path | None = typer.Argument(
        None, help="GGUF file to serve (default: the packaged SmolLM2-135M-Instruct)."
    ),
    host: str = typer.Option("127.0.0.1", help="Interface to bind; keep 127.0.0.1 unless needed."),
    port: int = typer.Option(8000, help="TCP port (0 = pick a free one)."),
    parallel: int = typer.Option(4, help="Requests decoded together (server slots)."),
    ctx_size: int = typer.Option(8192, help="KV-cache tokens shared by all slots."),
    threads: int | None = typer.Option(None, help="CPU threads (default: llama.cpp's choice)."),
    api_key_env: str | None = typer.Option(
        None, help="Demand the key held in this environment variable from clients."
    ),
) -> None:
    """Serve a GGUF model over the OpenAI API (POST /v1/chat/completions) until Ctrl-C."""
    import os

    from searchprime.errors import ConfigError
    from searchprime.llm.models import smollm2_gguf_path
    from searchprime.llm.serve import GGUFServer

    path = model if model is not None else smollm2_gguf_path()
    api_key = None
    if api_key_env:
        api_key = os.environ.get(api_key_env)
        if not api_key:
            raise ConfigError(f"--api-key-env: environment variable {api_key_env} is not set")
    with console.status(f"loading {path.name}"):
        server = GGUFServer(
            path,
            host=host,
            port=port,
            parallel=parallel,
            ctx_size=ctx_size,
            threads=threads,
            api_key=api_key,
        )
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with server:
        out.print(server.base_url, highlight=False)
        console.print(
            f"serving {path.name} ({parallel} slots, ctx {ctx_size}) at {server.base_url}; "
            "Ctrl-C stops",
            highlight=False,
        )
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            signal.signal(signal.SIGTERM, previous)
    summary(f"stopped serving {path.name}")


def register(app: typer.Typer) -> None:
    """Add ``serve-model`` to ``app``."""
    app.command("serve-model")(serve_model)

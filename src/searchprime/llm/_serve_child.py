"""The process :class:`~searchprime.llm.serve.GGUFServer` runs llama.cpp's server in.

Protocol (one JSON object a line): the parent writes the server's settings on stdin; the child
builds ``xllamacpp.Server`` and answers ``{"address": ...}`` (or ``{"error": ...}`` and exits 1)
on stdout, then serves until its stdin ends — the parent closed it, or the parent died — and
leaves with ``os._exit``: the operating system reclaims the model and the threads at once, where
the extension's destructor joins llama.cpp's threads and was seen to stall.

    python -m searchprime.llm._serve_child   # settings on stdin; not meant to be run by hand
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any


def _params(settings: dict[str, Any]) -> Any:
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = settings["model_path"]
    params.hostnames = [settings["host"]]
    params.port = settings["port"]
    params.n_parallel = settings["parallel"]
    params.n_ctx = settings["ctx_size"]
    params.kv_unified = True
    params.verbosity = settings["verbosity"]
    params.endpoint_metrics = False
    if settings.get("threads") is not None:
        params.cpuparams.n_threads = settings["threads"]
        params.cpuparams_batch.n_threads = settings["threads"]
    if settings.get("api_key"):
        params.api_keys = [settings["api_key"]]
    return params


def _protocol_channel() -> Any:
    """The answer channel: the original stdout, while fd 1 is pointed at stderr so that
    nothing llama.cpp prints can be taken for the answer."""
    channel = os.fdopen(os.dup(1), "w", encoding="utf-8")
    sys.stdout.flush()
    os.dup2(2, 1)
    return channel


def main() -> None:
    channel = _protocol_channel()

    def _say(obj: dict[str, Any]) -> None:
        channel.write(json.dumps(obj) + "\n")
        channel.flush()

    try:
        settings = json.loads(sys.stdin.readline())
        import xllamacpp

        server = xllamacpp.Server(_params(settings))
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which raises LLMError
        _say({"error": f"{type(exc).__name__}: {exc}"})
        os._exit(1)
    _say({"address": str(server.listening_address)})
    try:
        while sys.stdin.buffer.read(65536):  # nothing more is sent; EOF ends the server
            pass
    except (OSError, KeyboardInterrupt):
        pass
    os._exit(0)


if __name__ == "__main__":
    main()

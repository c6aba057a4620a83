"""A drop-in Search-R1 retrieval server over any :class:`SearchBackend`.

``POST /retrieve`` takes Search-R1's request ``{"queries": [...], "topk": k,
"return_scores": bool}`` and answers ``{"result": [[{"document": doc, "score": s}, ...], ...]}``
(without scores, the inner items are the documents themselves). Each document carries
Search-R1's ``{"id", "contents"}`` (``contents = '"Title"\\ntext'``) plus ``title``, ``text``,
``source`` and ``url``. ``GET /health`` reports liveness and the answering process's ``pid``;
every ``/retrieve`` answer names it too (header ``X-Searchprime-Worker``).

Concurrent requests are merged into one batched index call (:class:`MicroBatcher`), and the
index runs in a worker thread, so the event loop only parses and serializes. An optional
bearer token guards ``/retrieve``. :class:`ServerLimits` bounds what one request may cost —
body size, queries, topk, queries × topk, response size — answering 413 (too large) or 422
(topk over the cap) with ``{"detail", "limit", "max"}``. No ``/docs``, ``/redoc`` or
``/openapi.json``: the contract is the one above, and they would answer without the token.
:class:`BackgroundServer` runs the app with uvicorn in a thread (tests, benchmarks,
notebooks); ``searchprime index serve`` runs it in the foreground, ``--workers N`` as N
processes on one port (:func:`serve_index`).
"""

from __future__ import annotations

import hmac
import json
import os
import signal
import socket
import sys
import threading
import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from searchprime._lazy import require
from searchprime.records import SearchHit
from searchprime.search._batch import MicroBatcher
from searchprime.search.base import SearchBackend
from searchprime.search.corpus import contents_of

try:
    import orjson

    def _dumps(obj: Any) -> bytes:
        return orjson.dumps(obj)

except ImportError:  # pragma: no cover

    def _dumps(obj: Any) -> bytes:
        return json.dumps(obj, ensure_ascii=False).encode("utf-8")


require("fastapi", "serve")  # a hint naming the extra, rather than a bare ImportError

from fastapi import FastAPI, Request, Response  # noqa: E402
from starlette.routing import Route  # noqa: E402

__all__ = [
    "BackgroundServer",
    "ServerLimits",
    "app_from_env",
    "create_app",
    "hit_to_document",
    "serve",
    "serve_index",
]


class ServerLimits(BaseModel):
    """What one ``/retrieve`` request may ask for (answered 413/422 beyond)."""

    model_config = ConfigDict(extra="forbid")

    max_queries: int = Field(
        default=4096, ge=1, description="Queries per request (Search-R1 sends a whole batch)."
    )
    max_topk: int = Field(default=100, ge=1, description="Largest topk (422 beyond).")
    max_hits: int = Field(
        default=100_000,
        ge=1,
        description="Largest queries x topk: refused before any search is run.",
    )
    max_response_bytes: int = Field(
        default=64 * 2**20, ge=1024, description="Largest JSON response (413 beyond)."
    )
    max_request_bytes: int = Field(
        default=16 * 2**20, ge=1024, description="Largest request body (413 beyond)."
    )


class RetrieveRequest(BaseModel):
    """Search-R1's request body."""

    queries: list[str]
    topk: int | None = Field(default=None, ge=1)
    return_scores: bool = False


def hit_to_document(hit: SearchHit) -> dict[str, Any]:
    """A hit as a Search-R1 document: ``id`` and ``contents`` first, then our fields."""
    doc: dict[str, Any] = {
        "id": hit.doc_id,
        "contents": contents_of(hit.title, hit.text),
        "title": hit.title,
        "text": hit.text,
    }
    if hit.source is not None:
        doc["source"] = hit.source
    if hit.url is not None:
        doc["url"] = hit.url
    return doc


def _search_fn(backend: SearchBackend):
    """Batched coroutine ``(queries, topk) -> hits`` over the backend."""
    sync = getattr(backend, "search_sync", None)
    if callable(sync):
        return MicroBatcher(sync)
    return backend.search  # async backends (HTTP, web) batch or parallelise themselves


def _json(obj: Any, status: int = 200) -> Response:
    return Response(_dumps(obj), status_code=status, media_type="application/json")


def _over(limit: str, cap: int, detail: str, status: int = 413) -> Response:
    return _json({"detail": detail, "limit": limit, "max": cap}, status)


async def _read_body(request: Request, cap: int) -> bytes | None:
    """The request body, or ``None`` as soon as it passes ``cap`` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > cap:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > cap:
            return None
    return bytes(body)


def _result_bytes(rows: list[list[Any]], cap: int) -> bytes | None:
    """``{"result": rows}`` as JSON, or ``None`` as soon as it passes ``cap`` bytes."""
    parts = [b'{"result":[']
    size = len(parts[0]) + 2
    for i, row in enumerate(rows):
        part = _dumps(row)
        size += len(part) + (1 if i else 0)
        if size > cap:
            return None
        parts.append(b"," + part if i else part)
    parts.append(b"]}")
    return b"".join(parts)


def create_app(
    backend: SearchBackend,
    token: str | None = None,
    *,
    default_topk: int = 3,
    limits: ServerLimits | None = None,
) -> FastAPI:
    """The app serving ``backend``; requests need ``Authorization: Bearer token`` when
    ``token`` is set, and stay within ``limits`` (defaults: :class:`ServerLimits`)."""
    from searchprime.errors import ConfigError

    lim = limits or ServerLimits()
    if not 1 <= default_topk <= lim.max_topk:
        raise ConfigError(
            f"default topk {default_topk} must be within 1..{lim.max_topk} (max_topk)"
        )
    search = _search_fn(backend)
    expected = f"Bearer {token}".encode() if token else None
    worker = {"X-Searchprime-Worker": str(os.getpid())}  # which process answered

    # /retrieve is a plain Starlette route: the body is validated by pydantic's Rust JSON
    # validator directly and the response serialized with orjson, because FastAPI's body,
    # dependency and response machinery costs more CPU per request than a BM25 query over 1M
    # passages.
    async def retrieve(request: Request) -> Response:
        if expected is not None:
            got = request.headers.get("authorization", "").encode()
            if not hmac.compare_digest(got, expected):
                return _json({"detail": "missing or wrong bearer token"}, 401)
        raw = await _read_body(request, lim.max_request_bytes)
        if raw is None:
            return _over(
                "max_request_bytes",
                lim.max_request_bytes,
                f"request body over {lim.max_request_bytes} bytes",
            )
        try:
            req = RetrieveRequest.model_validate_json(raw)
        except ValidationError as exc:
            detail = [{k: e[k] for k in ("loc", "msg", "type")} for e in exc.errors()]
            return _json({"detail": detail}, 422)
        topk = req.topk or default_topk
        n = len(req.queries)
        if n > lim.max_queries:
            return _over(
                "max_queries",
                lim.max_queries,
                f"{n} queries in one request, over {lim.max_queries}: split the batch",
            )
        if topk > lim.max_topk:
            return _over("max_topk", lim.max_topk, f"topk {topk} over {lim.max_topk}", 422)
        if n * topk > lim.max_hits:
            return _over(
                "max_hits",
                lim.max_hits,
                f"{n} queries x topk {topk} = {n * topk} hits, over {lim.max_hits}: "
                "split the batch or lower topk",
            )
        try:
            hits = await search(req.queries, topk) if req.queries else []
        except Exception as exc:  # the backend failed: 503, the client may retry
            return _json({"detail": f"search backend failed: {type(exc).__name__}: {exc}"}, 503)
        if req.return_scores:
            rows = [
                [{"document": hit_to_document(h), "score": h.score} for h in row] for row in hits
            ]
        else:
            rows = [[hit_to_document(h) for h in row] for row in hits]
        body = _result_bytes(rows, lim.max_response_bytes)
        if body is None:
            return _over(
                "max_response_bytes",
                lim.max_response_bytes,
                f"the response would pass {lim.max_response_bytes} bytes: "
                "split the batch or lower topk",
            )
        return Response(body, media_type="application/json", headers=worker)

    # No /docs, /redoc, /openapi.json: they would answer without the token.
    app = FastAPI(
        title="searchprime retriever", version="1", docs_url=None, redoc_url=None, openapi_url=None
    )
    app.router.routes.insert(0, Route("/retrieve", retrieve, methods=["POST"]))

    @app.get("/health")
    async def health() -> dict[str, Any]:
        out: dict[str, Any] = {"status": "ok", "backend": backend.name, "pid": os.getpid()}
        if expected is None:
            out["describe"] = backend.describe()
        return out

    app.state.backend = backend
    app.state.search = search
    app.state.limits = lim
    return app


class BackgroundServer:
    """Run an ASGI app with uvicorn in a daemon thread; ``port=0`` picks a free port.

    >>> with BackgroundServer(create_app(index)) as srv:  # doctest: +SKIP
    ...     requests.post(srv.url + "/retrieve", json={"queries": ["q"], "topk": 3})
    """

    def __init__(
        self, app: Any, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning"
    ):
        uvicorn = require("uvicorn", "serve")
        self._sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self.host, self.port = host, self._sock.getsockname()[1]
        config = uvicorn.Config(app, log_level=log_level, lifespan="off", access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:41234``."""
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 20.0) -> BackgroundServer:
        """Start and wait until the server accepts requests."""
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("retrieval server failed to start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        """Ask uvicorn to exit and join the thread."""
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve(
    backend: SearchBackend,
    host: str = "127.0.0.1",
    port: int = 8000,
    token: str | None = None,
    *,
    default_topk: int = 3,
    limits: ServerLimits | None = None,
    log_level: str = "info",
) -> None:
    """Serve ``backend`` in the foreground until interrupted."""
    uvicorn = require("uvicorn", "serve")
    app = create_app(backend, token, default_topk=default_topk, limits=limits)
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False)


_ENV_CONFIG = "SEARCHPRIME_SERVE_CONFIG"


def _die_with(parent: int) -> None:
    """End this worker when its supervisor ``parent`` dies, even by SIGKILL (Linux
    ``PR_SET_PDEATHSIG``): a worker left behind would keep the port and the index mapped."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
    if os.getppid() != parent:  # it died before the line above took effect
        os.kill(os.getpid(), signal.SIGTERM)


def app_from_env() -> FastAPI:
    """uvicorn factory for multi-process serving (``serve_index(workers=N)``): reads the
    search config, token variable, default topk and limits from ``$SEARCHPRIME_SERVE_CONFIG``."""
    from searchprime.search.registry import SearchConfig, load_search

    spec = json.loads(os.environ[_ENV_CONFIG])
    if spec.get("parent"):
        _die_with(spec["parent"])
    token = os.environ.get(spec["token_env"]) if spec.get("token_env") else None
    backend = load_search(SearchConfig.model_validate(spec["search"]))
    limits = ServerLimits.model_validate(spec.get("limits") or {})
    return create_app(backend, token, default_topk=spec["default_topk"], limits=limits)


def serve_index(
    config: Any,
    host: str = "127.0.0.1",
    port: int = 8000,
    token_env: str | None = None,
    *,
    default_topk: int = 3,
    workers: int = 1,
    limits: ServerLimits | None = None,
    log_level: str = "info",
) -> None:
    """Serve the backend a :class:`~searchprime.search.registry.SearchConfig` names.

    ``workers > 1`` runs that many server processes on one port (uvicorn workers: the process
    called supervises them, restarts one that dies, and stops them all on SIGINT/SIGTERM; if
    it is killed outright they exit too). Each memory-maps the same index files, so the page
    cache holds one copy. One request runs on one process, so this is how a multi-core host
    serves more requests of one query each (HTTP handling and JSON cost more CPU than a BM25
    query over 1M passages); ``bench/serve_workers.py`` measures it.
    """
    from searchprime.errors import ConfigError
    from searchprime.search.registry import load_search

    uvicorn = require("uvicorn", "serve")
    token = None
    if token_env:
        token = os.environ.get(token_env)
        if not token:
            raise ConfigError(f"--token-env: environment variable {token_env} is not set")
    if workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {workers}")
    lim = limits or ServerLimits()
    if not 1 <= default_topk <= lim.max_topk:  # before loading the index
        raise ConfigError(f"--topk {default_topk} must be within 1..{lim.max_topk} (max_topk)")
    if workers <= 1:
        serve(
            load_search(config),
            host,
            port,
            token,
            default_topk=default_topk,
            limits=lim,
            log_level=log_level,
        )
        return
    spec = {
        "search": config.model_dump(),
        "token_env": token_env,
        "default_topk": default_topk,
        "limits": lim.model_dump(),
        "parent": os.getpid(),
    }
    os.environ[_ENV_CONFIG] = json.dumps(spec)
    uvicorn.run(
        "searchprime.search.server:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        access_log=False,
    )

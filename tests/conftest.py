"""Shared test fixtures."""

from __future__ import annotations

import ipaddress
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


# --------------------------------------------------------------------------- offline guard


class NetworkRefused(RuntimeError):
    """A test tried to reach a host other than this machine (the suite runs offline).

    Not an ``OSError``: retry loops and "endpoint unreachable" handlers must not swallow it.
    """


_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", ""}
_REAL: dict[str, Any] = {}


def _is_local(host: object) -> bool:
    """Loopback or unspecified (0.0.0.0 / :: reach this machine), by name or literal."""
    if host is None:
        return True
    if isinstance(host, bytes):
        host = host.decode("idna", errors="replace")
    name = str(host).strip("[]").split("%")[0].lower()
    if name in _LOCAL_NAMES:
        return True
    try:
        ip = ipaddress.ip_address(name)
    except ValueError:
        return False
    return ip.is_loopback or ip.is_unspecified


def _is_literal(host: object) -> bool:
    try:
        ipaddress.ip_address(str(host).strip("[]").split("%")[0])
    except ValueError:
        return False
    return True


def _check_address(sock: socket.socket, address: Any) -> None:
    if sock.family in (socket.AF_INET, socket.AF_INET6) and not _is_local(address[0]):
        raise NetworkRefused(
            f"the test suite is offline: connect to {address[0]}:{address[1]} refused "
            "(only 127.0.0.1 / ::1 / localhost and AF_UNIX sockets are allowed)"
        )


def _guarded_connect(sock: socket.socket, address: Any) -> Any:
    _check_address(sock, address)
    return _REAL["connect"](sock, address)


def _guarded_connect_ex(sock: socket.socket, address: Any) -> Any:
    _check_address(sock, address)
    return _REAL["connect_ex"](sock, address)


def _guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
    # IP literals need no lookup (connect checks where they lead); names other than
    # localhost would ask a DNS server
    if not (_is_local(host) or _is_literal(host)):
        raise NetworkRefused(f"the test suite is offline: lookup of {host!r} refused")
    return _REAL["getaddrinfo"](host, *args, **kwargs)


def _guarded_gethostbyname(host: Any) -> Any:
    if not (_is_local(host) or _is_literal(host)):
        raise NetworkRefused(f"the test suite is offline: lookup of {host!r} refused")
    return _REAL["gethostbyname"](host)


def pytest_configure(config: pytest.Config) -> None:
    """Refuse non-loopback sockets for the whole run (collection and fixtures included)."""
    _REAL.update(
        connect=socket.socket.connect,
        connect_ex=socket.socket.connect_ex,
        getaddrinfo=socket.getaddrinfo,
        gethostbyname=socket.gethostbyname,
    )
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]
    socket.getaddrinfo = _guarded_getaddrinfo
    socket.gethostbyname = _guarded_gethostbyname


def pytest_unconfigure(config: pytest.Config) -> None:
    if _REAL:
        socket.socket.connect = _REAL["connect"]  # type: ignore[method-assign]
        socket.socket.connect_ex = _REAL["connect_ex"]  # type: ignore[method-assign]
        socket.getaddrinfo = _REAL["getaddrinfo"]
        socket.gethostbyname = _REAL["gethostbyname"]
        _REAL.clear()


def sigint_default() -> None:
    """``preexec_fn`` for children that must die on Ctrl-C: a runner started in the background
    (``nohup cmd &``) hands its children SIGINT *ignored*, and Python then installs no
    KeyboardInterrupt handler."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


@pytest.fixture(scope="session")
def smol_llm() -> Iterator[object]:
    """The real SmolLM2-135M served by llama.cpp on 127.0.0.1, behind OpenAIChat (shared)."""
    import asyncio

    from searchprime.llm.models import smollm2_gguf_path
    from searchprime.llm.openai_http import OpenAIChat
    from searchprime.llm.serve import GGUFServer

    with GGUFServer(smollm2_gguf_path(), parallel=4, ctx_size=8192, threads=1) as server:
        llm = OpenAIChat(server.base_url, "smollm2-135m", timeout_s=120.0, max_retries=1)
        yield llm
        asyncio.run(llm.aclose())


@pytest.fixture(scope="session")
def smollm2_dir(tmp_path_factory) -> Path:
    """SmolLM2-135M-Instruct as a trainable Hugging Face folder (made once per session)."""
    from searchprime.train.models import prepare_smollm2

    return prepare_smollm2(tmp_path_factory.mktemp("smollm2") / "model")


class CountingLLM:
    """Wraps an LLM, counts the requests that reach it and keeps each (prompt, reply) pair, so
    a test can check what was recorded against what the model really said."""

    def __init__(self, inner):
        self.inner = inner
        self.name = inner.name
        self.model = getattr(inner, "model", None)
        self.calls = 0
        self.exchanges: list[tuple[str, str]] = []  # (last message's content, reply text)

    async def complete(self, messages, params):
        self.calls += 1
        out = await self.inner.complete(messages, params)
        self.exchanges.append((messages[-1].content, out.text))
        return out

    def count_tokens(self, messages):
        return self.inner.count_tokens(messages)

    def describe(self):
        return self.inner.describe()

    async def aclose(self):
        return None


@pytest.fixture
def counting():
    return CountingLLM


def json_values(text: str) -> list[Any]:
    """Every strict-JSON object or list that starts somewhere in ``text``, in order (nested
    ones too): what a model's reply states, read independently of the code under test."""
    decoder = json.JSONDecoder()
    found = []
    for i, ch in enumerate(text):
        if ch in "{[":
            try:
                found.append(decoder.raw_decode(text, i)[0])
            except ValueError:
                continue
    return found

"""The suite refuses non-loopback sockets (tests/conftest.py) and still reaches this machine."""

from __future__ import annotations

import asyncio
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from tests.conftest import NetworkRefused

TEST_NET = "192.0.2.1"  # RFC 5737 documentation range: never a real host


class _Hello(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        self.send_response(200)
        self.send_header("Content-Length", "5")
        self.end_headers()
        self.wfile.write(b"hello")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def local_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_remote_connects_and_lookups_are_refused() -> None:
    with socket.socket() as sock, pytest.raises(NetworkRefused, match=rf"{TEST_NET}:80 refused"):
        sock.connect((TEST_NET, 80))
    with socket.socket() as sock, pytest.raises(NetworkRefused):
        sock.connect_ex((TEST_NET, 80))
    with pytest.raises(NetworkRefused, match="lookup of 'example.com'"):
        socket.getaddrinfo("example.com", 443)
    with pytest.raises(NetworkRefused):
        socket.create_connection((TEST_NET, 443), timeout=1)
    with pytest.raises(NetworkRefused):
        httpx.get("https://example.com/", timeout=1)


def test_async_clients_are_refused_too() -> None:
    import aiohttp

    async def go() -> None:
        async with aiohttp.ClientSession() as session:
            await session.get(f"http://{TEST_NET}/", timeout=aiohttp.ClientTimeout(total=2))

    with pytest.raises(NetworkRefused):
        asyncio.run(go())


def test_loopback_and_unix_sockets_still_work(local_server: str) -> None:
    assert httpx.get(local_server + "/").text == "hello"
    port = int(local_server.rsplit(":", 1)[1])
    assert httpx.get(f"http://localhost:{port}/").text == "hello"
    assert socket.getaddrinfo("localhost", port)
    a, b = socket.socketpair(socket.AF_UNIX)
    with a, b:
        a.sendall(b"ping")
        assert b.recv(4) == b"ping"

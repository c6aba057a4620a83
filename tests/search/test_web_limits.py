"""The page reader against hostile peers: non-global addresses, slow drips, endless pages."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from searchprime.errors import ConfigError, SearchError
from searchprime.search.pages import PageReader, is_public_ip

NOT_GLOBAL = [
    "100.64.0.1",  # shared address space (carrier-grade NAT)
    "100.100.100.200",  # a cloud metadata service inside it
    "100.127.255.254",
    "169.254.169.254",  # link-local metadata
    "10.0.0.1",
    "10.255.255.255",
    "172.16.0.1",
    "172.31.255.254",
    "192.168.0.1",
    "192.168.255.255",
    "127.0.0.1",
    "127.8.9.10",
    "0.0.0.0",
    "224.0.0.251",  # multicast
    "240.0.0.1",  # reserved
    "255.255.255.255",
    "198.18.0.1",  # benchmarking
    "::1",
    "::",
    "fc00::1",
    "fdff:ffff::1",
    "fe80::1",
    "febf::1",
    "ff02::1",
    "::ffff:10.0.0.1",  # IPv4-mapped IPv6 of private addresses
    "::ffff:100.100.100.200",
    "::ffff:127.0.0.1",
    "2002:a00:1::1",  # 6to4 of 10.0.0.1
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
]
GLOBAL = ["8.8.8.8", "1.1.1.1", "100.128.0.1", "2606:4700:4700::1111", "64:ff9b::808:808"]


@pytest.mark.parametrize("address", NOT_GLOBAL)
def test_non_global_addresses_are_refused(address: str) -> None:
    assert not is_public_ip(address)
    host = f"[{address}]" if ":" in address else address
    with pytest.raises(SearchError, match="not a public address"):
        PageReader().read_sync(f"http://{host}:8080/latest/meta-data/")


@pytest.mark.parametrize("address", GLOBAL)
def test_global_addresses_pass(address: str) -> None:
    assert is_public_ip(address)


class _Hostile(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def do_GET(self) -> None:  # noqa: N802
        try:
            if self.path == "/drip":  # one byte every 0.2 s: each read is well inside the timeout
                self._head("text/plain", 1000)
                for _ in range(1000):
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(0.2)
            elif self.path == "/endless":  # 64 KiB chunks until the client hangs up
                self._head("text/plain", None)
                chunk = b"abcdefgh" * 8192
                for _ in range(2000):
                    self.wfile.write(chunk)
            else:
                body = b"small page " * 100
                self._head("text/plain", len(body))
                self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _head(self, ctype: str, length: int | None) -> None:
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        if length is not None:
            self.send_header("Content-Length", str(length))
        self.end_headers()

    def log_message(self, *args) -> None:  # noqa: ANN002
        pass


@pytest.fixture()
def hostile() -> Iterator[str]:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Hostile)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def test_loopback_needs_the_explicit_opt_in(hostile: str) -> None:
    with pytest.raises(SearchError, match="127.0.0.1, not a public address"):
        PageReader().read_sync(hostile + "/small")
    page = PageReader(allow_private=True).read_sync(hostile + "/small")
    assert page.text.startswith("small page") and not page.truncated


def test_a_dripping_server_is_cut_at_the_deadline(hostile: str) -> None:
    reader = PageReader(allow_private=True, timeout_s=2, deadline_s=1)
    start = time.monotonic()
    with pytest.raises(SearchError, match="not read within the 1 s deadline"):
        reader.read_sync(hostile + "/drip")
    assert time.monotonic() - start < 2.5  # the per-read timeout alone would allow 200 s


def test_an_endless_page_is_capped_and_marked_truncated(hostile: str) -> None:
    reader = PageReader(allow_private=True, max_bytes=100_000, max_chars=1_000_000)
    start = time.monotonic()
    page = reader.read_sync(hostile + "/endless")
    assert time.monotonic() - start < 3
    assert page.truncated and len(page.text) == 100_000
    assert page.text.startswith("abcdefgh")
    # a page that fits is whole and not truncated
    exact = PageReader(allow_private=True, max_bytes=1100).read_sync(hostile + "/small")
    assert not exact.truncated and len(exact.text) == 1100


def test_limits_must_be_positive() -> None:
    with pytest.raises(ConfigError, match="deadline_s"):
        PageReader(deadline_s=0)

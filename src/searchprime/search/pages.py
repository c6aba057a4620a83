"""A page reader for the open-page action.

:class:`PageReader` fetches a page for an open-page action and extracts its main text with
trafilatura. By default it refuses URLs whose host resolves to any address that is not
globally routable (:func:`is_public_ip`: loopback, private, shared 100.64.0.0/10 — where cloud
metadata services such as 100.100.100.200 live —, link-local 169.254.0.0/16, unique-local
fc00::/7, multicast, reserved, unspecified, and IPv6 forms that embed such an IPv4 address),
checked on every address the host resolves to, before connecting and on every redirect; this
stops a policy from probing the machine or its network. ``allow_private=True`` turns the check
off (tests reading from 127.0.0.1). Each fetch has a total deadline (``deadline_s``, besides the
per-read ``timeout_s``, so a server dripping bytes cannot hold it) and a byte cap
(``max_bytes``; a page cut there is returned with ``truncated=True``). (A host whose DNS answer
changes between the check and the connection is not covered; run untrusted policies behind an
egress proxy.)
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from dataclasses import dataclass
from urllib.parse import urljoin, urlparse

import httpx

from searchprime._lazy import require
from searchprime.errors import ConfigError, SearchError
from searchprime.records import SearchHit

__all__ = ["Page", "PageReader", "is_public_ip"]


@dataclass
class Page:
    """The readable text of a web page."""

    url: str
    final_url: str
    title: str
    text: str
    truncated: bool = False

    def to_hit(self) -> SearchHit:
        """The page as a hit (for formatting with :func:`format_hits`)."""
        return SearchHit(
            doc_id=self.final_url, title=self.title, text=self.text, url=self.final_url
        )


_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def is_public_ip(ip: str | ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Whether ``ip`` is globally routable, so that a fetch cannot reach the local machine,
    its network or a cloud metadata service. IPv6 forms embedding an IPv4 address
    (IPv4-mapped, 6to4, NAT64) are judged by that address.

    >>> [is_public_ip(a) for a in ("93.184.215.14", "100.100.100.200", "::ffff:10.0.0.1")]
    [True, False, False]
    """
    ip = ipaddress.ip_address(ip) if isinstance(ip, str) else ip
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return is_public_ip(ip.ipv4_mapped)
        if ip in _NAT64:
            return is_public_ip(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        if ip.sixtofour is not None and not is_public_ip(ip.sixtofour):
            return False
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_unspecified)


_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)


class PageReader:
    """Fetch a URL and extract its main text (trafilatura), refusing non-global addresses.

    ``timeout_s`` bounds each connect and read, ``deadline_s`` the whole fetch (redirects
    included), ``max_bytes`` the body read (beyond it the page is cut and marked truncated),
    ``max_chars`` the extracted text. ``allow_private=True`` allows any address (tests).
    """

    def __init__(
        self,
        *,
        allow_private: bool = False,
        timeout_s: float = 20.0,
        deadline_s: float = 30.0,
        max_bytes: int = 3_000_000,
        max_chars: int = 20_000,
        max_redirects: int = 5,
        user_agent: str = "searchprime-page-reader/0.1",
    ):
        if timeout_s <= 0 or deadline_s <= 0 or max_bytes < 1 or max_chars < 1:
            raise ConfigError(
                "page reader: timeout_s, deadline_s, max_bytes, max_chars must be > 0"
            )
        self.allow_private = allow_private
        self.timeout_s = timeout_s
        self.deadline_s = deadline_s
        self.max_bytes = max_bytes
        self.max_chars = max_chars
        self.max_redirects = max_redirects
        self.headers = {"User-Agent": user_agent}

    async def check_url(self, url: str) -> None:
        """Raise :class:`SearchError` unless ``url`` is http(s) to a public address."""
        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise SearchError(f"open page: refusing {url!r}: only http(s) URLs with a host")
        if self.allow_private:
            return
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                parsed.hostname, port, type=socket.SOCK_STREAM
            )
        except socket.gaierror as exc:
            raise SearchError(f"open page: cannot resolve {parsed.hostname}: {exc}") from None
        for info in infos:
            ip = ipaddress.ip_address(info[4][0].split("%")[0])
            if not is_public_ip(ip):
                raise SearchError(
                    f"open page: refusing {url}: {parsed.hostname} resolves to {ip}, not a "
                    "public address (PageReader(allow_private=True) allows it)"
                )

    async def read(self, url: str) -> Page:
        """Fetch ``url`` (following redirects, each checked) and extract the main text."""
        try:
            final, body, ctype, encoding, cut = await asyncio.wait_for(
                self._fetch(url), self.deadline_s
            )
        except asyncio.TimeoutError:
            raise SearchError(
                f"open page: {url}: not read within the {self.deadline_s:g} s deadline"
            ) from None
        html = body.decode(encoding, errors="replace")
        page = await asyncio.to_thread(self._extract, url, final, html, ctype)
        page.truncated = page.truncated or cut
        return page

    async def _fetch(self, url: str) -> tuple[str, bytes, str, str, bool]:
        """``(final URL, body, content type, encoding, cut at max_bytes)``."""
        current = url
        async with httpx.AsyncClient(
            timeout=self.timeout_s, headers=self.headers, follow_redirects=False
        ) as client:
            for _ in range(self.max_redirects + 1):
                await self.check_url(current)
                try:
                    async with client.stream("GET", current) as resp:
                        if resp.is_redirect and "location" in resp.headers:
                            current = urljoin(current, resp.headers["location"])
                            continue
                        if resp.status_code >= 400:
                            raise SearchError(f"open page: {current}: HTTP {resp.status_code}")
                        body = bytearray()
                        cut = False
                        async for part in resp.aiter_bytes():
                            body += part
                            if len(body) > self.max_bytes:
                                cut = True
                                del body[self.max_bytes :]
                                break
                        ctype = resp.headers.get("content-type", "")
                        encoding = resp.encoding or "utf-8"
                except httpx.HTTPError as exc:
                    raise SearchError(
                        f"open page: {current}: {type(exc).__name__}: {exc}"
                    ) from None
                return current, bytes(body), ctype, encoding, cut
        raise SearchError(f"open page: {url}: more than {self.max_redirects} redirects")

    def _extract(self, url: str, final_url: str, html: str, ctype: str) -> Page:
        m = _TITLE.search(html)
        title = " ".join(m.group(1).split()) if m else ""
        if "html" in ctype or html.lstrip()[:1] == "<":
            trafilatura = require("trafilatura", "web")
            text = trafilatura.extract(html, url=final_url, include_comments=False) or ""
        else:
            text = html
        truncated = len(text) > self.max_chars
        return Page(url, final_url, title, text[: self.max_chars], truncated)

    def read_sync(self, url: str) -> Page:
        """Blocking :meth:`read`."""
        return asyncio.run(self.read(url))

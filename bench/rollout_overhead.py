"""Rollout orchestration overhead and throughput.

Measures, on this machine:

1. per-turn orchestration overhead of the agent loop + rollout (parsing, records, token
   counting, hit formatting, JSONL writing): an in-process instant policy and an instant
   search backend, concurrency 1 - everything but the backends' own time;
2. throughput over real HTTP against a local instant OpenAI-compatible server (a separate
   process; asyncio, keep-alive) with in-process BM25 search, at concurrency 1 / 8 / 64;
3. the same with 100 ms injected server latency, as a fraction of the ideal
   ``concurrency / latency`` turns per second.

Targets: overhead <= 2 ms per turn; >= 80% of ideal at concurrency 64.

    python bench/rollout_overhead.py [--tasks 200] [--latency-ms 100] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import socket
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from searchprime.agent.loop import AgentConfig
from searchprime.agent.rollout import rollout
from searchprime.llm.base import Completion, SamplingParams
from searchprime.records import Message, SearchHit, Task

SEARCH = "<think>I need to look this up.</think>\n<search>founder of town {i}"
ANSWER = "<think>The first document names the founder.</think>\n<answer>Founder {i}"


def _reply(messages: list[dict[str, Any]]) -> str:
    """Search twice, then answer (three turns per trajectory)."""
    n_info = sum(1 for m in messages if m["role"] == "user" and "<information>" in m["content"])
    return ANSWER.format(i=n_info) if n_info >= 2 else SEARCH.format(i=n_info)


# --------------------------------------------------------------------------- HTTP server
async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, latency: float):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    k, v = line.split(":", 1)
                    headers[k.strip().lower()] = v.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0") or 0))
            if method == "GET" and path.endswith("/models"):
                status, payload = 200, {"object": "list", "data": [{"id": "bench"}]}
            elif method == "POST" and path.endswith("/chat/completions"):
                req = json.loads(body)
                if latency:
                    await asyncio.sleep(latency)
                text = _reply(req["messages"])
                payload = {
                    "id": "x",
                    "object": "chat.completion",
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": text},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {"prompt_tokens": 100, "completion_tokens": 20},
                }
                status = 200
            else:
                status, payload = 404, {"error": {"message": "no route"}}
            data = json.dumps(payload).encode()
            reason = "OK" if status == 200 else "Not Found"
            writer.write(
                f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(data)}\r\n\r\n".encode()
                + data
            )
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionResetError, BrokenPipeError):
        pass
    finally:
        writer.close()


def _serve(port: int, latency: float) -> None:
    async def main() -> None:
        server = await asyncio.start_server(
            lambda r, w: _handle(r, w, latency), "127.0.0.1", port, backlog=512
        )
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """The instant server in its own process (so it does not share the client's GIL)."""

    def __init__(self, latency_s: float = 0.0):
        self.port = _free_port()
        self.proc = mp.get_context("spawn").Process(
            target=_serve, args=(self.port, latency_s), daemon=True
        )

    def __enter__(self) -> Server:
        self.proc.start()
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("bench server did not start")

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.join(5)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"


# --------------------------------------------------------------------------- backends
class InstantLLM:
    """In-process policy; ``latency_s`` > 0 sleeps like a server would (no HTTP)."""

    name = "instant"

    def __init__(self, latency_s: float = 0.0) -> None:
        self.latency_s = latency_s
        self.time_in = 0.0

    async def complete(self, messages: Sequence[Message], params: SamplingParams) -> Completion:
        t0 = time.perf_counter()
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        text = _reply([{"role": m.role, "content": m.content} for m in messages])
        self.time_in += time.perf_counter() - t0
        return Completion(text=text)

    def count_tokens(self, messages: Sequence[Message]) -> int:
        return sum(len(m.content) for m in messages) // 4 + 4 * len(messages)

    def describe(self) -> dict[str, Any]:
        return {"kind": "instant"}

    async def aclose(self) -> None:
        pass


class InstantSearch:
    """Three canned hits per query."""

    name = "instant"

    def __init__(self) -> None:
        self.hits = [
            SearchHit(
                doc_id=f"d{i}",
                title=f"Town {i}",
                text=f"Town {i} was founded in 18{i}0 by Founder {i}. " * 4,
                source="encyclopedia",
                url=f"https://wiki.example.org/Town_{i}",
            )
            for i in range(3)
        ]

    async def search(self, queries: Sequence[str], topk: int) -> list[list[SearchHit]]:
        return [self.hits[:topk] for _ in queries]

    def describe(self) -> dict[str, Any]:
        return {"kind": "instant"}

    async def aclose(self) -> None:
        pass


def build_bm25(root: Path, n_docs: int = 5000) -> Any:
    from searchprime.search.bm25 import BM25Config, BM25Search, build_bm25_index

    corpus = root / "corpus.jsonl"
    with corpus.open("w", encoding="utf-8") as fh:
        for i in range(n_docs):
            doc = {
                "id": f"d{i}",
                "title": f"Town {i}",
                "text": f"Town {i} is a river town founded by Founder {i % 97} near hill {i % 13}.",
                "source": "encyclopedia" if i % 3 else "forum",
            }
            fh.write(json.dumps(doc) + "\n")
    index = build_bm25_index(corpus, root / "index", BM25Config(workers=1))
    return BM25Search.load(index, threads=1)


def tasks(n: int) -> list[Task]:
    return [Task(id=f"b{i}", question=f"Who founded town {i}?", answers=["x"]) for i in range(n)]


async def _run(llm, search, n_tasks: int, concurrency: int, out: Path) -> tuple[float, int]:
    if out.exists():
        out.unlink()
    cfg = AgentConfig(max_turns=5)
    t0 = time.perf_counter()
    summary = await rollout(tasks(n_tasks), llm, search, cfg, out, concurrency=concurrency)
    wall = time.perf_counter() - t0
    turns = round(summary.mean_turns * summary.written)
    assert summary.by_termination == {"answer": n_tasks}, summary.by_termination
    return wall, turns


async def _raw_client(base_url: str, concurrency: int, n: int, kind: str = "aiohttp") -> float:
    """Requests/s of a bare client with no agent around it: ``aiohttp`` (OpenAIChat's
    transport) or ``httpx`` (its former one, kept for comparison; see openai_http.py)."""
    body = {"model": "bench", "messages": [{"role": "user", "content": "Question: x " * 200}]}
    url = f"{base_url}/chat/completions"
    sem = asyncio.Semaphore(concurrency)
    if kind == "aiohttp":
        import aiohttp

        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency))

        async def post() -> None:
            async with session.post(url, json=body) as resp:
                await resp.json()

        close = session.close
    else:
        import httpx

        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        client = httpx.AsyncClient(limits=limits, timeout=60)

        async def post() -> None:
            (await client.post(url, json=body)).json()

        close = client.aclose

    async def one() -> None:
        async with sem:
            await post()

    try:
        await asyncio.gather(*[one() for _ in range(concurrency)])  # open the connections
        t0 = time.perf_counter()
        await asyncio.gather(*[one() for _ in range(n)])
        return n / (time.perf_counter() - t0)
    finally:
        await close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tasks", type=int, default=200, help="trajectories per instant measurement")
    ap.add_argument("--latency-ms", type=float, default=100.0)
    ap.add_argument("--quick", action="store_true", help="fewer tasks (smoke run)")
    args = ap.parse_args()
    n = 40 if args.quick else args.tasks
    lat = args.latency_ms / 1e3
    levels = (1, 8, 64)
    from searchprime.llm.openai_http import OpenAIChat

    table: dict[str, dict[int, str]] = {}

    def put(row: str, c: int, cell: str) -> None:
        table.setdefault(row, {})[c] = cell

    def n_latency(c: int) -> int:  # every agent runs the same number of trajectories
        return c * (2 if args.quick else 3) if c > 1 else (4 if args.quick else 8)

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        out = root / "traj.jsonl"
        bm25 = build_bm25(root)

        # 1. the loop's own cost: instant in-process policy and search
        asyncio.run(_run(InstantLLM(), InstantSearch(), 20, 1, out))  # warm up
        for c in levels:
            llm = InstantLLM()
            wall, turns = asyncio.run(_run(llm, InstantSearch(), n, c, out))
            put("in-process instant policy+search: turns/s", c, f"{turns / wall:.0f}")
            if c == 1:
                overhead_ms = (wall - llm.time_in) / turns * 1e3
                put("  orchestration overhead per turn", c, f"{overhead_ms:.3f} ms")
        wall, turns = asyncio.run(_run(InstantLLM(), bm25, n, 1, out))
        put("  + real BM25 (5k docs): ms per turn", 1, f"{wall / turns * 1e3:.3f} ms")

        # 2. the in-process policy with injected latency: does orchestration scale?
        for c in levels:
            wall, turns = asyncio.run(_run(InstantLLM(lat), bm25, n_latency(c), c, out))
            put(
                f"in-process policy, {args.latency_ms:.0f} ms latency: % ideal",
                c,
                f"{turns / wall / (c / lat):.1%}",
            )

        # 3. real HTTP: instant server, then injected latency
        with Server(0.0) as srv:
            for c in levels:
                llm = OpenAIChat(srv.base_url, timeout_s=60, concurrency=c)
                asyncio.run(_run(llm, bm25, min(n, 20), c, out))  # warm up (token-mode probe)
                wall, turns = asyncio.run(_run(llm, bm25, n, c, out))
                put("HTTP instant server, OpenAIChat + BM25: turns/s", c, f"{turns / wall:.0f}")
                for kind in ("aiohttp", "httpx"):
                    rps = asyncio.run(_raw_client(srv.base_url, c, 3 * n, kind))
                    put(f"  bare {kind} client, no agent: requests/s", c, f"{rps:.0f}")
        with Server(lat) as srv:
            for c in levels:
                llm = OpenAIChat(srv.base_url, timeout_s=60, concurrency=c)
                wall, turns = asyncio.run(_run(llm, bm25, n_latency(c), c, out))
                put(
                    f"HTTP {args.latency_ms:.0f} ms server, OpenAIChat + BM25: % ideal",
                    c,
                    f"{turns / wall / (c / lat):.1%} ({turns / wall:.0f}/{c / lat:.0f})",
                )
                for kind in ("aiohttp", "httpx"):
                    raw = asyncio.run(_raw_client(srv.base_url, c, max(3 * c, 8), kind))
                    put(f"  bare {kind} client, no agent: % ideal", c, f"{raw / (c / lat):.1%}")
        bm25.close()

    width = max(len(r) for r in table)
    print(
        f"rollout overhead: {os.cpu_count()} CPU(s), load {os.getloadavg()[0]:.1f}; "
        f"{n} trajectories of 3 turns per instant cell"
    )
    header = f"{'':<{width}}" + "".join(f"{'c=' + str(c):>22}" for c in levels)
    print(header)
    print("-" * len(header))
    for row, cells in table.items():
        print(f"{row:<{width}}" + "".join(f"{cells.get(c, ''):>22}" for c in levels))


if __name__ == "__main__":
    main()

"""Server QPS with several worker processes vs the same index queried in-process.

    nice python bench/serve_workers.py --docs 100k              # issue 17's setting
    python bench/serve_workers.py --docs 2k --per 20            # a smoke run (seconds)

Builds (once, under ``--work``) a seeded synthetic BM25 index (``_synth.py``: Search-R1 layout,
~100-word Zipf passages), then measures queries/s with one query per request:

- in-process: ``--clients`` concurrent callers of ``BM25Search.search`` (the async path the
  server uses, micro-batched), with as many search threads as the host has cores;
- server: ``searchprime index serve INDEX --workers W`` in a subprocess for each ``W`` of
  ``--workers`` (default ``1`` and the core count), each worker with ``cores // W`` search
  threads, driven by ``--clients`` keep-alive connections from raw asyncio HTTP clients (so the
  load generator costs little CPU, though it shares the host with the server).

Prints QPS, p50/p99 latency and the ratio to in-process per row, the load average at start and
end (the machine may be shared), and writes the rows as JSON with ``--out``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _synth import make_corpus, make_queries  # noqa: E402


def parse_size(s: str) -> int:
    s = s.strip().lower()
    mult = {"k": 1_000, "m": 1_000_000}.get(s[-1], 1)
    return int(float(s.rstrip("km")) * mult)


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _stats(n: int, seconds: float, lat: list[float]) -> dict[str, float]:
    ms = np.array(lat) * 1000
    return {
        "qps": n / seconds,
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
    }


# ------------------------------------------------------------------------------ in-process
async def _inproc(index: Any, queries: list[str], k: int, clients: int, per: int) -> list[float]:
    lat: list[float] = []

    async def client(c: int) -> None:
        for i in range(per):
            t = time.perf_counter()
            await index.search([queries[(c * per + i) % len(queries)]], k)
            lat.append(time.perf_counter() - t)

    await asyncio.gather(*(client(c) for c in range(clients)))
    return lat


def inproc_bench(index_dir: Path, queries: list[str], k: int, clients: int, per: int) -> dict:
    from searchprime.search.bm25 import BM25Search

    index = BM25Search.load(index_dir, threads=_cores())
    try:
        asyncio.run(_inproc(index, queries, k, 8, 5))  # warm up (page cache, threads)
        t = time.perf_counter()
        lat = asyncio.run(_inproc(index, queries, k, clients, per))
        return _stats(len(lat), time.perf_counter() - t, lat)
    finally:
        index.close()


# ---------------------------------------------------------------------------------- server
async def _client(port: int, bodies: list[bytes], lat: list[float]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = b"POST /retrieve HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    for body in bodies:
        t = time.perf_counter()
        writer.write(head + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        headers = await reader.readuntil(b"\r\n\r\n")
        if not headers.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(headers[:80])
        length = next(
            int(line.split(b":")[1])
            for line in headers.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        await reader.readexactly(length)
        lat.append(time.perf_counter() - t)
    writer.close()


async def _load(port: int, queries: list[str], k: int, clients: int, per: int) -> list[float]:
    lat: list[float] = []
    bodies = [
        [
            json.dumps({"queries": [queries[(c * per + i) % len(queries)]], "topk": k}).encode()
            for i in range(per)
        ]
        for c in range(clients)
    ]
    await asyncio.gather(*(_client(port, b, lat) for b in bodies))
    return lat


def _wait_ready(proc: subprocess.Popen, port: int, workers: int, timeout: float = 300) -> None:
    """Until every worker answered ``/health`` (fresh connections land on any of them)."""
    import httpx

    seen: set[int] = set()
    deadline = time.monotonic() + timeout
    while len(seen) < workers:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"server not ready ({len(seen)} of {workers} workers answered)")
        try:
            seen.add(httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).json()["pid"])
        except httpx.TransportError:
            time.sleep(0.2)


def server_bench(
    index_dir: Path, queries: list[str], k: int, clients: int, per: int, workers: int
) -> dict[str, float]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    threads = max(1, _cores() // workers)
    cmd = [sys.executable, "-m", "searchprime", "index", "serve", str(index_dir), "--port",
           str(port), "--workers", str(workers), "--threads", str(threads)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_ready(proc, port, workers)
        asyncio.run(_load(port, queries, k, 8, 5))  # warm up every worker's connections
        t = time.perf_counter()
        lat = asyncio.run(_load(port, queries, k, clients, per))
        out = _stats(len(lat), time.perf_counter() - t, lat)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return {"workers": workers, "threads_per_worker": threads, **out}


# ------------------------------------------------------------------------------------ main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--docs", default="100k", help="Corpus size, e.g. 2k, 100k, 1m.")
    ap.add_argument("--queries", type=int, default=2000)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--clients", type=int, default=64, help="Concurrent callers/connections.")
    ap.add_argument("--per", type=int, default=50, help="Requests per client.")
    ap.add_argument("--workers", default=None, help="Server process counts (default 1,cores).")
    ap.add_argument(
        "--work", type=Path, default=Path("/tmp/searchprime-bench-serve"), help="Corpus cache."
    )
    ap.add_argument("--out", type=Path, default=None, help="Write the results as JSON here.")
    args = ap.parse_args()

    from searchprime.search.bm25 import build_bm25_index

    n_docs = parse_size(args.docs)
    cores = _cores()
    counts = [int(w) for w in (args.workers or f"1,{cores}").split(",")]
    counts = sorted(set(counts))
    args.work.mkdir(parents=True, exist_ok=True)
    corpus = make_corpus(args.work / f"corpus_{n_docs}.jsonl", n_docs)
    index_dir = args.work / f"bm25_{n_docs}"
    if not (index_dir / "searchprime_index.json").exists():
        build_bm25_index(corpus, index_dir)
    queries = make_queries(corpus, args.queries)
    load_start = os.getloadavg()

    inproc = inproc_bench(index_dir, queries, args.k, args.clients, args.per)
    rows = [server_bench(index_dir, queries, args.k, args.clients, args.per, w) for w in counts]
    load_end = os.getloadavg()

    print(
        f"{n_docs:,} passages, k={args.k}, {args.clients} clients x {args.per} requests, "
        f"1 query/request, {cores} cores; load average {load_start[0]:.1f} -> {load_end[0]:.1f}"
    )
    print(f"{'mode':<22}{'QPS':>9}{'p50 ms':>9}{'p99 ms':>9}{'vs in-process':>15}")
    print(
        f"{f'in-process ({cores} thr)':<22}{inproc['qps']:>9.0f}"
        f"{inproc['p50_ms']:>9.1f}{inproc['p99_ms']:>9.1f}{1.0:>15.2f}"
    )
    for r in rows:
        label = f"server {r['workers']} worker(s)"
        print(
            f"{label:<22}{r['qps']:>9.0f}{r['p50_ms']:>9.1f}{r['p99_ms']:>9.1f}"
            f"{r['qps'] / inproc['qps']:>15.2f}"
        )
    if args.out is not None:
        result = {
            "docs": n_docs,
            "k": args.k,
            "clients": args.clients,
            "per": args.per,
            "cores": cores,
            "load_average": [load_start[0], load_end[0]],
            "inproc": inproc,
            "server": rows,
        }
        args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()

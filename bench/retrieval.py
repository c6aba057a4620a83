"""Retrieval benchmark: BM25 build and query speed, dense flat vs IVF, server vs in-process.

    nice python bench/retrieval.py --sizes 100k,1m            # the full run of the issue
    python bench/retrieval.py --sizes 10k --dense-docs 2000   # a quick smoke run

For each size it generates a seeded synthetic corpus in the Search-R1 layout (``_synth.py``:
~100-word passages, Zipf words), builds the BM25 index in a subprocess (wall time, peak RSS of
the process tree sampled every 50 ms, index size), then measures queries/s one at a time and
batched, for k = 3 and 10, with 1 and 2 threads. "One at a time" with 2 threads means two client
threads each sending single queries. Baselines are measured in the same run, never typed in:
Lucene (pyserini 0.22.1 + Java, from ``.venv-bench``: ``make bench-deps``) indexes the same
corpus (``--storeRaw``, so it keeps the documents as we do; 2 threads) and answers the same
queries (k = 10, each hit's document loaded), and the report prints ours/Lucene ratios and the
top-10 overlap; without it installed the report says so and prints no ratio. On the smallest
size it also times rank_bm25 on a subset of queries (the naive baseline). Dense: encode (a
subset of) the smallest corpus with the bundled MiniLM, then flat vs IVF (queries/s, recall@10
of IVF against flat). Server: ``searchprime index serve`` in a subprocess, 64 concurrent
keep-alive clients sending one query per request (raw asyncio HTTP, so the load generator costs
little CPU), QPS and p50/p99 latency, against the same 64 concurrent callers in-process.

The machine is shared: the load average at start and end is printed with the results.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _synth import make_corpus, make_queries  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
LUCENE_PYTHON = ROOT / ".venv-bench" / "bin" / "python"


def parse_size(s: str) -> int:
    s = s.strip().lower()
    mult = {"k": 1_000, "m": 1_000_000}.get(s[-1], 1)
    return int(float(s.rstrip("km")) * mult)


# --------------------------------------------------------------------------------- build


def _tree_rss(pid: int) -> tuple[int, int]:
    """(RSS, anonymous RSS) in bytes of ``pid`` and all its descendants."""
    import psutil

    try:
        procs = [psutil.Process(pid)]
        procs += procs[0].children(recursive=True)
    except psutil.NoSuchProcess:
        return 0, 0
    rss = anon = 0
    for p in procs:
        try:
            with open(f"/proc/{p.pid}/status", encoding="ascii") as fh:
                for line in fh:
                    if line.startswith("VmRSS:"):
                        rss += int(line.split()[1]) * 1024
                    elif line.startswith("RssAnon:"):
                        anon += int(line.split()[1]) * 1024
        except (FileNotFoundError, ProcessLookupError):
            pass
    return rss, anon


def measure_build(code: str | list[str]) -> dict[str, Any]:
    """Run ``code`` in a fresh interpreter (or a command line); wall time and peak (anonymous)
    RSS of its process tree."""
    t0 = time.perf_counter()
    cmd = code if isinstance(code, list) else [sys.executable, "-c", code]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    peak = peak_anon = 0
    while proc.poll() is None:
        rss, anon = _tree_rss(proc.pid)
        peak, peak_anon = max(peak, rss), max(peak_anon, anon)
        time.sleep(0.05)
    if proc.returncode:
        raise SystemExit(f"build failed ({proc.returncode})")
    return {
        "wall_s": time.perf_counter() - t0,
        "peak_rss_gib": peak / 2**30,
        "peak_anon_gib": peak_anon / 2**30,
    }


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


# ----------------------------------------------------------------------------- query speed


def qps_single(index: Any, queries: list[str], k: int, threads: int) -> float:
    index.threads = 1
    parts = [queries[i::threads] for i in range(threads)]

    def run(qs: list[str]) -> None:
        for q in qs:
            index.search_sync([q], k)

    t = time.perf_counter()
    if threads == 1:
        run(queries)
    else:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(run, parts))
    return len(queries) / (time.perf_counter() - t)


def qps_batched(index: Any, queries: list[str], k: int, threads: int, ids_only=False) -> float:
    index.threads = threads
    fn = index.retrieve_ids if ids_only else index.search_sync
    fn(queries[:50], k)
    t = time.perf_counter()
    fn(queries, k)
    return len(queries) / (time.perf_counter() - t)


def rank_bm25_baseline(corpus: Path, queries: list[str], n_queries: int) -> dict[str, float]:
    from rank_bm25 import BM25Okapi

    from searchprime.search._text import Tokenizer
    from searchprime.search.corpus import read_corpus

    tok = Tokenizer()
    t = time.perf_counter()
    docs = [tok.tokens(f"{d.title}\n{d.text}") for d in read_corpus(corpus)]
    ref = BM25Okapi(docs, k1=0.9, b=0.4)
    build = time.perf_counter() - t
    del docs
    t = time.perf_counter()
    for q in queries[:n_queries]:
        scores = ref.get_scores(tok.tokens(q))
        np.argpartition(-scores, 10)[:10]
    return {"build_s": build, "qps": n_queries / (time.perf_counter() - t)}


# ---------------------------------------------------------------------------------- lucene


def lucene_missing(python: Path) -> str | None:
    """Why the Lucene baseline cannot run (``None``: it can)."""
    if not Path(python).exists():
        return f"no {python}; `make bench-deps` installs it"
    if shutil.which("java") is None:
        return "no java on PATH; `make bench-deps` installs it"
    probe = "import importlib.util as u, sys; sys.exit(u.find_spec('pyserini') is None)"
    if subprocess.run([str(python), "-c", probe]).returncode:
        return f"pyserini is not installed in {python}"
    return None


def lucene_bench(
    python: Path, corpus: Path, work: Path, label: str, queries: list[str], args: Any
) -> dict[str, Any]:
    """Index ``corpus`` with pyserini (timed like ours) and time the same queries."""
    src, out = work / f"lucene_input_{label}", work / f"lucene_{label}"
    shutil.rmtree(out, ignore_errors=True)
    src.mkdir(exist_ok=True)
    link = src / corpus.name  # JsonCollection reads {"id", "contents"} files of a folder
    if not link.exists():
        link.symlink_to(corpus.resolve())
    env_java = {"JAVA_HOME": os.environ.get("JAVA_HOME") or _java_home()}
    os.environ.update({k: v for k, v in env_java.items() if v})
    build = measure_build(
        [str(python), "-m", "pyserini.index.lucene", "--collection", "JsonCollection",
         "--input", str(src), "--index", str(out), "--generator",
         "DefaultLuceneDocumentGenerator", "--threads", "2", "--storeRaw"]
    )  # fmt: skip
    build["index_mib"] = dir_size(out) / 2**20
    qfile = work / f"queries_{label}.json"
    qfile.write_text(json.dumps(queries), encoding="utf-8")
    cmd = [str(python), str(Path(__file__).with_name("_lucene.py")), "search", str(out)]
    cmd += [str(qfile), "--k", "10", "--threads", "2", "--single", str(args.single_queries)]
    got = subprocess.run(cmd, capture_output=True, text=True)
    if got.returncode:
        raise SystemExit(f"Lucene search failed:\n{got.stderr[-2000:]}")
    res = json.loads(got.stdout.strip().splitlines()[-1])
    return {"build": build, **res}


def _java_home() -> str | None:
    java = shutil.which("java")
    return str(Path(java).resolve().parent.parent) if java else None


def overlap(index: Any, queries: list[str], lucene_top: list[list[str]]) -> float:
    """Mean share of Lucene's top 10 doc ids that ours also returns."""
    ids, _ = index.retrieve_ids(queries, 10)
    shares = []
    for row, theirs in zip(ids, lucene_top, strict=True):
        ours = {index.store.get(int(d))["id"] for d in row if d >= 0}
        if theirs:
            shares.append(len(ours & set(theirs)) / len(theirs))
    return float(np.mean(shares)) if shares else float("nan")


def lucene_lines(label: str, r: dict[str, Any], missing: str | None) -> list[str]:
    """The ours/Lucene lines of the report (or why there are none)."""
    if "lucene" not in r:
        return [f"- {label}: Lucene not installed: no ratio ({missing})"]
    lu, b = r["lucene"], r["build"]
    rows = [
        ("index on disk MiB", b["index_mib"], lu["build"]["index_mib"], "{:,.0f}"),
        ("build s", b["wall_s"], lu["build"]["wall_s"], "{:,.1f}"),
        ("build peak RSS GiB", b["peak_rss_gib"], lu["build"]["peak_rss_gib"], "{:.2f}"),
        ("batched k=10 2 threads q/s", r["batched_k10_t2"], lu["batched_qps"], "{:,.0f}"),
        ("one at a time k=10 1 thread q/s", r["single_k10_t1"], lu["single_qps"], "{:,.0f}"),
    ]
    out = [f"- {label} vs Lucene (pyserini, same run; top-10 overlap {lu['top10_overlap']:.3f}):"]
    for name, ours, theirs, fmt in rows:
        out.append(
            f"  - {name}: ours {fmt.format(ours)}, Lucene {fmt.format(theirs)}, "
            f"ratio {ours / theirs:.2f}x"
        )
    return out


# ---------------------------------------------------------------------------------- server


async def _raw_client(host: str, port: int, bodies: list[bytes], lat: list[float]) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    head = f"POST /retrieve HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
    for body in bodies:
        t = time.perf_counter()
        writer.write(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
        headers = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in headers.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        if not headers.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(headers[:80])
        json.loads(await reader.readexactly(length))
        lat.append(time.perf_counter() - t)
    writer.close()


async def _load(
    host: str, port: int, queries: list[str], k: int, clients: int, per: int, qpr: int = 1
):
    """``clients`` keep-alive connections, ``per`` requests each, ``qpr`` queries a request."""
    lat: list[float] = []
    n = len(queries)

    def body(c: int, i: int) -> bytes:
        qs = [queries[(c * per + i + j * 7919) % n] for j in range(qpr)]
        return json.dumps({"queries": qs, "topk": k, "return_scores": True}).encode()

    bodies = [[body(c, i) for i in range(per)] for c in range(clients)]
    t = time.perf_counter()
    await asyncio.gather(*(_raw_client(host, port, b, lat) for b in bodies))
    return len(lat) * qpr / (time.perf_counter() - t), lat


async def _inproc(index: Any, queries: list[str], k: int, clients: int, per: int):
    lat: list[float] = []

    async def client(c: int) -> None:
        for i in range(per):
            q = queries[(c * per + i) % len(queries)]
            t = time.perf_counter()
            await index.search([q], k)
            lat.append(time.perf_counter() - t)

    t = time.perf_counter()
    await asyncio.gather(*(client(c) for c in range(clients)))
    return len(lat) / (time.perf_counter() - t), lat


def server_bench(
    index_dir: Path, index: Any, queries: list[str], k: int, clients: int, per: int, workers: int
):
    import socket

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = (
        "from searchprime.search.registry import SearchConfig; "
        "from searchprime.search.server import serve_index; "
        f"serve_index(SearchConfig(path={str(index_dir)!r}, threads=2), port={port}, "
        f"workers={workers}, log_level='warning')"
    )  # what `searchprime index serve INDEX --threads 2 --workers N` runs
    cmd = [sys.executable, "-c", code]
    log = open(index_dir.parent / "server.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                log.flush()
                tail = (index_dir.parent / "server.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"server did not start:\n{tail}")
            time.sleep(0.2)
        asyncio.run(_load("127.0.0.1", port, queries, k, 8, 10))  # warm up
        qps, lat = asyncio.run(_load("127.0.0.1", port, queries, k, clients, per))
        qps8, _ = asyncio.run(_load("127.0.0.1", port, queries, k, clients, max(1, per // 4), 8))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    index.threads = 2
    index._batcher = type(index._batcher)(index.search_sync)
    asyncio.run(_inproc(index, queries, k, 8, 10))
    in_qps, in_lat = asyncio.run(_inproc(index, queries, k, clients, per))
    ms = lambda xs, p: float(np.percentile(np.array(xs) * 1000, p))  # noqa: E731
    return {
        "workers": workers,
        "server_qps": qps,
        "server_qps_8_per_request": qps8,
        "server_p50_ms": ms(lat, 50),
        "server_p99_ms": ms(lat, 99),
        "inproc_qps": in_qps,
        "inproc_p50_ms": ms(in_lat, 50),
        "inproc_p99_ms": ms(in_lat, 99),
    }


# ----------------------------------------------------------------------------------- dense


def dense_bench(corpus: Path, work: Path, queries: list[str], n_docs: int) -> dict[str, Any]:
    from searchprime.search.dense import DenseConfig, DenseSearch, build_dense_index, reindex_dense

    flat_dir = work / f"dense_flat_{n_docs}"
    t = time.perf_counter()
    build_dense_index(corpus, flat_dir, DenseConfig(threads=1), limit=n_docs)
    out: dict[str, Any] = {"docs": n_docs, "build_s": time.perf_counter() - t}
    man = json.loads((flat_dir / "searchprime_index.json").read_text())
    out["encode_s"] = man["encode_seconds"]
    out["encode_per_s"] = n_docs / man["encode_seconds"]
    ivf_dir = reindex_dense(
        flat_dir, work / f"dense_ivf_{n_docs}", DenseConfig(index="ivf", threads=1)
    )
    flat, ivf = DenseSearch.load(flat_dir, threads=1), DenseSearch.load(ivf_dir, threads=1)
    out["nlist"] = ivf.manifest["nlist"]
    qs = queries[:500]
    from searchprime.search.dense import _encode

    t = time.perf_counter()
    vecs = _encode(flat.encoder, qs, 128)
    out["query_encode_per_s"] = len(qs) / (time.perf_counter() - t)
    for name, idx in (("flat", flat), ("ivf", ivf)):
        t = time.perf_counter()
        idx.search_sync(qs, 10)
        out[f"{name}_qps_end_to_end"] = len(qs) / (time.perf_counter() - t)
    _, exact = flat.index.search(vecs, 10)
    t = time.perf_counter()
    flat.index.search(vecs, 10)
    out["flat_search_only_qps"] = len(qs) / (time.perf_counter() - t)
    for nprobe in (4, 16, 64):
        ivf.set_nprobe(nprobe)
        t = time.perf_counter()
        _, got = ivf.index.search(vecs, 10)
        out[f"ivf_nprobe{nprobe}_search_only_qps"] = len(qs) / (time.perf_counter() - t)
        out[f"ivf_nprobe{nprobe}_recall@10"] = float(
            np.mean([len(set(a) & set(b)) / 10 for a, b in zip(exact, got, strict=True)])
        )
    return out


# ------------------------------------------------------------------------------------ main


def bench_size(label: str, n: int, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from searchprime.search.bm25 import BM25Search

    corpus = make_corpus(work / f"corpus_{label}.jsonl", n, seed=args.seed)
    queries = make_queries(corpus, args.queries, seed=args.seed + 1)
    out_dir = work / f"bm25_{label}"
    code = (
        "from searchprime.search.bm25 import BM25Config, build_bm25_index; "
        f"build_bm25_index({str(corpus)!r}, {str(out_dir)!r}, BM25Config())"
    )
    res: dict[str, Any] = {"docs": n, "corpus_mib": corpus.stat().st_size / 2**20}
    print(f"[{label}] building BM25 ...", flush=True)
    res["build"] = measure_build(code)
    res["build"]["index_mib"] = dir_size(out_dir) / 2**20
    res["build"]["docstore_mib"] = (
        sum((out_dir / f).stat().st_size for f in ("docs.zst", "docs.offsets.npy")) / 2**20
    )
    index = BM25Search.load(out_dir)
    index.retrieve_ids(queries[:10], 10)  # JIT warm-up (cached on disk after the first run)
    for k in (3, 10):
        for th in (1, 2):
            print(f"[{label}] k={k} threads={th} ...", flush=True)
            single = queries[: args.single_queries]
            res[f"single_k{k}_t{th}"] = qps_single(index, single, k, th)
            res[f"batched_k{k}_t{th}"] = qps_batched(index, queries, k, th)
            res[f"batched_ids_k{k}_t{th}"] = qps_batched(index, queries, k, th, ids_only=True)
    if args.lucene_python is not None:
        print(f"[{label}] Lucene ...", flush=True)
        res["lucene"] = lucene_bench(args.lucene_python, corpus, work, label, queries, args)
        res["lucene"]["top10_overlap"] = overlap(index, queries, res["lucene"].pop("top"))
    if label == args.sizes[0] and not args.skip_rank_bm25:
        print(f"[{label}] rank_bm25 ...", flush=True)
        res["rank_bm25"] = rank_bm25_baseline(corpus, queries, args.rank_bm25_queries)
    if not args.skip_server:
        print(f"[{label}] server ...", flush=True)
        res["server"] = []
        for w in args.server_workers:
            try:
                res["server"].append(
                    server_bench(out_dir, index, queries, 10, args.clients, args.per_client, w)
                )
            except RuntimeError as exc:
                print(exc, flush=True)
    index.close()
    return res


def report(results: dict[str, Any]) -> str:
    lines = [
        f"load average at start {results['load_start']}, at end {results['load_end']} "
        f"({os.cpu_count()} CPUs, shared with other jobs)",
        "",
        "| size | build s | peak RSS GiB (anon) | index MiB | k | threads | one-at-a-time q/s | "
        "batched q/s | batched ids-only q/s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for label, r in results["sizes"].items():
        b = r["build"]
        for k in (3, 10):
            for th in (1, 2):
                lines.append(
                    f"| {label} | {b['wall_s']:.1f} | {b['peak_rss_gib']:.2f} "
                    f"({b['peak_anon_gib']:.2f})"
                    f" | {b['index_mib']:.0f} | {k} | {th} | {r[f'single_k{k}_t{th}']:,.0f} | "
                    f"{r[f'batched_k{k}_t{th}']:,.0f} | {r[f'batched_ids_k{k}_t{th}']:,.0f} |"
                )
    lines.append("")
    for label, r in results["sizes"].items():
        lines.extend(lucene_lines(label, r, results.get("lucene_missing")))
        if "rank_bm25" in r:
            rb = r["rank_bm25"]
            ours = r["single_k10_t1"]
            lines.append(
                f"- {label}: rank_bm25 {rb['qps']:.1f} q/s (build {rb['build_s']:.0f} s); "
                f"ours one at a time {ours:,.0f} q/s = {ours / rb['qps']:,.0f}x, batched 2 threads "
                f"{r['batched_k10_t2'] / rb['qps']:,.0f}x"
            )
        for s in r.get("server", []):
            lines.append(
                f"- {label}: server ({s['workers']} process(es)), 64 clients, 1 query/request, "
                f"k=10: {s['server_qps']:,.0f} q/s "
                f"(p50 {s['server_p50_ms']:.1f} ms, p99 {s['server_p99_ms']:.1f} ms); in-process, "
                f"same 64 callers: {s['inproc_qps']:,.0f} q/s (p50 {s['inproc_p50_ms']:.1f} ms, "
                f"p99 {s['inproc_p99_ms']:.1f} ms); ratio {s['server_qps'] / s['inproc_qps']:.0%}; "
                f"8 queries/request: {s['server_qps_8_per_request']:,.0f} q/s"
            )
    if "dense" in results:
        d = results["dense"]
        lines.append(
            f"- dense ({d['docs']:,} passages, MiniLM-L6, 1 thread): encode "
            f"{d['encode_s']:.0f} s ({d['encode_per_s']:.0f} passages/s); query encoding "
            f"{d['query_encode_per_s']:.0f} q/s; end to end flat {d['flat_qps_end_to_end']:.0f} "
            f"q/s, IVF {d['ivf_qps_end_to_end']:.0f} q/s; search only: flat "
            f"{d['flat_search_only_qps']:,.0f} q/s, IVF(nlist={d['nlist']}) "
            + ", ".join(
                f"nprobe {p}: {d[f'ivf_nprobe{p}_search_only_qps']:,.0f} q/s recall@10 "
                f"{d[f'ivf_nprobe{p}_recall@10']:.3f}"
                for p in (4, 16, 64)
            )
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="100k,1m", help="Comma-separated corpus sizes (10k, 1m).")
    ap.add_argument("--work", type=Path, default=Path("/tmp/searchprime-bench-retrieval"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--queries", type=int, default=2000, help="Queries for batched runs.")
    ap.add_argument("--single-queries", type=int, default=1000, help="Queries sent one by one.")
    ap.add_argument("--rank-bm25-queries", type=int, default=20)
    ap.add_argument("--dense-docs", type=int, default=20_000, help="Passages to encode (0: skip).")
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--per-client", type=int, default=40, help="Requests per server client.")
    ap.add_argument("--server-workers", default="1", help="Server process counts, e.g. 1,2.")
    ap.add_argument("--skip-rank-bm25", action="store_true")
    ap.add_argument(
        "--lucene-python",
        type=Path,
        default=LUCENE_PYTHON,
        help="Python with pyserini (default .venv-bench, made by `make bench-deps`).",
    )
    ap.add_argument("--skip-lucene", action="store_true")
    ap.add_argument("--skip-server", action="store_true")
    ap.add_argument("--json-out", type=Path, default=None)
    args = ap.parse_args()
    args.sizes = [s.strip().lower() for s in args.sizes.split(",") if s.strip()]
    args.server_workers = [int(w) for w in args.server_workers.split(",")]
    args.work.mkdir(parents=True, exist_ok=True)
    missing = "skipped (--skip-lucene)" if args.skip_lucene else lucene_missing(args.lucene_python)
    if missing:
        print(f"Lucene not installed: no ratio ({missing})", flush=True)
        args.lucene_python = None
    results: dict[str, Any] = {"load_start": os.getloadavg(), "sizes": {}, "args": vars(args)}
    results["lucene_missing"] = missing
    results["args"] = {k: str(v) for k, v in vars(args).items()}
    for label in args.sizes:
        results["sizes"][label] = bench_size(label, parse_size(label), args, args.work)
    if args.dense_docs:
        print("dense ...", flush=True)
        first = args.work / f"corpus_{args.sizes[0]}.jsonl"
        queries = make_queries(first, 500, seed=args.seed + 1)
        n = min(args.dense_docs, parse_size(args.sizes[0]))
        results["dense"] = dense_bench(first, args.work, queries, n)
    results["load_end"] = os.getloadavg()
    text = report(results)
    print(text)
    out = args.json_out or args.work / "results.json"
    out.write_text(json.dumps(results, indent=2, default=float))
    print(f"\nresults: {out}")


if __name__ == "__main__":
    main()

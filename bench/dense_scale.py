"""Dense indexes at scale: recall@10 vs exact search, QPS, disk and RSS per FAISS kind.

    nice -n 10 python bench/dense_scale.py --n 100000            # ~10-20 min on 2 busy cores
    python bench/dense_scale.py --n 1000000 --dim 768            # an idle machine
    python bench/dense_scale.py --n 20000 --kinds flat,ivf_pq:pq_m=192 --queries 200
    python bench/dense_scale.py --corpus world/corpus.jsonl --questions world/tasks/dev.jsonl \
        --n 20000 --kinds flat,ivf_pq:pq_m=48:rerank=100   # real MiniLM encodings

Vectors are synthetic with realistic cluster structure: unit vectors from a mixture of
Gaussians (N/100 topics, Zipf-like topic sizes, per-topic spread) whose within-topic noise
has a decaying spectrum in a random basis, as sentence embeddings do (a few directions carry
most of the variation). Queries are fresh draws from the same mixture. Vectors are written
to ``embeddings.npy`` in blocks and every index is built through the library's sharded path
(``searchprime.search._faiss_build``), so the bench also checks that the build memory stays
bounded. Exact top-10 comes from the flat index. Per kind it prints: build time and peak-RSS
growth, disk (and what ``index plan`` predicted), RSS after load + search (anonymous /
file-backed, i.e. mapped index pages), and recall@10 / QPS (one thread, all queries in one
batch) for a sweep of ``nprobe`` (IVF) or ``efSearch`` (HNSW). A kind may carry settings:
``ivf_pq:pq_m=192:nlist=2048``; ``ivf_pq:rerank=100`` re-scores 100 candidates per query
exactly from the memory-mapped ``embeddings.npy`` (its row keeps the plain recall and QPS as
``plain_recall10`` / ``plain_qps``; "disk" and "vs flat" stay the index's own: the floats stay on
disk, read a few rows a query). Results go to ``bench/results/dense_scale_<n>_<dim>.json``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from searchprime.search._faiss_build import build_faiss, read_faiss
from searchprime.search._faiss_kinds import IVF_KINDS, set_search_params
from searchprime.search._faiss_vectors import ExactReranker, NpyAppender
from searchprime.search.dense import DenseConfig, set_threads
from searchprime.search.dense_plan import plan_dense

DEFAULT_KINDS = "flat,ivf,hnsw,hnsw_sq8,ivf_pq,ivf_pq:pq_m={half},opq_ivf_pq"
SWEEP = {"ivf": [8, 16, 32, 64, 128, 256], "hnsw": [32, 64, 128]}


def write_vectors(path: Path, n: int, q: int, dim: int, seed: int = 0) -> np.ndarray:
    """Write ``n`` clustered unit vectors to ``path`` in blocks; return ``q`` fresh queries."""
    rng = np.random.default_rng(seed)
    k = max(10, n // 100)
    centers = rng.standard_normal((k, dim)).astype(np.float32)
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    rot, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    spectrum = 1.0 / (1.0 + np.arange(dim))
    basis = (spectrum[:, None] * (0.9 / np.linalg.norm(spectrum)) * rot).astype(np.float32)
    sizes = 1.0 / np.sqrt(1.0 + np.arange(k))
    sizes /= sizes.sum()
    spread = rng.uniform(0.7, 1.3, size=k).astype(np.float32)

    def draw(m: int) -> np.ndarray:
        labels = rng.choice(k, size=m, p=sizes)
        noise = rng.standard_normal((m, dim), dtype=np.float32) @ basis
        x = centers[labels] + spread[labels, None] * noise
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    out = NpyAppender(path)
    for start in range(0, n, 50_000):
        out.append(draw(min(50_000, n - start)))
    out.close()
    return np.ascontiguousarray(draw(q))


def encode_corpus(path: Path, corpus: Path, questions: Path, n: int, q: int) -> np.ndarray:
    """Real MiniLM encodings: the first ``n`` passages of ``corpus`` to ``path``; returns the
    first ``q`` questions of a task file, encoded the same way (the dense backend's own code)."""
    from searchprime.search.corpus import read_corpus
    from searchprime.search.dense import _encode, _passage, load_encoder
    from searchprime.tasks import load_tasks

    enc = load_encoder()
    if not path.exists():
        out, batch = NpyAppender(path), []
        for i, doc in enumerate(read_corpus(corpus)):
            if i >= n:
                break
            batch.append(_passage(doc))
            if len(batch) == 2048:
                out.append(_encode(enc, batch, 128))
                batch = []
        if batch:
            out.append(_encode(enc, batch, 128))
        out.close()
    asked = [t.question for t in load_tasks(questions)[:q]]
    return _encode(enc, asked, 128)


def _status(field: str) -> int:
    """A /proc/self/status field in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def _reset_peak() -> None:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def parse_kind(spec: str, dim: int) -> tuple[str, str, dict[str, Any]]:
    """``ivf_pq:pq_m=192`` -> (label, kind, settings)."""
    spec = spec.replace("{half}", str(dim // 2))
    kind, *pairs = spec.split(":")
    settings = {k: int(v) for k, v in (p.split("=") for p in pairs)}
    return spec, kind, settings


def recall_at(got: np.ndarray, exact: np.ndarray) -> float:
    return float(np.mean([len(set(g) & set(e)) / 10 for g, e in zip(got, exact, strict=True)]))


def bench_kind(
    label: str, cfg: DenseConfig, emb: Path, work: Path, queries: np.ndarray, exact: np.ndarray
) -> dict[str, Any]:
    out = work / label.replace(":", "_").replace("=", "")
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    _reset_peak()
    base = _status("VmRSS")
    t = time.perf_counter()
    info = build_faiss(emb, out, cfg)
    build_s = time.perf_counter() - t
    build_peak = _status("VmHWM") - base
    disk = sum(p.stat().st_size for p in out.glob("faiss.*"))
    n, dim = info["num_docs"], info["dim"]
    [plan] = plan_dense(n, dim, [cfg.index], cfg)
    anon0, file0 = _status("RssAnon"), _status("RssFile")
    index = read_faiss(out)
    sweep_key = "ivf" if cfg.index in IVF_KINDS else "hnsw" if "hnsw" in cfg.index else None
    points = []
    reranker = ExactReranker(emb) if cfg.rerank else None
    for value in SWEEP.get(sweep_key or "", [None]):
        set_search_params(index, nprobe=value, ef_search=value)
        index.search(queries[:100], 10)  # warm the mapped pages
        t = time.perf_counter()
        _, ids = index.search(queries, 10)
        qps = len(queries) / (time.perf_counter() - t)
        param = {"ivf": "nprobe", "hnsw": "efSearch"}.get(sweep_key or "", "-")
        point = {"param": param, "value": value, "recall10": recall_at(ids, exact), "qps": qps}
        if reranker is not None:  # the same search asked for rerank candidates, re-scored
            t = time.perf_counter()
            _, cand = index.search(queries, cfg.rerank)
            ids, _ = reranker.rerank(queries, cand, 10)
            point["plain_recall10"], point["plain_qps"] = point["recall10"], point["qps"]
            point["recall10"] = recall_at(ids, exact)
            point["qps"] = len(queries) / (time.perf_counter() - t)
        points.append(point)
    row = {
        "label": label,
        "factory": info["factory"],
        "build_s": build_s,
        "train_s": info["train_seconds"],
        "build_peak_growth": build_peak,
        "disk": disk,
        "plan_disk": plan.index_disk,
        "plan_build_peak": plan.build_peak,
        "vs_flat": disk / (4 * n * dim),
        "rss_anon": _status("RssAnon") - anon0,
        "rss_file": _status("RssFile") - file0,
        "points": points,
    }
    del index
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=100_000, help="Vectors.")
    ap.add_argument("--dim", type=int, default=384, help="Dimension (MiniLM 384, E5 768).")
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--kinds", default=DEFAULT_KINDS, help="Comma-separated kind[:k=v...].")
    ap.add_argument("--shard-size", type=int, default=100_000)
    ap.add_argument("--threads", type=int, default=1, help="FAISS threads.")
    ap.add_argument("--work", type=Path, default=Path("/tmp/searchprime_dense_scale"))
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    ap.add_argument("--corpus", type=Path, default=None, help="Encode this corpus with MiniLM.")
    ap.add_argument("--questions", type=Path, default=None, help="Task file: queries (--corpus).")
    args = ap.parse_args()
    set_threads(args.threads)
    args.work.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    if args.corpus is not None:  # real encodings; --dim follows the encoder
        if args.questions is None:
            raise SystemExit("--corpus needs --questions (a task file whose questions are queries)")
        emb = args.work / f"minilm_{args.corpus.stem}_{args.n}.npy"
        queries = encode_corpus(emb, args.corpus, args.questions, args.n, args.queries)
        from searchprime.search._faiss_vectors import npy_shape

        args.n, args.dim, _ = npy_shape(emb)
        args.queries = len(queries)
        what = f"MiniLM encodings of {args.corpus}"
    else:
        emb = args.work / f"embeddings_{args.n}_{args.dim}.npy"
        queries = write_vectors(emb, args.n, args.queries, args.dim)
        what = "synthetic vectors"
    print(f"{args.n:,} x {args.dim} {what} in {time.perf_counter() - t:.1f} s", flush=True)
    rows = []
    exact = None
    for spec in ["flat"] + [s for s in args.kinds.split(",") if s != "flat"]:
        label, kind, settings = parse_kind(spec, args.dim)
        cfg = DenseConfig(index=kind, shard_size=args.shard_size, threads=args.threads, **settings)
        if exact is None:  # flat first: its top-10 is the ground truth
            out = args.work / "flat_truth"
            out.mkdir(exist_ok=True)
            build_faiss(emb, out, cfg)
            exact = read_faiss(out).search(queries, 10)[1]
        row = bench_kind(label, cfg, emb, args.work, queries, exact)
        rows.append(row)
        best = max(row["points"], key=lambda p: (p["recall10"], p["qps"]))
        print(
            f"{label:<22} {row['factory']:<28} build {row['build_s']:7.1f} s  "
            f"disk {row['disk'] / 2**20:8.1f} MiB ({row['vs_flat']:.3f} of flat; plan "
            f"{row['plan_disk'] / row['disk']:.3f}x)  best recall {best['recall10']:.3f}",
            flush=True,
        )
    print_table(rows, args.n, args.dim)
    args.out.mkdir(parents=True, exist_ok=True)
    tag = f"_minilm_{args.corpus.stem}" if args.corpus is not None else ""
    path = args.out / f"dense_scale_{args.n}_{args.dim}{tag}.json"
    meta = {"n": args.n, "dim": args.dim, "queries": args.queries, "threads": args.threads}
    if args.corpus is not None:
        meta.update(corpus=str(args.corpus), questions=str(args.questions))
    path.write_text(json.dumps({**meta, "rows": rows}, indent=2))
    print(f"wrote {path}")


def print_table(rows: list[dict[str, Any]], n: int, dim: int) -> None:
    mib = 2**20
    print(f"\n{n:,} vectors x {dim}: recall@10 vs exact, 1 thread, batched queries")
    head = (
        f"{'kind':<22} {'disk MiB':>9} {'vs flat':>7} {'plan/real':>9} {'build s':>8} "
        f"{'build+RSS':>9} {'RSS anon':>8} {'RSS file':>8} {'param':>9} {'recall':>7} {'QPS':>8}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        first = (
            f"{r['label']:<22} {r['disk'] / mib:9.1f} {r['vs_flat']:7.3f} "
            f"{r['plan_disk'] / r['disk']:9.3f} {r['build_s']:8.1f} "
            f"{r['build_peak_growth'] / mib:9.1f} {r['rss_anon'] / mib:8.1f} "
            f"{r['rss_file'] / mib:8.1f}"
        )
        for i, p in enumerate(r["points"]):
            lead = first if i == 0 else " " * len(first)
            value = f"{p['param']}={p['value']}" if p["value"] is not None else "-"
            print(f"{lead} {value:>9} {p['recall10']:7.3f} {p['qps']:8.0f}")


if __name__ == "__main__":
    main()

"""``searchprime index build | plan | serve | query``: retrieval indexes and the Search-R1
server."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer

from searchprime.cli._common import console, out, progress_bar, summary
from searchprime.errors import ConfigError

__all__ = ["build_main", "plan_main", "register"]

# the dense index kinds (searchprime.search._faiss_kinds.KINDS; kept literal so --help
# does not import faiss)
DENSE_KINDS = ("flat", "ivf", "hnsw", "hnsw_sq8", "ivf_pq", "opq_ivf_pq")


def _index_kind(index: Path) -> str:
    from searchprime.search.bm25 import read_manifest

    if not index.is_dir():
        raise ConfigError(f"{index}: not an index folder")
    return str(read_manifest(index).get("kind"))


def _load(index: Path, threads: int | None = None) -> Any:
    from searchprime.search.registry import SearchConfig, load_search

    return load_search(SearchConfig(kind=_index_kind(index), path=str(index), threads=threads))


def _human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def _dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def build_main(
    kind: str,
    corpus: Path,
    out_dir: Path,
    *,
    skip_bad: bool = False,
    k1: float | None = None,
    b: float | None = None,
    stemmer: str | None = None,
    no_stemmer: bool = False,
    no_stopwords: bool = False,
    workers: int | None = None,
    model: str | None = None,
    index_type: str | None = None,
    nlist: int | None = None,
    threads: int | None = None,
    limit: int | None = None,
    config: Path | None = None,
    dense: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Build an index; returns its manifest (also used by scripts and tests)."""
    from searchprime.config import load_config

    t0 = time.perf_counter()
    if kind == "bm25":
        from searchprime.search.bm25 import BM25Config, build_bm25_index, read_manifest

        overrides = {"k1": k1, "b": b, "stemmer": stemmer, "workers": workers}
        cfg = load_config(BM25Config, config, overrides)
        if no_stemmer:
            cfg.stemmer = None
        if no_stopwords:
            cfg.stopwords = None
        with progress_bar("indexing passages", None) as advance:
            build_bm25_index(corpus, out_dir, cfg, skip_bad=skip_bad, progress=advance)
    elif kind == "dense":
        from searchprime.search.bm25 import read_manifest
        from searchprime.search.dense import DenseConfig, build_dense_index

        overrides = {"model": model, "index": index_type, "nlist": nlist, "threads": threads}
        cfg = load_config(DenseConfig, config, {**overrides, **(dense or {})})
        with _dense_progress(limit) as (encoded, added):
            build_dense_index(
                corpus,
                out_dir,
                cfg,
                skip_bad=skip_bad,
                progress=encoded,
                index_progress=added,
                limit=limit,
            )
    else:
        raise ConfigError(f"--kind: {kind!r} is not one of bm25, dense")
    manifest = read_manifest(out_dir)
    skipped = manifest.get("skipped", 0)
    summary(
        f"{kind} index of {manifest['num_docs']:,} passages in {out_dir} "
        f"({_human_bytes(_dir_size(out_dir))}, {time.perf_counter() - t0:.1f} s"
        + (f", {skipped} bad records skipped" if skipped else "")
        + ")"
    )
    return manifest


@contextmanager
def _dense_progress(total: int | None) -> Iterator[tuple[Callable[[int], None], ...]]:
    """Two bars: passages encoded, then vectors added to the index shard by shard."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    cols = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*cols, TimeElapsedColumn(), console=console) as bar:
        enc = bar.add_task("encoding passages", total=total)
        add = bar.add_task("adding to the index", total=None, start=False)

        def encoded(n: int) -> None:
            bar.advance(enc, n)

        def added(n: int) -> None:
            if not bar.tasks[add].started:
                bar.update(add, total=bar.tasks[enc].completed)
                bar.start_task(add)
            bar.advance(add, n)

        yield encoded, added


def plan_main(
    docs: int,
    dim: int,
    kinds: list[str] | None = None,
    *,
    config: Path | None = None,
    overrides: dict[str, Any] | None = None,
    as_json: bool = False,
) -> list[dict[str, Any]]:
    """Print (and return) each dense kind's memory and disk for ``docs`` x ``dim`` vectors."""
    from rich.table import Table

    from searchprime.config import load_config
    from searchprime.search.dense import DenseConfig
    from searchprime.search.dense_plan import plan_dense

    if docs < 1 or dim < 1:
        raise ConfigError(f"index plan: --docs and --dim must be >= 1 (got {docs}, {dim})")
    cfg = load_config(DenseConfig, config, overrides)
    plans = [p.to_json() for p in plan_dense(docs, dim, kinds, cfg)]
    if as_json:
        for p in plans:
            out.print(json.dumps(p), markup=False, highlight=False, soft_wrap=True)
        return plans
    flat = 4 * docs * dim
    table = Table(title=f"dense index plan: {docs:,} vectors x {dim} floats")
    heads = ("kind", "factory", "B/vec", "disk", "vs flat", "RAM all", "RAM min", "embeddings")
    for col in (*heads, "build peak", "train"):
        table.add_column(col, justify="left" if col in ("kind", "factory") else "right")
    for p in plans:
        table.add_row(
            p["kind"],
            p["factory"],
            f"{p['bytes_per_vector']:,.1f}",
            _human_bytes(p["index_disk"]),
            f"{p['index_disk'] / flat:.3f}",
            _human_bytes(p["memory_full"]),
            _human_bytes(p["memory_min"]),
            _human_bytes(p["embeddings_disk"]),
            _human_bytes(p["build_peak"]),
            f"{p['train_vectors']:,}" if p["train_vectors"] else "-",
        )
    out.print(table)
    console.print(
        "disk: faiss.index (+ faiss.ivfdata); flat = 4·N·D. RAM all: every page resident "
        "(full speed); RAM min: IVF lists paged in from disk as probed. The files are "
        "memory-mapped, so processes serving one index share its pages. embeddings: "
        "embeddings.npy (keep_embeddings). Build peak excludes the encoder and Python (~0.3 GiB).",
        highlight=False,
    )
    return plans


def register(app: typer.Typer) -> None:
    """Add the ``index`` sub-app to ``app``."""
    index_app = typer.Typer(
        name="index",
        help="Retrieval indexes (BM25, dense) and the Search-R1-compatible server.",
        no_args_is_help=True,
    )

    @index_app.command("build")
    def build_cmd(
        corpus: Path = typer.Argument(..., help="Corpus: JSONL, .jsonl.gz or parquet."),
        out_dir: Path = typer.Argument(..., help="Index folder to write."),
        kind: str = typer.Option("bm25", "--kind", help="bm25 or dense."),
        skip_bad: bool = typer.Option(False, "--skip-bad", help="Skip and count bad records."),
        config: Path | None = typer.Option(None, "--config", help="YAML BM25Config/DenseConfig."),
        k1: float | None = typer.Option(None, "--k1", help="BM25 k1 (default 0.9)."),
        b: float | None = typer.Option(None, "--b", help="BM25 b (default 0.4)."),
        stemmer: str | None = typer.Option(None, "--stemmer", help="PyStemmer language."),
        no_stemmer: bool = typer.Option(False, "--no-stemmer", help="BM25 without stemming."),
        no_stopwords: bool = typer.Option(False, "--no-stopwords", help="Keep stop-words."),
        workers: int | None = typer.Option(None, "--workers", help="BM25 tokenizer processes."),
        model: str | None = typer.Option(None, "--model", help="sentence-transformers folder."),
        index_type: str | None = typer.Option(
            None, "--index", help=f"dense: {', '.join(DENSE_KINDS)} (see `index plan`)."
        ),
        nlist: int | None = typer.Option(None, "--nlist", help="dense IVF lists."),
        pq_m: int | None = typer.Option(None, "--pq-m", help="dense PQ bytes per vector."),
        train_size: int | None = typer.Option(None, "--train-size", help="dense: training sample."),
        shard_size: int | None = typer.Option(
            None, "--shard-size", help="dense: vectors per shard."
        ),
        threads: int | None = typer.Option(None, "--threads", help="dense: torch/FAISS threads."),
        limit: int | None = typer.Option(None, "--limit", help="dense: first N passages only."),
    ) -> None:
        """Build a BM25 or dense index (plus a document store) from a corpus file."""
        build_main(
            kind,
            corpus,
            out_dir,
            skip_bad=skip_bad,
            k1=k1,
            b=b,
            stemmer=stemmer,
            no_stemmer=no_stemmer,
            no_stopwords=no_stopwords,
            workers=workers,
            model=model,
            index_type=index_type,
            nlist=nlist,
            threads=threads,
            limit=limit,
            config=config,
            dense={"pq_m": pq_m, "train_size": train_size, "shard_size": shard_size},
        )

    @index_app.command("plan")
    def plan_cmd(
        docs: int = typer.Option(..., "--docs", help="Number of passages (vectors)."),
        dim: int = typer.Option(..., "--dim", help="Embedding dimension (MiniLM 384, E5 768)."),
        kind: list[str] = typer.Option(
            [],
            "--kind",
            help=f"Index kinds, repeatable or comma-separated: {', '.join(DENSE_KINDS)}.",
        ),
        config: Path | None = typer.Option(None, "--config", help="YAML DenseConfig."),
        nlist: int | None = typer.Option(None, "--nlist", help="IVF lists."),
        pq_m: int | None = typer.Option(None, "--pq-m", help="PQ sub-quantizers."),
        pq_nbits: int | None = typer.Option(None, "--pq-nbits", help="Bits per sub-quantizer."),
        hnsw_m: int | None = typer.Option(None, "--hnsw-m", help="HNSW neighbours per node."),
        train_size: int | None = typer.Option(None, "--train-size", help="Training sample."),
        shard_size: int | None = typer.Option(None, "--shard-size", help="Vectors per shard."),
        as_json: bool = typer.Option(False, "--json", help="One JSON object per kind."),
    ) -> None:
        """Print the memory and disk each dense index kind needs, before building anything."""
        kinds = [k.strip() for arg in kind for k in arg.split(",") if k.strip()] or None
        overrides = {
            "nlist": nlist,
            "pq_m": pq_m,
            "pq_nbits": pq_nbits,
            "hnsw_m": hnsw_m,
            "train_size": train_size,
            "shard_size": shard_size,
        }
        plan_main(docs, dim, kinds, config=config, overrides=overrides, as_json=as_json)

    @index_app.command("serve")
    def serve_cmd(
        index: Path = typer.Argument(..., help="Index folder."),
        host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (0.0.0.0: all)."),
        port: int = typer.Option(8000, "--port", help="Port."),
        token_env: str | None = typer.Option(
            None, "--token-env", help="Env var holding a bearer token clients must send."
        ),
        topk: int = typer.Option(3, "--topk", help="Default topk when a request has none."),
        threads: int | None = typer.Option(None, "--threads", help="Search threads."),
        workers: int = typer.Option(
            1, "--workers", help="Server processes sharing the port (and the mapped index)."
        ),
        max_queries: int = typer.Option(
            4096, "--max-queries", help="Queries per request (413 beyond)."
        ),
        max_topk: int = typer.Option(100, "--max-topk", help="Largest topk (422 beyond)."),
        max_hits: int = typer.Option(
            100_000, "--max-hits", help="Largest queries x topk per request (413 beyond)."
        ),
        max_response_mb: float = typer.Option(
            64, "--max-response-mb", help="Largest response body (413 beyond)."
        ),
    ) -> None:
        """Serve an index over Search-R1's POST /retrieve (and GET /health)."""
        from searchprime.errors import ConfigError
        from searchprime.search.registry import SearchConfig
        from searchprime.search.server import ServerLimits, serve_index

        try:
            limits = ServerLimits(
                max_queries=max_queries,
                max_topk=max_topk,
                max_hits=max_hits,
                max_response_bytes=int(max_response_mb * 2**20),
            )
        except ValueError as exc:
            raise ConfigError(f"index serve: {exc}") from None

        cfg = SearchConfig(kind=_index_kind(index), path=str(index), threads=threads)
        console.print(
            f"serving {cfg.kind} index {index} at http://{host}:{port}/retrieve"
            + (f" with {workers} worker processes" if workers > 1 else "")
            + (" (bearer token required)" if token_env else "")
        )
        serve_index(cfg, host, port, token_env, default_topk=topk, workers=workers, limits=limits)

    @index_app.command("query")
    def query_cmd(
        index: Path = typer.Argument(..., help="Index folder."),
        text: list[str] = typer.Argument(..., help="One or more queries."),
        k: int = typer.Option(3, "-k", "--topk", help="Hits per query."),
        as_json: bool = typer.Option(False, "--json", help="Print hits as JSON lines."),
    ) -> None:
        """Query an index and print the hits as the agent sees them."""
        from searchprime.search.format import format_hits

        backend = _load(index)
        results = backend.search_sync(text, k)
        for q, hits in zip(text, results, strict=True):
            if as_json:
                line = json.dumps({"query": q, "hits": [h.model_dump() for h in hits]})
                out.print(line, markup=False, highlight=False, soft_wrap=True)
                continue
            out.print(f"[bold]Query:[/bold] {q}")
            out.print(format_hits(hits), markup=False, highlight=False)

    app.add_typer(index_app)

"""``searchprime index build | serve | query``: retrieval indexes and the Search-R1 server."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import typer

from searchprime.cli._common import console, out, progress_bar, summary
from searchprime.errors import ConfigError

__all__ = ["register"]


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
        cfg = load_config(DenseConfig, config, overrides)
        with progress_bar("encoding passages", limit) as advance:
            build_dense_index(
                corpus, out_dir, cfg, skip_bad=skip_bad, progress=advance, limit=limit
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
        index_type: str | None = typer.Option(None, "--index", help="dense: flat, ivf, hnsw."),
        nlist: int | None = typer.Option(None, "--nlist", help="dense IVF lists."),
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
        )

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

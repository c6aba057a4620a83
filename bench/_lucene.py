"""The Lucene baseline (pyserini + Java), run by ``bench/retrieval.py`` in ``.venv-bench``.

    .venv-bench/bin/python bench/_lucene.py search INDEX QUERIES.json --k 10 --threads 2

Indexing is pyserini's own CLI (``python -m pyserini.index.lucene``, timed by the caller);
this script only searches: BM25 with the given k1/b, one query at a time and batched with
``batch_search(threads=...)`` (Anserini reads each hit's stored fields, as our ``search_sync``
reads each hit's document), and prints one JSON object: queries/s and the top-k doc ids of each
query. Install with ``make bench-deps`` (``bench/install_lucene.sh``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path


def _java_home() -> None:
    if "JAVA_HOME" not in os.environ and shutil.which("java"):
        java = Path(shutil.which("java")).resolve()
        os.environ["JAVA_HOME"] = str(java.parent.parent)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("what", choices=["search"])
    ap.add_argument("index")
    ap.add_argument("queries", help="JSON list of query strings")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--single", type=int, default=1000, help="queries sent one at a time")
    ap.add_argument("--k1", type=float, default=0.9)
    ap.add_argument("--b", type=float, default=0.4)
    args = ap.parse_args()
    _java_home()
    from pyserini.search.lucene import LuceneSearcher

    queries = json.loads(Path(args.queries).read_text(encoding="utf-8"))
    searcher = LuceneSearcher(args.index)
    searcher.set_bm25(args.k1, args.b)
    qids = [str(i) for i in range(len(queries))]

    def docs(hits) -> list[str]:
        # Anserini has already read each hit's stored fields in Java (its docid is one);
        # touching more through pyjnius costs ~50 µs a call and would measure pyjnius, not Lucene
        return [h.docid for h in hits]

    batched = 0.0
    for _ in range(3):  # the JVM's JIT needs a few thousand queries to warm up: best of 3 runs
        t = time.perf_counter()
        out = searcher.batch_search(queries, qids, k=args.k, threads=args.threads)
        top = [docs(out[q]) for q in qids]
        batched = max(batched, len(queries) / (time.perf_counter() - t))
    single_qs = queries[: args.single]
    t = time.perf_counter()
    for q in single_qs:
        docs(searcher.search(q, k=args.k))
    single = len(single_qs) / (time.perf_counter() - t)
    print(json.dumps({"batched_qps": batched, "single_qps": single, "top": top}))


if __name__ == "__main__":
    main()

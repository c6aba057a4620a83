"""ensure_index rebuilds a world's index that an older version wrote (a resumed study folder)."""

from __future__ import annotations

import json
from pathlib import Path

from searchprime.search.bm25 import FORMAT_VERSION, MANIFEST, BM25Search
from searchprime.world import WorldConfig, build_world
from searchprime.world.calibrate import ensure_index


def test_an_index_of_an_older_format_is_rebuilt(tmp_path: Path) -> None:
    wdir = tmp_path / "world"
    build_world(WorldConfig(seed=3, entities=60, tasks=10), wdir)
    index = ensure_index(wdir)
    manifest = index / MANIFEST
    first = manifest.stat().st_mtime_ns
    assert ensure_index(wdir) == index and manifest.stat().st_mtime_ns == first  # reused
    old = json.loads(manifest.read_text())
    old["format_version"] = FORMAT_VERSION - 1
    manifest.write_text(json.dumps(old))
    ensure_index(wdir)
    assert json.loads(manifest.read_text())["format_version"] == FORMAT_VERSION
    (hits,) = BM25Search.load(index).search_sync(["Who founded"], 3)
    assert len(hits) == 3

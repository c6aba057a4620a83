"""What a dense index will cost, from FAISS's storage layouts, before anything is built.

Per kind, for N vectors of D floats (``searchprime index plan``):

* flat: 4·N·D bytes of codes.
* IVF: nlist·D·4 of centroids, 24·nlist of list metadata, and per vector its code plus an
  8-byte id in the on-disk lists (flat codes 4·D; PQ m·bits/8 plus a D·2^bits·4 codebook;
  OPQ adds a D×D rotation).
* HNSW: the codes (4·D, or D for SQ8 plus 8·D of ranges) plus the graph: 2·M int32 links at
  level 0, about M/(M-1) more on upper levels, a level and an offset, ≈ (8·M + 4·M/(M-1) + 12)
  bytes per vector.

``memory_full`` is what search touches at full speed (the whole index; the files are
memory-mapped, so that is page cache shared by every process on the host); ``memory_min``
is what must stay resident for IVF kinds whose lists are paged in from disk as queries
probe them. The build peak counts the float shard, the training sample and what the index
holds while built; the encoder model and the Python process (~0.3 GiB) come on top.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from searchprime.search._faiss_kinds import HNSW_KINDS, IVF_KINDS, KINDS, IndexSpec, index_spec
from searchprime.search.dense import DenseConfig

__all__ = ["IndexPlan", "plan_dense", "plan_one"]

_NPY_HEADER = 128


@dataclass(frozen=True)
class IndexPlan:
    """Estimated sizes, in bytes, of one index kind."""

    kind: str
    factory: str
    bytes_per_vector: float
    index_disk: int
    memory_full: int
    memory_min: int
    embeddings_disk: int
    build_peak: int
    train_vectors: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _code_bytes(spec: IndexSpec) -> float:
    """Bytes of one vector's code (ids and graph links excluded)."""
    d = spec.dim
    if spec.kind in ("flat", "ivf", "hnsw"):
        return 4.0 * d
    if spec.kind == "hnsw_sq8":
        return float(d)
    assert spec.pq_m is not None and spec.pq_nbits is not None
    return float((spec.pq_m * spec.pq_nbits + 7) // 8)


def _fixed_bytes(spec: IndexSpec) -> int:
    """Trained parameters and per-list metadata, independent of N."""
    d = spec.dim
    fixed = 0
    if spec.nlist:
        fixed += spec.nlist * d * 4 + spec.nlist * 24
    if spec.pq_nbits is not None:
        fixed += d * (2**spec.pq_nbits) * 4
    if spec.kind == "opq_ivf_pq":
        fixed += d * d * 4 + d * 4
    if spec.kind == "hnsw_sq8":
        fixed += 2 * d * 4
    return fixed


def _per_vector(spec: IndexSpec) -> float:
    per = _code_bytes(spec)
    if spec.kind in IVF_KINDS:
        per += 8  # the id stored beside each code in the inverted lists
    if spec.kind in HNSW_KINDS:
        m = spec.hnsw_m or 32
        per += 8 * m + 4 * m / (m - 1) + 12
    return per


def plan_one(spec: IndexSpec, shard_size: int, keep_embeddings: bool = True) -> IndexPlan:
    """The plan of one resolved kind."""
    n, d = spec.num_docs, spec.dim
    per = _per_vector(spec)
    fixed = _fixed_bytes(spec)
    index = int(n * per + fixed)
    shard = min(shard_size, n)
    train = spec.train_size * d * 4 * (2 if spec.kind == "opq_ivf_pq" else 1)
    if spec.kind in IVF_KINDS:
        resident, building = fixed, fixed + 2 * int(shard * per)
    else:
        resident, building = index, index
    return IndexPlan(
        kind=spec.kind,
        factory=spec.factory,
        bytes_per_vector=round(per, 1),
        index_disk=index,
        memory_full=index,
        memory_min=resident,
        embeddings_disk=n * d * 4 + _NPY_HEADER if keep_embeddings else 0,
        build_peak=shard * d * 4 + train + building,
        train_vectors=spec.train_size,
    )


def plan_dense(
    num_docs: int,
    dim: int,
    kinds: list[str] | None = None,
    config: DenseConfig | None = None,
) -> list[IndexPlan]:
    """Plans for ``kinds`` (default: all) with ``config``'s settings (nlist, pq_m, ...);
    bad values raise :class:`~searchprime.errors.ConfigError` naming the field."""
    cfg = config or DenseConfig()
    plans = []
    for kind in kinds or list(KINDS):
        spec = index_spec(cfg.model_copy(update={"index": kind}), num_docs, dim)
        plans.append(plan_one(spec, cfg.shard_size, cfg.keep_embeddings))
    return plans

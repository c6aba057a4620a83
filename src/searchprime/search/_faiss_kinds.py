"""The FAISS index kinds a dense config can name, as ``index_factory`` strings.

=============  ==============================  =============================================
kind           factory string                  what a vector costs
=============  ==============================  =============================================
flat           ``Flat``                        4·D bytes (exact search)
ivf            ``IVF{nlist},Flat``             4·D + 8 (id) bytes, lists on disk
hnsw           ``HNSW{M}``                     4·D + ~8·M bytes of graph links
hnsw_sq8       ``HNSW{M}_SQ8``                 D + ~8·M bytes (8-bit scalar quantizer)
ivf_pq         ``IVF{nlist},PQ{m}x{b}np``      m·b/8 + 8 bytes, lists on disk
opq_ivf_pq     ``OPQ{m}_{D},IVF{nlist},PQ..``  as ivf_pq, plus a learned D×D rotation
=============  ==============================  =============================================
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from searchprime.errors import ConfigError

if TYPE_CHECKING:
    from searchprime.search.dense import DenseConfig

__all__ = ["IVF_KINDS", "KINDS", "IndexSpec", "index_spec", "set_search_params"]

KINDS = ("flat", "ivf", "hnsw", "hnsw_sq8", "ivf_pq", "opq_ivf_pq")
IVF_KINDS = frozenset({"ivf", "ivf_pq", "opq_ivf_pq"})
PQ_KINDS = frozenset({"ivf_pq", "opq_ivf_pq"})
HNSW_KINDS = frozenset({"hnsw", "hnsw_sq8"})
TRAINED_KINDS = IVF_KINDS | {"hnsw_sq8"}


@dataclass(frozen=True)
class IndexSpec:
    """A kind resolved against a corpus size and dimension."""

    kind: str
    factory: str
    num_docs: int
    dim: int
    nlist: int | None = None
    pq_m: int | None = None
    pq_nbits: int | None = None
    hnsw_m: int | None = None
    train_size: int = 0

    def info(self) -> dict[str, Any]:
        """What the manifest records about the index."""
        keys = ("nlist", "pq_m", "pq_nbits", "hnsw_m")
        extra = {k: getattr(self, k) for k in keys if getattr(self, k) is not None}
        return {"index": self.kind, "factory": self.factory, "train_size": self.train_size, **extra}


def default_nlist(num_docs: int) -> int:
    """About 4·sqrt(N) lists, at most N/39 (FAISS wants >= 39 training points per list)."""
    return max(1, min(int(4 * math.sqrt(num_docs)), num_docs // 39 or 1))


def default_pq_m(dim: int) -> int:
    """D/4 sub-quantizers (4-dimensional sub-vectors), or the nearest divisor of D below."""
    m = max(1, dim // 4)
    while dim % m:
        m -= 1
    return m


def index_spec(cfg: DenseConfig, num_docs: int, dim: int) -> IndexSpec:
    """Resolve ``cfg`` for ``num_docs`` vectors of ``dim`` floats; bad values raise
    :class:`ConfigError` naming the ``dense.*`` field."""
    kind = cfg.index
    if kind not in KINDS:
        raise ConfigError(f"dense.index: {kind!r} is not one of {', '.join(KINDS)}")
    if num_docs < 1 or dim < 1:
        raise ConfigError(f"dense: cannot index {num_docs} vectors of dimension {dim}")
    nlist = pq_m = nbits = hnsw_m = None
    train = 0
    if kind in IVF_KINDS:
        nlist = min(cfg.nlist, num_docs) if cfg.nlist else default_nlist(num_docs)
    if kind in PQ_KINDS:
        pq_m, nbits = cfg.pq_m or default_pq_m(dim), cfg.pq_nbits
        if dim % pq_m:
            raise ConfigError(f"dense.pq_m: {pq_m} does not divide the embedding dimension {dim}")
    if kind in HNSW_KINDS:
        hnsw_m = cfg.hnsw_m
    if kind in TRAINED_KINDS:
        want = cfg.train_size or max(100_000, 64 * (nlist or 1))
        train = min(want, num_docs)
        need = max(nlist or 1, 2 ** (nbits or 0))
        if train < need:
            field = "dense.train_size" if cfg.train_size else "dense.pq_nbits"
            raise ConfigError(
                f"{field}: {train} training vectors < {need} "
                f"(nlist {nlist}, 2^pq_nbits {2 ** (nbits or 0)}); lower nlist/pq_nbits or add data"
            )
    factory = {
        "flat": "Flat",
        "ivf": f"IVF{nlist},Flat",
        "hnsw": f"HNSW{hnsw_m}",
        "hnsw_sq8": f"HNSW{hnsw_m}_SQ8",
        # np: no polysemous training (only useful for Hamming pre-filtering, and slow)
        "ivf_pq": f"IVF{nlist},PQ{pq_m}x{nbits}np",
        "opq_ivf_pq": f"OPQ{pq_m}_{dim},IVF{nlist},PQ{pq_m}x{nbits}np",
    }[kind]
    return IndexSpec(kind, factory, num_docs, dim, nlist, pq_m, nbits, hnsw_m, train)


def set_search_params(index: Any, nprobe: int | None = None, ef_search: int | None = None) -> None:
    """Set IVF ``nprobe`` / HNSW ``efSearch`` on ``index`` (wrappers such as OPQ included);
    a parameter the index does not have is ignored."""
    import faiss

    ps = faiss.ParameterSpace()
    for name, value in (("nprobe", nprobe), ("efSearch", ef_search)):
        if value is None:
            continue
        try:
            ps.set_index_parameter(index, name, value)
        except RuntimeError:  # not an IVF / HNSW index
            pass

"""``DenseConfig``: the encoder, FAISS index and search settings of a dense index (saved in
its manifest; :mod:`searchprime.search.dense` builds and loads the index)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["DenseConfig"]


class DenseConfig(BaseModel):
    """Encoder and FAISS index settings."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(
        default=None,
        description="sentence-transformers model folder; null = bundled all-MiniLM-L6-v2.",
    )
    index: Literal["flat", "ivf", "hnsw", "hnsw_sq8", "ivf_pq", "opq_ivf_pq"] = Field(
        default="flat",
        description="flat (exact), ivf (inverted lists), hnsw (graph); compressed: ivf_pq "
        "(product quantizer), opq_ivf_pq (rotation + PQ), hnsw_sq8 (graph over 8-bit codes).",
    )
    nlist: int | None = Field(
        default=None, ge=1, description="IVF lists (default: about 4 x sqrt(N), at most N/39)."
    )
    nprobe: int = Field(default=16, ge=1, description="IVF lists searched per query.")
    pq_m: int | None = Field(
        default=None,
        ge=1,
        description="PQ sub-quantizers = code bytes per vector at 8 bits; must divide the "
        "dimension (default D/4).",
    )
    pq_nbits: int = Field(default=8, ge=1, le=16, description="Bits per PQ sub-quantizer.")
    opq_niter: int = Field(
        default=10,
        ge=1,
        description="OPQ rotation training iterations (FAISS's 50 cost ~3x the time for "
        "+0.015 recall@10 on 20k x 128 clustered vectors).",
    )
    hnsw_m: int = Field(default=32, ge=4, description="HNSW neighbours per node.")
    ef_construction: int = Field(default=40, ge=1, description="HNSW build breadth.")
    ef_search: int = Field(default=64, ge=1, description="HNSW search breadth.")
    train_size: int | None = Field(
        default=None,
        ge=1,
        description="Vectors sampled to train IVF/PQ/SQ (default max(100k, 64 x nlist), "
        "at most N).",
    )
    shard_size: int = Field(
        default=100_000,
        ge=1,
        description="Vectors read and added at a time: bounds the build's memory for the "
        "floats (IVF kinds: each shard is its own on-disk index, merged at the end).",
    )
    rerank: int = Field(
        default=0,
        ge=0,
        description="Re-score this many candidates of a compressed index (ivf_pq, opq_ivf_pq, "
        "hnsw_sq8) exactly against embeddings.npy, memory-mapped from disk (0: off; needs "
        "keep_embeddings). Recall near flat's while RAM holds only the codes.",
    )
    keep_embeddings: bool = Field(
        default=True,
        description="Keep embeddings.npy (4 x N x D bytes) so reindex_dense can re-index "
        "without encoding again.",
    )
    seed: int = Field(default=0, description="Seed of the training sample.")
    batch_size: int = Field(default=128, ge=1, description="Passages per encoder batch.")
    max_seq_length: int = Field(default=256, ge=8, description="Encoder token limit.")
    device: str = Field(default="cpu", description="Encoder device (cpu, cuda, mps).")
    threads: int | None = Field(
        default=None,
        ge=1,
        description="CPU threads for torch and FAISS (process-wide; default: theirs). On a "
        "shared or busy machine 1 is often much faster than oversubscribed spinning threads.",
    )

    @model_validator(mode="after")
    def _rerank_needs_embeddings(self) -> DenseConfig:
        if self.rerank and not self.keep_embeddings:
            raise ValueError("rerank re-scores from embeddings.npy: set keep_embeddings: true")
        return self

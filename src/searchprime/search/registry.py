"""Name a search backend in a config and get it: ``load_search(SearchConfig(...))``.

=========  =========================================================  ==================
kind       what                                                        needs
=========  =========================================================  ==================
bm25       a local BM25 index folder (``searchprime index build``)     ``path``
dense      a local FAISS index folder (``--kind dense``)               ``path``, extra dense
http       a Search-R1 ``/retrieve`` server (ours or theirs)           ``url``
serper     Google results through Serper                               ``$SERPER_API_KEY``
=========  =========================================================  ==================
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from searchprime.search.base import SearchBackend
from searchprime.search.web import SerperConfig

__all__ = ["SearchConfig", "load_search"]


class SearchConfig(BaseModel):
    """Which search backend to use and how."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["bm25", "dense", "http", "serper"] = Field(
        default="bm25", description="Backend: bm25 | dense | http | serper."
    )
    path: str | None = Field(default=None, description="Index folder (bm25, dense).")
    url: str | None = Field(default=None, description="Retrieval server URL (http).")
    topk: int = Field(default=3, ge=1, description="Hits per query the agent asks for.")
    threads: int | None = Field(
        default=None, ge=1, description="Search threads (bm25: per batch; dense: torch/FAISS)."
    )
    nprobe: int | None = Field(default=None, ge=1, description="IVF lists per query (dense).")
    device: str | None = Field(default=None, description="Query encoder device (dense).")
    timeout_s: float = Field(default=30.0, gt=0, description="Request timeout (http).")
    retries: int = Field(default=3, ge=0, description="Retries on transient errors (http).")
    token_env: str | None = Field(
        default=None, description="Env var with the server's bearer token (http)."
    )
    serper: SerperConfig = Field(
        default_factory=SerperConfig, description="Web search settings (serper)."
    )

    @model_validator(mode="after")
    def _needs(self) -> SearchConfig:
        if self.kind in ("bm25", "dense") and not self.path:
            raise ValueError(f"kind {self.kind!r} needs `path` (an index folder)")
        if self.kind == "http" and not self.url:
            raise ValueError("kind 'http' needs `url` (e.g. http://127.0.0.1:8000)")
        return self


def load_search(cfg: SearchConfig) -> SearchBackend:
    """Open the backend ``cfg`` names."""
    if cfg.kind == "bm25":
        from searchprime.search.bm25 import BM25Search

        return BM25Search.load(cfg.path, threads=cfg.threads)
    if cfg.kind == "dense":
        from searchprime.search.dense import DenseSearch

        return DenseSearch.load(cfg.path, device=cfg.device, nprobe=cfg.nprobe, threads=cfg.threads)
    if cfg.kind == "http":
        from searchprime.search.http_client import RetrieverClient

        return RetrieverClient(
            cfg.url,
            topk=cfg.topk,
            timeout=cfg.timeout_s,
            retries=cfg.retries,
            token_env=cfg.token_env,
        )
    from searchprime.search.web import SerperSearch

    return SerperSearch(cfg.serper)

"""Name a search backend in a config and get it: ``load_search(SearchConfig(...))``.

=========  =========================================================  ==================
kind       what                                                        needs
=========  =========================================================  ==================
bm25       a local BM25 index folder (``searchprime index build``)     ``path``
dense      a local FAISS index folder (``--kind dense``)               ``path``, extra dense
http       a Search-R1 ``/retrieve`` server (ours or theirs)           ``url``
serper     Google results through Serper                               ``$SERPER_API_KEY``
=========  =========================================================  ==================

A backend of your own (any object with the :class:`~searchprime.search.base.SearchBackend`
methods) plugs in without editing this package: register a factory ``f(cfg) -> backend``
under a name, or name it as ``py:<module>:<factory>``, or declare it as an entry point in the
``searchprime.search_backends`` group (see :mod:`searchprime._plugins`). Its settings go in
``options``::

    from searchprime.search.registry import register_search_backend

    @register_search_backend("elastic")
    def make_elastic(cfg):
        return ElasticSearch(cfg.url, index=cfg.options["index"], topk=cfg.topk)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from searchprime._plugins import Registry, builtin_check
from searchprime.search.base import SearchBackend
from searchprime.search.web import SerperConfig

__all__ = [
    "SEARCH_BACKENDS",
    "SearchConfig",
    "SearchFactory",
    "load_search",
    "register_search_backend",
]

SearchFactory = Callable[["SearchConfig"], SearchBackend]
#: Every search backend a config can name.
SEARCH_BACKENDS: Registry[SearchFactory] = Registry("search backend", "searchprime.search_backends")
#: ``@register_search_backend(name, check=None)`` registers ``factory(cfg) -> SearchBackend``;
#: ``check(cfg)`` runs when a config naming it is validated and raises ``ValueError`` for what
#: the backend lacks (e.g. a required ``options`` key).
register_search_backend = SEARCH_BACKENDS.register


class SearchConfig(BaseModel):
    """Which search backend to use and how."""

    model_config = ConfigDict(extra="forbid")

    kind: Annotated[str, AfterValidator(SEARCH_BACKENDS.known)] = Field(
        default="bm25",
        description="Backend: bm25 | dense | http | serper, a name registered with "
        "register_search_backend, or py:<module>:<factory>.",
    )
    path: str | None = Field(default=None, description="Index folder (bm25, dense).")
    url: str | None = Field(default=None, description="Retrieval server URL (http).")
    topk: int = Field(default=3, ge=1, description="Hits per query the agent asks for.")
    threads: int | None = Field(
        default=None, ge=1, description="Search threads (bm25: per batch; dense: torch/FAISS)."
    )
    nprobe: int | None = Field(default=None, ge=1, description="IVF lists per query (dense).")
    ef_search: int | None = Field(
        default=None, ge=1, description="HNSW search breadth, efSearch (dense)."
    )
    rerank: int | None = Field(
        default=None,
        ge=0,
        description="Candidates re-scored exactly from the embeddings on disk (dense; 0: off).",
    )
    device: str | None = Field(default=None, description="Query encoder device (dense).")
    timeout_s: float = Field(default=30.0, gt=0, description="Request timeout (http).")
    retries: int = Field(default=3, ge=0, description="Retries on transient errors (http).")
    token_env: str | None = Field(
        default=None, description="Env var with the server's bearer token (http)."
    )
    serper: SerperConfig = Field(
        default_factory=SerperConfig, description="Web search settings (serper)."
    )
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="Settings of a plugged-in backend (its factory reads them); the built-in "
        "kinds take none.",
    )

    @model_validator(mode="after")
    def _needs(self) -> SearchConfig:
        return SEARCH_BACKENDS.checked(self)


def load_search(cfg: SearchConfig) -> SearchBackend:
    """Open the backend ``cfg`` names."""
    return SEARCH_BACKENDS.build(cfg, SearchBackend, "search")


# ---------------------------------------------------------------------------- built-in kinds
@register_search_backend("bm25", check=builtin_check("path", "an index folder"))
def _bm25(cfg: SearchConfig) -> SearchBackend:
    from searchprime.search.bm25 import BM25Search

    return BM25Search.load(cfg.path, threads=cfg.threads)


@register_search_backend("dense", check=builtin_check("path", "an index folder"))
def _dense(cfg: SearchConfig) -> SearchBackend:
    from searchprime.search.dense import DenseSearch

    return DenseSearch.load(
        cfg.path,
        device=cfg.device,
        nprobe=cfg.nprobe,
        ef_search=cfg.ef_search,
        threads=cfg.threads,
        rerank=cfg.rerank,
    )


@register_search_backend("http", check=builtin_check("url", "e.g. http://127.0.0.1:8000"))
def _http(cfg: SearchConfig) -> SearchBackend:
    from searchprime.search.http_client import RetrieverClient

    assert cfg.url is not None
    return RetrieverClient(
        cfg.url, topk=cfg.topk, timeout=cfg.timeout_s, retries=cfg.retries, token_env=cfg.token_env
    )


@register_search_backend("serper", check=builtin_check())
def _serper(cfg: SearchConfig) -> SearchBackend:
    from searchprime.search.web import SerperSearch

    return SerperSearch(cfg.serper)

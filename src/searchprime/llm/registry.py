"""Build an LLM backend from a config: ``kind: openai`` (any OpenAI-compatible server) or
``kind: local`` (a Hugging Face model or GGUF file loaded in-process).

    llm:
      kind: openai
      base_url: http://127.0.0.1:8000/v1
      api_key_env: OPENAI_API_KEY     # the variable's name, never the key

A list of URLs (``base_url: [http://gpu0:8000/v1, http://gpu1:8000/v1]``) spreads the requests
over several servers of the same model (:class:`~searchprime.llm.pool.OpenAIPool`:
least-loaded dispatch; a failed server rests ``cooldown_s``, doubling, and its requests go
to the others).

A backend of your own (any object with the :class:`~searchprime.llm.base.LLM` methods) plugs
in without editing this package: register a factory ``f(cfg) -> llm`` under a name, or name it
as ``py:<module>:<factory>``, or declare it as an entry point in the
``searchprime.llm_backends`` group (see :mod:`searchprime._plugins`). Its settings go in
``options``::

    from searchprime.llm.registry import register_llm_backend

    @register_llm_backend("bedrock")
    def make_bedrock(cfg):
        return BedrockChat(cfg.model, region=cfg.options["region"])
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from searchprime._plugins import Registry, builtin_check
from searchprime.errors import ConfigError
from searchprime.llm.base import LLM

__all__ = ["LLM_BACKENDS", "LLMConfig", "LLMFactory", "load_llm", "register_llm_backend"]

LLMFactory = Callable[["LLMConfig"], LLM]
#: Every LLM backend a config can name.
LLM_BACKENDS: Registry[LLMFactory] = Registry("LLM backend", "searchprime.llm_backends")
#: ``@register_llm_backend(name, check=None)`` registers ``factory(cfg) -> LLM``; ``check(cfg)``
#: runs when a config naming it is validated and raises ``ValueError`` for what the backend
#: lacks (e.g. a required ``options`` key).
register_llm_backend = LLM_BACKENDS.register


class LLMConfig(BaseModel):
    """Which policy to talk to and how."""

    model_config = ConfigDict(extra="forbid")

    kind: Annotated[str, AfterValidator(LLM_BACKENDS.known)] = Field(
        default="openai",
        description="'openai': an HTTP endpoint; 'local': load in-process; or a name "
        "registered with register_llm_backend, or py:<module>:<factory>.",
    )
    # openai
    base_url: str | list[str] | None = Field(
        default=None,
        description="e.g. http://127.0.0.1:8000/v1; a list of several servers of one model "
        "makes a pool (least-loaded dispatch, failover).",
    )
    model: str | None = Field(default=None, description="Model name; None = first of /models.")
    api_key_env: str | None = Field(
        default=None, description="Name of the environment variable holding the API key."
    )
    timeout_s: float = Field(default=120.0, gt=0, description="Per-request timeout, seconds.")
    max_retries: int = Field(default=5, ge=0, description="Retries on 429/5xx/timeouts.")
    concurrency: int = Field(default=32, ge=1, description="Most requests in flight at once.")
    backoff_base_s: float = Field(
        default=0.5, ge=0, description="Retry backoff: uniform(0, min(max, base * 2**retry)) s."
    )
    backoff_max_s: float = Field(default=30.0, ge=0, description="Longest wait between retries.")
    cooldown_s: float = Field(
        default=5.0,
        ge=0,
        description="Pool of servers: how long a failed server is left out the first time "
        "(doubling with each failure in a row).",
    )
    cooldown_max_s: float = Field(
        default=120.0, ge=0, description="Pool of servers: the longest a failed server rests."
    )
    extra_body: dict[str, Any] = Field(
        default_factory=dict, description="Extra JSON merged into each request."
    )
    tokenizer: str | None = Field(
        default=None,
        description="HF tokenizer folder/name or .gguf for token counts (openai kind); "
        "None = ask the server's /tokenize.",
    )
    # local
    path: str | None = Field(default=None, description="HF model folder or .gguf file.")
    gguf_file: str | None = Field(default=None, description="GGUF file name inside path.")
    device: str = Field(default="cpu", description="torch device for kind 'local'.")
    max_batch: int = Field(default=16, ge=1, description="Most requests decoded together.")
    dtype: Literal["float32", "bfloat16", "float16"] | None = Field(
        default=None, description="None = float32 on CPU, bfloat16 elsewhere."
    )
    threads: int | None = Field(default=None, ge=1, description="torch CPU threads (local).")
    # plugged-in kinds
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="Settings of a plugged-in backend (its factory reads them); the built-in "
        "kinds take none.",
    )

    @model_validator(mode="after")
    def _needs_target(self) -> LLMConfig:
        if isinstance(self.base_url, list) and len(set(self.base_url)) != len(self.base_url):
            raise ValueError("base_url lists a server twice")
        if self.cooldown_max_s < self.cooldown_s:
            raise ValueError("cooldown_max_s must be >= cooldown_s")
        return LLM_BACKENDS.checked(self)


def load_llm(cfg: LLMConfig | dict[str, Any]) -> LLM:
    """Instantiate the backend ``cfg`` names (``local`` imports torch lazily)."""
    if isinstance(cfg, dict):
        try:
            cfg = LLMConfig.model_validate(cfg)
        except ValueError as exc:
            raise ConfigError(f"llm: {exc}") from None
    return LLM_BACKENDS.build(cfg, LLM, "llm")


# ---------------------------------------------------------------------------- built-in kinds
@register_llm_backend("openai", check=builtin_check("base_url"))
def _openai(cfg: LLMConfig) -> LLM:
    from searchprime.llm.openai_http import OpenAIChat
    from searchprime.llm.pool import OpenAIPool

    assert cfg.base_url
    urls = [cfg.base_url] if isinstance(cfg.base_url, str) else cfg.base_url
    client: dict[str, Any] = dict(
        api_key_env=cfg.api_key_env,
        timeout_s=cfg.timeout_s,
        max_retries=cfg.max_retries,
        concurrency=cfg.concurrency,
        tokenizer=cfg.tokenizer,
        extra_body=cfg.extra_body,
        backoff_base_s=cfg.backoff_base_s,
        backoff_max_s=cfg.backoff_max_s,
    )
    if len(urls) == 1:
        return OpenAIChat(urls[0], cfg.model, **client)
    return OpenAIPool(
        urls, cfg.model, cooldown_s=cfg.cooldown_s, cooldown_max_s=cfg.cooldown_max_s, **client
    )


@register_llm_backend("local", check=builtin_check("path"))
def _local(cfg: LLMConfig) -> LLM:
    from searchprime.llm.local_hf import LocalHF

    assert cfg.path is not None
    return LocalHF(
        cfg.path,
        gguf_file=cfg.gguf_file,
        device=cfg.device,
        max_batch=cfg.max_batch,
        dtype=cfg.dtype,
        threads=cfg.threads,
    )

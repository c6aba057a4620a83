"""Build an LLM backend from a config: ``kind: openai`` (any OpenAI-compatible server) or
``kind: local`` (a Hugging Face model or GGUF file loaded in-process).

    llm:
      kind: openai
      base_url: http://127.0.0.1:8000/v1
      api_key_env: OPENAI_API_KEY     # the variable's name, never the key

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
    base_url: str | None = Field(default=None, description="e.g. http://127.0.0.1:8000/v1.")
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

    assert cfg.base_url is not None
    return OpenAIChat(
        cfg.base_url,
        cfg.model,
        api_key_env=cfg.api_key_env,
        timeout_s=cfg.timeout_s,
        max_retries=cfg.max_retries,
        concurrency=cfg.concurrency,
        tokenizer=cfg.tokenizer,
        extra_body=cfg.extra_body,
        backoff_base_s=cfg.backoff_base_s,
        backoff_max_s=cfg.backoff_max_s,
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

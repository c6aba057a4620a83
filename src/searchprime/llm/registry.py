"""Build an LLM backend from a config: ``kind: openai`` (any OpenAI-compatible server) or
``kind: local`` (a Hugging Face model or GGUF file loaded in-process).

    llm:
      kind: openai
      base_url: http://127.0.0.1:8000/v1
      api_key_env: OPENAI_API_KEY     # the variable's name, never the key
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from searchprime.errors import ConfigError
from searchprime.llm.base import LLM

__all__ = ["LLMConfig", "load_llm"]


class LLMConfig(BaseModel):
    """Which policy to talk to and how."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["openai", "local"] = Field(
        default="openai", description="'openai': an HTTP endpoint; 'local': load in-process."
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

    @model_validator(mode="after")
    def _needs_target(self) -> LLMConfig:
        if self.kind == "openai" and not self.base_url:
            raise ValueError("kind 'openai' needs base_url")
        if self.kind == "local" and not self.path:
            raise ValueError("kind 'local' needs path")
        return self


def load_llm(cfg: LLMConfig | dict[str, Any]) -> LLM:
    """Instantiate the backend ``cfg`` names (``local`` imports torch lazily)."""
    if isinstance(cfg, dict):
        try:
            cfg = LLMConfig.model_validate(cfg)
        except ValueError as exc:
            raise ConfigError(f"llm: {exc}") from None
    if cfg.kind == "openai":
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

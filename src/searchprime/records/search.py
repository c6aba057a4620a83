"""SearchHit: one retrieved document as every search backend returns it."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class SearchHit(BaseModel):
    """One retrieved document. ``source``/``url`` carry the authority signal."""

    model_config = ConfigDict(extra="forbid")

    doc_id: str = Field(description="Document id in its corpus (or the URL for web results).")
    title: str = Field(default="", description="Document title.")
    text: str = Field(default="", description="Passage text (without the title).")
    source: str | None = Field(default=None, description="Publisher kind or site, e.g. 'forum'.")
    url: str | None = Field(default=None, description="Document URL, if any.")
    score: float | None = Field(default=None, description="Retriever score, if returned.")
    meta: dict[str, Any] = Field(default_factory=dict, description="Backend-specific extras.")

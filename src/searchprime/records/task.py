"""The Task record: one question with its gold answers."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator


class Task(BaseModel):
    """One question an agent must answer."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="Unique task id (ints in source files are kept as strings).")
    question: str = Field(min_length=1, description="The question shown to the agent.")
    answers: list[str] = Field(description="Gold answers; any one of them counts as correct.")
    data_source: str | None = Field(default=None, description="Benchmark or split of origin.")
    meta: dict[str, Any] = Field(default_factory=dict, description="Anything else from the source.")

    @field_validator("id", mode="before")
    @classmethod
    def _id_to_str(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) else value

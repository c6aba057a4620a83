"""The Trajectory record: one attempt of one agent at one task, turn by turn."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from searchprime.records.behavior import BehaviorLabels
from searchprime.records.search import SearchHit

SCHEMA_VERSION = 1

Role = Literal["system", "user", "assistant"]
ActionKind = Literal["search", "summary", "answer", "invalid"]
Termination = Literal[
    "answer",  # the agent answered
    "max_turns",  # turn limit reached without an answer
    "context_limit",  # the context outgrew the model even after reminders
    "error",  # a backend failed after retries; see ``error``
]


class Message(BaseModel):
    """One chat message."""

    model_config = ConfigDict(extra="forbid")

    role: Role
    content: str


class Action(BaseModel):
    """The single action parsed from one model response."""

    model_config = ConfigDict(extra="forbid")

    kind: ActionKind
    content: str = Field(default="", description="Query, summary or answer text.")
    think: str | None = Field(default=None, description="Explicit <think> text, if any.")
    error: str | None = Field(default=None, description="Why the response was invalid.")


class Turn(BaseModel):
    """One model call and what the environment answered."""

    model_config = ConfigDict(extra="forbid")

    index: int = Field(description="0-based turn number.")
    context: list[int] = Field(
        description="Indices into Trajectory.messages that formed the model input, in order."
    )
    input_tokens: int | None = Field(default=None, description="Tokens of the model input.")
    output: str = Field(description="Raw model output (after stop-sequence restoration).")
    reasoning: str | None = Field(default=None, description="Server-side reasoning, if any.")
    action: Action
    observation: str | None = Field(
        default=None, description="Text returned to the model after this turn (user message)."
    )
    hits: list[SearchHit] = Field(default_factory=list, description="Hits of a search action.")
    output_tokens: int | None = Field(default=None, description="Tokens generated.")
    latency_s: float = Field(default=0.0, description="Model call wall time in seconds.")
    search_latency_s: float = Field(default=0.0, description="Search wall time in seconds.")
    policy_meta: dict[str, Any] = Field(
        default_factory=dict,
        description="What the policy reported about this turn (a teacher logs shown behaviors).",
    )


class Scores(BaseModel):
    """Correctness of the final answer; filled by ``searchprime score``."""

    model_config = ConfigDict(extra="forbid")

    em: float | None = None
    cover_em: float | None = None
    f1: float | None = None
    judge: bool | None = Field(default=None, description="LLM judge verdict; None = unknown.")
    judge_rationale: str | None = None
    reward_hacking: bool | None = None


class Trajectory(BaseModel):
    """One attempt of one agent at one task."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = Field(
        default=SCHEMA_VERSION, description="Record layout version, a positive integer."
    )
    task_id: str
    attempt: int = Field(default=0, description="Attempt index for pass@k sampling.")
    question: str
    answers: list[str] = Field(default_factory=list, description="Gold answers (copied).")
    data_source: str | None = None
    policy: dict[str, Any] = Field(default_factory=dict, description="Policy backend settings.")
    search: dict[str, Any] = Field(default_factory=dict, description="Search backend settings.")
    agent: dict[str, Any] = Field(default_factory=dict, description="Agent loop settings.")
    messages: list[Message] = Field(
        default_factory=list, description="Every message ever produced, append-only."
    )
    turns: list[Turn] = Field(default_factory=list)
    final_answer: str | None = None
    termination: Termination
    error: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    scores: Scores | None = None
    labels: BehaviorLabels | None = None
    meta: dict[str, Any] = Field(default_factory=dict)

    @field_validator("schema_version", mode="before")
    @classmethod
    def _check_version(cls, version: Any) -> Any:
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise ValueError(f"expected a positive integer, got {version!r}")
        if version > SCHEMA_VERSION:
            raise ValueError(
                f"schema_version {version} is newer than this searchprime "
                f"understands ({SCHEMA_VERSION}); upgrade searchprime"
            )
        return version

    @property
    def key(self) -> tuple[str, int]:
        """(task id, attempt): the identity used for resume and dedup (the last record wins)."""
        return (self.task_id, self.attempt)

    @property
    def n_searches(self) -> int:
        return sum(1 for t in self.turns if t.action.kind == "search")

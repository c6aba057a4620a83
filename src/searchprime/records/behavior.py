"""Behavior labels attached to a trajectory by an annotator (LLM judge or rule set)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

#: The four behaviors of the Behavior Priming study, in their canonical order.
BEHAVIORS: tuple[str, ...] = (
    "information_verification",
    "authority_evaluation",
    "adaptive_search",
    "error_recovery",
)


class BehaviorEvidence(BaseModel):
    """Whether one behavior is present, where, and why."""

    model_config = ConfigDict(extra="forbid")

    present: bool | None = Field(description="True/False; None when the annotator could not tell.")
    turns: list[int] = Field(default_factory=list, description="Turn indices that show it.")
    rationale: str = Field(default="", description="Short justification.")


class BehaviorLabels(BaseModel):
    """All behavior judgements for one trajectory by one annotator."""

    model_config = ConfigDict(extra="forbid")

    annotator: str = Field(description="Who labelled: e.g. 'rules:v1' or 'llm:<model>'.")
    behaviors: dict[str, BehaviorEvidence] = Field(description="Behavior name -> evidence.")
    notes: list[str] = Field(default_factory=list, description="E.g. 'chunked into 3 parts'.")

    def has(self, name: str) -> bool:
        """True only when the behavior is known to be present."""
        ev = self.behaviors.get(name)
        return bool(ev and ev.present)

    def has_all(self, names: tuple[str, ...] | list[str] = BEHAVIORS) -> bool:
        """True when every named behavior is known to be present."""
        return all(self.has(n) for n in names)

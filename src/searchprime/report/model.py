"""The report model: everything one HTML report shows, loaded from a run folder or files.

Numbers are :class:`Value` (a point estimate with an optional CI and seed sd), so a number
with and without its uncertainty reads the same way. Optional sections (pass@k, entropy,
test-time scaling, paired comparisons, RL steps) are empty when the run did not measure them.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from searchprime.records import BEHAVIORS
from searchprime.report.trajview import TrajView

#: A model's evaluation files, by kind: greedy dev rollouts, the entropy pass over them, sampled
#: rollouts (pass@k). ``ArmSummary.weights`` names the weights that wrote each.
EVAL_KINDS = ("rollouts", "entropy", "samples")

__all__ = [
    "EVAL_KINDS",
    "ArmSummary",
    "Comparison",
    "Report",
    "ScalingPoint",
    "Value",
]


class Value(BaseModel):
    """A number with its uncertainty, when known."""

    model_config = ConfigDict(extra="forbid")

    mean: float
    lo: float | None = Field(default=None, description="Lower end of the 95% CI.")
    hi: float | None = Field(default=None, description="Upper end of the 95% CI.")
    sd: float | None = Field(default=None, description="Standard deviation across seeds.")
    n: int | None = Field(default=None, description="Units behind the number (tasks, seeds).")

    @property
    def has_ci(self) -> bool:
        return self.lo is not None and self.hi is not None


class ScalingPoint(BaseModel):
    """Accuracy at one turn budget (test-time scaling)."""

    model_config = ConfigDict(extra="forbid")

    turns: int = Field(description="Turn budget.")
    em: Value | None = None
    pass_at_k: dict[int, Value] = Field(default_factory=dict)


class ArmSummary(BaseModel):
    """One model's headline numbers (one ``report.json`` arm, or one trajectories file)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    n: int = Field(description="Trajectories evaluated.")
    em: Value | None = None
    f1: Value | None = None
    valid_turns: Value | None = None
    answered: Value | None = None
    turns: Value | None = None
    searches: Value | None = None
    pass_at_k: dict[int, Value] = Field(default_factory=dict, description="k -> pass@k.")
    avg_at_k: dict[int, Value] = Field(default_factory=dict, description="k -> avg@k.")
    maj_at_k: dict[int, Value] = Field(default_factory=dict, description="k -> maj@k.")
    entropy: Value | None = Field(default=None, description="Mean per-token policy entropy.")
    entropy_by_turn: list[float] = Field(default_factory=list, description="Per turn position.")
    scaling: list[ScalingPoint] = Field(default_factory=list, description="By turn budget.")
    behavior: dict[str, Value] = Field(default_factory=dict, description="Rate overall.")
    behavior_offered: dict[str, Value | None] = Field(
        default_factory=dict, description="Rate where the task offers the situation."
    )
    offered_n: dict[str, int] = Field(default_factory=dict)
    grounded: dict[str, Value] = Field(
        default_factory=dict, description="Rate overall by the action-grounded annotator."
    )
    grounded_offered: dict[str, Value | None] = Field(default_factory=dict)
    agreement: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Per behavior, rules vs grounded: raw, kappa, n, only_rules, only_grounded.",
    )
    failures: dict[str, int] = Field(
        default_factory=dict, description="Trajectories per failure mode (behaviors.failures)."
    )
    repeated_searches: float | None = Field(
        default=None, description="Fraction of searches that resend an earlier query."
    )
    rl: dict[str, Any] | None = Field(default=None, description="RL run summary (an RL'd arm).")
    degenerate: str | None = Field(default=None, description="Why the model looks broken.")
    weights: dict[str, str] = Field(
        default_factory=dict,
        description="Evaluation kind (rollouts, entropy, samples) -> id of the weights that "
        "wrote it (experiment.provenance).",
    )
    has_trajectories: bool = Field(default=False, description="Shown in the viewer.")

    def other_trainings(self) -> list[str]:
        """The evaluation kinds written by other weights than the greedy rollouts (or, with
        no rollouts stamp, than the first stamped kind): a model trained again between them."""
        known = [k for k in EVAL_KINDS if k in self.weights]
        return [k for k in known[1:] if self.weights[k] != self.weights[known[0]]]

    def trainings_note(self) -> str | None:
        """ "samples came from another training of its recipe than its rollouts (weights ...)",
        or None when every stamped kind names the same weights (the study's log and the
        report's notes put the model's name before it)."""
        if not (other := self.other_trainings()):
            return None
        first = next(k for k in EVAL_KINDS if k in self.weights)
        ids = ", ".join(f"{k} {v}" for k, v in self.weights.items())
        return (
            f"{' and '.join(other)} came from another training of its recipe than its {first} "
            f"(weights {ids})"
        )


class Comparison(BaseModel):
    """Two models on the same tasks: ``b`` minus ``a`` (see eval.uncertainty.paired)."""

    model_config = ConfigDict(extra="forbid")

    a: str
    b: str
    metric: str = "em"
    delta: float
    lo: float | None = None
    hi: float | None = None
    gained: int | None = Field(default=None, description="Tasks wrong under a, right under b.")
    lost: int | None = Field(default=None, description="Tasks right under a, wrong under b.")
    p_value: float | None = Field(default=None, description="McNemar's exact p.")
    n: int | None = None
    source: str = Field(default="report.json", description="report.json or computed here.")


class ClaimResult(BaseModel):
    """One of the paper's claims tested on two models (experiment's ``claims``)."""

    statement: str
    model: str
    against: str
    delta: float = Field(description="EM of model minus EM of against.")
    lo: float | None = None
    hi: float | None = None
    p_value: float | None = Field(default=None, description="McNemar's exact p.")
    ratio: float | None = Field(default=None, description="EM of model / EM of against.")
    verdict: str
    n: int | None = None


class StageRun(BaseModel):
    """Where one stage of a study ran, over every run (experiment's ``stages`` ledger)."""

    stage: str
    done: bool = False
    seconds: float = Field(default=0.0, description="Finished and failed passes, summed.")
    passes: int = Field(
        default=0, description="Times it started until done (a kill leaves no time)."
    )
    revisits: int = Field(default=0, description="Later runs that found it cached.")
    hosts: list[str] = Field(default_factory=list)
    cpu_models: list[str] = Field(
        default_factory=list, description="The CPU kinds it ran on (their kernels' bits differ)."
    )
    commits: list[str] = Field(default_factory=list)
    first_start: str | None = None
    last_end: str | None = None


class Report(BaseModel):
    """Everything one report shows."""

    model_config = ConfigDict(extra="forbid")

    name: str
    source: str = Field(description="The run folder or files the report was built from.")
    behaviors: list[str] = Field(default_factory=lambda: list(BEHAVIORS))
    arms: dict[str, ArmSummary] = Field(default_factory=dict)
    comparisons: list[Comparison] = Field(default_factory=list)
    claims: list[ClaimResult] = Field(default_factory=list, description="The paper's claims.")
    rl_steps: dict[str, list[dict[str, Any]]] = Field(
        default_factory=dict, description="Model name -> RL step log rows (steps.jsonl)."
    )
    trajectories: list[TrajView] = Field(default_factory=list, description="For the viewer.")
    notes: list[str] = Field(default_factory=list, description="How numbers were obtained.")
    seconds: dict[str, float] = Field(default_factory=dict, description="Stage times.")
    stages: list[StageRun] = Field(
        default_factory=list, description="Where each stage ran, over every run of the study."
    )

"""The whole study from one YAML file: cached, resumable, reported."""

from searchprime.experiment.config import (
    ArmSection,
    EvalSection,
    ExperimentConfig,
    SFTSection,
    TeacherSection,
    WorldSection,
)
from searchprime.experiment.runner import (
    eval_agent_config,
    open_policy,
    report_rows,
    run_experiment,
    score_and_label,
    summarize,
)

__all__ = [
    "ArmSection",
    "EvalSection",
    "ExperimentConfig",
    "SFTSection",
    "TeacherSection",
    "WorldSection",
    "eval_agent_config",
    "open_policy",
    "report_rows",
    "run_experiment",
    "score_and_label",
    "summarize",
]

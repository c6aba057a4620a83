"""The whole study from one YAML file: cached, resumable, reported."""

from searchprime.experiment.config import (
    ArmSection,
    EvalSection,
    ExperimentConfig,
    PromptArm,
    RLRun,
    RLSection,
    SFTSection,
    TeacherSection,
    WorldSection,
)
from searchprime.experiment.policy import eval_agent_config, open_policy
from searchprime.experiment.runner import run_experiment
from searchprime.experiment.summary import report_rows, score_and_label, summarize

__all__ = [
    "ArmSection",
    "EvalSection",
    "ExperimentConfig",
    "PromptArm",
    "RLRun",
    "RLSection",
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

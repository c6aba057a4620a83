"""Scoring and evaluation statistics: answer metrics, the LLM judge, ``score_file``, sampling
metrics (pass@k / avg@k / maj@k), uncertainty (bootstrap CIs, paired tests), policy entropy
and test-time scaling. Nothing here imports torch until :func:`policy_entropy` runs."""

from searchprime.eval.entropy import (
    EntropyReport,
    TokenEntropy,
    TrajectoryEntropy,
    TrajectorySums,
    encode_trajectory,
    load_policy,
    policy_entropy,
)
from searchprime.eval.judge import JudgeVerdict, LLMJudge
from searchprime.eval.judge_prompts import JudgePrompts, default_judge_prompt, get_judge_prompts
from searchprime.eval.llmcall import CachedCaller, CallCache
from searchprime.eval.metrics import cover_em, exact_match, normalize_answer, split_golds, token_f1
from searchprime.eval.passk import (
    GroupSampling,
    SamplingReport,
    TaskSamples,
    avg_at_k,
    collect_samples,
    maj_at_k,
    pass_at_k,
    per_task,
    sampling_report,
)
from searchprime.eval.scaling import (
    DEFAULT_BUDGETS,
    ScalingPoint,
    answer_turn,
    answer_within,
    correct_within,
    turn_scaling,
)
from searchprime.eval.score import ScoreReport, is_correct, score_file
from searchprime.eval.uncertainty import (
    Estimate,
    SeedSummary,
    bootstrap_ci,
    mcnemar_exact,
    mean_ci,
    mean_sd,
    paired,
)

__all__ = [
    "DEFAULT_BUDGETS",
    "CachedCaller",
    "CallCache",
    "EntropyReport",
    "Estimate",
    "GroupSampling",
    "JudgePrompts",
    "JudgeVerdict",
    "LLMJudge",
    "SamplingReport",
    "ScalingPoint",
    "ScoreReport",
    "SeedSummary",
    "TaskSamples",
    "TokenEntropy",
    "TrajectoryEntropy",
    "TrajectorySums",
    "answer_turn",
    "answer_within",
    "avg_at_k",
    "bootstrap_ci",
    "collect_samples",
    "correct_within",
    "cover_em",
    "default_judge_prompt",
    "encode_trajectory",
    "exact_match",
    "get_judge_prompts",
    "is_correct",
    "load_policy",
    "maj_at_k",
    "mcnemar_exact",
    "mean_ci",
    "mean_sd",
    "normalize_answer",
    "paired",
    "pass_at_k",
    "per_task",
    "policy_entropy",
    "sampling_report",
    "score_file",
    "split_golds",
    "token_f1",
    "turn_scaling",
]

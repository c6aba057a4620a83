"""Scoring: answer metrics, the LLM judge, and ``score_file``."""

from searchprime.eval.judge import JudgeVerdict, LLMJudge
from searchprime.eval.llmcall import CachedCaller, CallCache
from searchprime.eval.metrics import cover_em, exact_match, normalize_answer, split_golds, token_f1
from searchprime.eval.score import ScoreReport, is_correct, score_file

__all__ = [
    "CachedCaller",
    "CallCache",
    "JudgeVerdict",
    "LLMJudge",
    "ScoreReport",
    "cover_em",
    "exact_match",
    "is_correct",
    "normalize_answer",
    "score_file",
    "split_golds",
    "token_f1",
]

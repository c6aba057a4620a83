"""The bundle's reward: ``compute_score`` in verl's custom-reward signature, for every source.

verl calls ``compute_score(data_source, solution_str, ground_truth, extra_info)`` for each
rollout. ``data_source`` only labels the row: every source this project reads (``2wiki``,
``tq``, ``Bamboogle``, ``webwalker``, ``sandbox``, ...) is scored the same way, with the metrics
of :mod:`searchprime.eval.metrics` (the ones ``searchprime score`` uses), so verl's
``default_compute_score`` (which rejects unknown sources) is never needed.

The answer is the one the agent loop took: the ``<answer>`` action of the episode's last turn,
parsed by :func:`~searchprime.agent.actions.parse_action`. Our agent loop hands it over exactly
(``extra_info[ANSWER_KEY]``, from its ``extra_fields``); otherwise it is read from the decoded
response (:func:`final_answer`). Ground truth may be Search-R1's ``{"target": [...]}``, a list,
or one string with ``<|answer_split|>`` separators; with none, ``extra_info["answer"]`` (the
paper's layout) or ``extra_info["answers"]``.

>>> response = "<think>t</think>\\n<answer> New York </answer>"
>>> compute_score("2wiki", response, {"target": ["new york"]})["score"]
1.0
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from searchprime.agent.actions import parse_action
from searchprime.eval.metrics import cover_em, exact_match, split_golds, token_f1

__all__ = ["ANSWER_KEY", "METRICS", "answer_scores", "compute_score", "final_answer", "golds_of"]

#: ``extra_info`` key (from the agent loop's ``extra_fields``) holding the loop's final answer.
ANSWER_KEY = "searchprime_final_answer"
METRICS = ("em", "f1", "cover_em")

#: Tags that close a turn's action or an observation: the last turn starts after the last one.
_CLOSERS = ("</information>", "</search>", "</summary>", "</answer>")
#: End-of-turn markers a decode without ``skip_special_tokens`` leaves at the end.
_TRAILING_MARK = re.compile(r"(?:<\|[^|<>\s]{1,40}\|>|</s>|<eos>|<end_of_turn>)\s*\Z")


def final_answer(solution_str: str) -> str | None:
    """The answer of the response's last turn, or None when that turn is not a valid answer.

    The loop's stop strings end every turn at its action's closing tag, so the last turn
    begins after the last closing tag (or ``</information>``) before its own.

    >>> final_answer("<search> q </search>\\nuser\\n<information>d</information>\\n"
    ...              "assistant\\n<answer> 1897 </answer>")
    '1897'
    >>> final_answer("<search> q </search>") is None
    True
    """
    text = solution_str.rstrip()
    while True:
        m = _TRAILING_MARK.search(text, max(0, len(text) - 64))
        if m is None:
            break
        text = text[: m.start()].rstrip()
    if not text.endswith("</answer>"):
        return None
    body = text[: -len("</answer>")]
    cut = max((body.rfind(tag) + len(tag) for tag in _CLOSERS if tag in body), default=0)
    action = parse_action(text[cut:])
    return action.content if action.kind == "answer" else None


def golds_of(ground_truth: Any, extra_info: Mapping[str, Any] | None = None) -> list[str]:
    """Gold answers from any ground-truth shape a row may carry (see the module docstring)."""
    gt = ground_truth
    if isinstance(gt, Mapping):
        gt = next((gt[k] for k in ("target", "answers", "answer") if gt.get(k) is not None), None)
    if gt is None and extra_info:
        gt = extra_info.get("answers")
        if gt is None:
            gt = extra_info.get("answer")
    if gt is None:
        return []
    if hasattr(gt, "tolist"):  # a numpy array, as parquet lists can arrive
        gt = gt.tolist()
    if isinstance(gt, list | tuple):
        return split_golds([str(g) for g in gt])
    return split_golds(str(gt))


def answer_scores(answer: str | None, golds: list[str]) -> dict[str, float]:
    """EM, cover-EM and F1 of ``answer`` as ``searchprime score`` computes them (none: 0)."""
    if answer is None or not answer.strip():
        return {"em": 0.0, "cover_em": 0.0, "f1": 0.0}
    return {
        "em": exact_match(answer, golds),
        "cover_em": cover_em(answer, golds),
        "f1": token_f1(answer, golds),
    }


def compute_score(
    data_source: str,
    solution_str: str,
    ground_truth: Any,
    extra_info: Mapping[str, Any] | None = None,
    *,
    metric: str = "em",
    **_: Any,
) -> dict[str, float]:
    """verl's reward: ``score`` is ``metric`` (em | f1 | cover_em); every metric is logged."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
    if extra_info is not None and ANSWER_KEY in extra_info:
        answer = extra_info[ANSWER_KEY]
    else:
        answer = final_answer(solution_str or "")
    scores = answer_scores(answer, golds_of(ground_truth, extra_info))
    return {"score": scores[metric], **scores, "answered": float(answer is not None)}

"""Answer metrics: exact match, cover-EM and token F1, best over all gold answers.

The definitions follow the SQuAD evaluation script as Search-R1
(``verl/utils/reward_score/qa_em.py``: ``em_check``, ``subem_check``) and FlashRAG
(``evaluator/metrics.py``: ``ExactMatch``, ``Sub_ExactMatch``, ``F1_Score``) use them:

>>> normalize_answer("The  Eiffel Tower!")
'eiffel tower'
>>> exact_match("the eiffel tower", ["Eiffel Tower", "Paris"])
1.0
>>> cover_em("It is the Eiffel Tower, in Paris.", ["eiffel tower"])
1.0
>>> round(token_f1("eiffel tower paris", ["Eiffel Tower"]), 3)
0.8

Two rules the references leave open or get inconsistent:

* A gold that normalises to the empty string (``"The The"``, ``"?"``) matches only a
  prediction that normalises to empty too, for EM, cover-EM and F1 alike (the references give
  EM = 1 but cover-EM = 0 for such a pair, and F1 follows SQuAD 2.0's empty-answer rule).
* Regex golds (CuratedTREC, see :func:`is_regex_source`): with ``regex=True`` each gold is a
  case-insensitive pattern, matched against the normalised prediction as FlashRAG does:
  ``re.fullmatch`` for EM, ``re.search`` for cover-EM. A gold that is not a valid pattern is
  compared literally; F1 always compares literally (FlashRAG's ``F1_Score`` does too).

>>> exact_match("Mount Vesuvius", [r"(mount )?vesuvius"], regex=True)
1.0
>>> cover_em("the", ["The The"]), cover_em("anything", ["The The"])
(1.0, 0.0)
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Iterable

__all__ = [
    "ANSWER_SPLIT",
    "REGEX_SOURCES",
    "cover_em",
    "exact_match",
    "is_regex_source",
    "normalize_answer",
    "split_golds",
    "token_f1",
]

#: Separator of several gold answers in the Behavior Priming JSON layout.
ANSWER_SPLIT = "<|answer_split|>"

_PUNCT = set(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")
#: FlashRAG / HotpotQA: a yes/no/noanswer on either side earns F1 only on an exact match.
_SPECIAL = ("yes", "no", "noanswer")
#: Data sources whose golds are regular expressions (FlashRAG's ``dataset_name``, DPR's qas).
REGEX_SOURCES = frozenset({"curatedtrec"})


def is_regex_source(data_source: str | None) -> bool:
    """Whether golds of ``data_source`` are regexes (``curatedtrec``, any case, ``-``/``_``)."""
    if not data_source:
        return False
    return re.sub(r"[\W_]", "", data_source.lower()) in REGEX_SOURCES


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lower-case, drop punctuation, drop articles, collapse spaces.

    The order is the SQuAD one (lower, punctuation, articles, whitespace), so ``"The-end"``
    becomes ``"theend"`` exactly as in the reference implementations.
    """
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCT)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def split_golds(answer: str | Iterable[str]) -> list[str]:
    """Gold answers as a list; a single string is split on ``<|answer_split|>``."""
    if isinstance(answer, str):
        return [a for a in answer.split(ANSWER_SPLIT)]
    out: list[str] = []
    for a in answer:
        out.extend(split_golds(a))
    return out


def _golds(golds: str | Iterable[str]) -> list[str]:
    return split_golds(golds)


def _pattern(gold: str) -> re.Pattern[str] | None:
    """The gold as a case-insensitive regex, or None when it is blank or not a valid one."""
    if not gold.strip():
        return None  # an empty pattern would match everything: the empty-gold rule applies
    try:
        return re.compile(gold, re.IGNORECASE)
    except re.error:
        return None


def exact_match(
    prediction: str | None, golds: str | Iterable[str], *, regex: bool = False
) -> float:
    """1.0 when the normalised prediction equals any normalised gold (Search-R1 ``em_check``).

    With ``regex``, a gold that is a valid pattern must ``fullmatch`` the normalised prediction.
    """
    if prediction is None:
        return 0.0
    pred = normalize_answer(prediction)
    for g in _golds(golds):
        pattern = _pattern(g) if regex else None
        if pattern is not None and pattern.fullmatch(pred):
            return 1.0
        if pattern is None and normalize_answer(g) == pred:
            return 1.0
    return 0.0


def cover_em(prediction: str | None, golds: str | Iterable[str], *, regex: bool = False) -> float:
    """1.0 when any normalised gold is a substring of the normalised prediction.

    Search-R1's ``subem_check`` / FlashRAG's ``Sub_ExactMatch`` (a plain substring test, so
    ``"2004"`` covers ``"20045"`` as well; that is the reference behaviour). A gold that
    normalises to empty covers only a prediction that normalises to empty (so cover-EM is
    never below EM). With ``regex``, a pattern gold must be found (``re.search``) in it.
    """
    if prediction is None:
        return 0.0
    pred = normalize_answer(prediction)
    for g in _golds(golds):
        pattern = _pattern(g) if regex else None
        if pattern is not None:
            if pattern.search(pred):
                return 1.0
            continue
        gold = normalize_answer(g)
        if gold in pred if gold else not pred:
            return 1.0
    return 0.0


def _f1_one(pred: str, gold: str) -> float:
    if pred in _SPECIAL and pred != gold:
        return 0.0
    if gold in _SPECIAL and pred != gold:
        return 0.0
    pred_toks, gold_toks = pred.split(), gold.split()
    if not pred_toks or not gold_toks:  # SQuAD 2.0: empty matches only empty
        return float(pred_toks == gold_toks)
    common = Counter(pred_toks) & Counter(gold_toks)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision = same / len(pred_toks)
    recall = same / len(gold_toks)
    return 2 * precision * recall / (precision + recall)


def token_f1(prediction: str | None, golds: str | Iterable[str]) -> float:
    """Best token-level F1 over the golds (FlashRAG ``F1_Score`` / HotpotQA rules)."""
    if prediction is None:
        return 0.0
    pred = normalize_answer(prediction)
    return max((_f1_one(pred, normalize_answer(g)) for g in _golds(golds)), default=0.0)

"""The ``expr:`` strategy's sandbox: a small expression over one trajectory.

Only comparisons, boolean and arithmetic operators, literals, the names of
:data:`EXPR_NAMES` and the calls ``has() len() min() max() abs()`` parse; anything else
(attributes, subscripts, lambdas, other calls) is a :class:`~searchprime.errors.ConfigError`
before a trajectory is read. Evaluation runs without builtins.

>>> from searchprime.data.config import SelectionConfig
>>> pred = compile_expression("n_searches >= 2 and answered", SelectionConfig())
>>> pred(Trajectory(task_id="t", question="q", termination="answer"))
False
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from typing import Any

from searchprime.data.config import SelectionConfig, recorded_correct
from searchprime.errors import ConfigError, SelectionError
from searchprime.records import Trajectory

__all__ = ["EXPR_NAMES", "compile_expression"]

_ALLOWED_NODES = (
    ast.Expression,
    ast.BoolOp,
    ast.And,
    ast.Or,
    ast.UnaryOp,
    ast.Not,
    ast.USub,
    ast.Compare,
    ast.Eq,
    ast.NotEq,
    ast.Lt,
    ast.LtE,
    ast.Gt,
    ast.GtE,
    ast.In,
    ast.NotIn,
    ast.Is,
    ast.IsNot,
    ast.BinOp,
    ast.Add,
    ast.Sub,
    ast.Mult,
    ast.Div,
    ast.Name,
    ast.Load,
    ast.Constant,
    ast.Call,
    ast.Tuple,
    ast.List,
    ast.Set,
    ast.IfExp,
)
_EXPR_FUNCS = {"has", "len", "min", "max", "abs"}

#: Names an ``expr:`` strategy can use (documented in the CLI help).
EXPR_NAMES = (
    "em, f1, cover_em, judge, correct, n_turns, n_searches, n_invalid, termination, answered, "
    "task_id, attempt, data_source, behaviors (set of present names), n_behaviors, has(name)"
)


def _namespace(t: Trajectory, cfg: SelectionConfig) -> dict[str, Any]:
    s = t.scores
    present = {name for name, ev in t.labels.behaviors.items() if ev.present} if t.labels else set()
    return {
        "em": s.em if s else None,
        "f1": s.f1 if s else None,
        "cover_em": s.cover_em if s else None,
        "judge": s.judge if s else None,
        "correct": recorded_correct(t, cfg.correctness),
        "n_turns": len(t.turns),
        "n_searches": t.n_searches,
        "n_invalid": sum(1 for x in t.turns if x.action.kind == "invalid"),
        "termination": t.termination,
        "answered": t.termination == "answer",
        "task_id": t.task_id,
        "attempt": t.attempt,
        "data_source": t.data_source,
        "behaviors": present,
        "n_behaviors": len(present),
        "has": lambda name: name in present,
        "len": len,
        "min": min,
        "max": max,
        "abs": abs,
    }


def compile_expression(source: str, cfg: SelectionConfig) -> Callable[[Trajectory], bool]:
    """Check ``source`` against the sandbox and return it as a predicate."""
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as exc:
        raise ConfigError(f"strategy: expr:{source}: not a valid expression ({exc.msg})") from None
    names = set(_namespace(Trajectory(task_id="x", question="x", termination="answer"), cfg))
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED_NODES):
            raise ConfigError(
                f"strategy: expr:{source}: {type(node).__name__} is not allowed in an expression"
            )
        if isinstance(node, ast.Name) and node.id not in names:
            raise ConfigError(
                f"strategy: expr:{source}: unknown name {node.id!r}; use {EXPR_NAMES}"
            )
        if isinstance(node, ast.Call) and not (
            isinstance(node.func, ast.Name) and node.func.id in _EXPR_FUNCS and not node.keywords
        ):
            raise ConfigError(f"strategy: expr:{source}: only has(), len(), min(), max(), abs()")
    code = compile(tree, "<strategy>", "eval")

    def pred(t: Trajectory) -> bool:
        try:
            return bool(eval(code, {"__builtins__": {}}, _namespace(t, cfg)))  # noqa: S307
        except TypeError as exc:  # e.g. None >= 1 when a score is missing
            raise SelectionError(
                f"strategy: expr:{source}: failed on task {t.task_id} attempt {t.attempt}: {exc}"
            ) from None

    return pred

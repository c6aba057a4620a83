"""Choose the trajectories an SFT arm trains on: named strategies, exact sizes, dedup, a card.

Strategies are predicates over :class:`~searchprime.records.Trajectory`, registered by name so
the CLI and configs can name them and a run records exactly which one it used:

=====================  =====================================================================
``behavior``           every behavior of the set (default: all four) present in the labels
``behavior-incorrect`` the same, and the final answer is wrong
``correct``            the final answer is right (behaviors ignored)
``random``             any trajectory
``single:<behavior>``  that one behavior present
``expr:<expression>``  a small expression, e.g. ``expr:correct and n_searches >= 2``
``py:<module>:<func>`` any Python function ``func(traj) -> bool``
=====================  =====================================================================

Every strategy first drops trajectories that ended in a backend error, and (by default) those
that never answered; then duplicates (same task, same action sequence) are removed, keeping
the first; then exactly ``n`` are drawn with ``seed`` so that arms compare at equal size.

>>> SelectionConfig(strategy="single:adaptive_search", n=10).strategy
'single:adaptive_search'
"""

from __future__ import annotations

import ast
import importlib
import random
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from searchprime.errors import ConfigError, SearchPrimeError
from searchprime.records import BEHAVIORS, Task, Trajectory
from searchprime.records.behavior import BehaviorLabels

__all__ = [
    "STRATEGIES",
    "Selection",
    "SelectionCard",
    "SelectionConfig",
    "SelectionError",
    "Strategy",
    "action_signature",
    "allocate",
    "dedup",
    "get_strategy",
    "is_correct",
    "register_strategy",
    "select_trajectories",
]

Predicate = Callable[[Trajectory], bool]
Correctness = Literal["em", "judge", "em_or_judge"]


class SelectionError(SearchPrimeError):
    """The input cannot satisfy the requested selection (too few matches, missing labels...)."""


class SelectionConfig(BaseModel):
    """How to select one arm's trajectories."""

    model_config = ConfigDict(extra="forbid")

    strategy: str = Field(default="behavior", description="Strategy spec, e.g. 'single:X'.")
    n: int | None = Field(default=None, ge=1, description="Exact number to draw; None = all.")
    seed: int = Field(default=0, description="Seed of the draw (same seed, same sample).")
    behaviors: list[str] = Field(
        default_factory=lambda: list(BEHAVIORS),
        description="The behavior set of the 'behavior' strategies.",
    )
    correctness: Correctness = Field(
        default="em",
        description="What 'correct' means: EM == 1, the judge's verdict, or either.",
    )
    require_answer: bool = Field(
        default=True, description="Drop trajectories that never answered (turn or context limit)."
    )
    dedup: bool = Field(default=True, description="Drop repeats: same task + same actions.")
    stratify: str | None = Field(
        default=None,
        description="A field of the tasks' meta (e.g. 'hops'): draw n so that the selection "
        "keeps the usable pool's mix of its values rather than the mix the strategy favours "
        "(correct runs are mostly the easy tasks). Needs the tasks.",
    )

    @field_validator("behaviors")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one behavior is needed")
        return value


# --------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class Strategy:
    """A named selection strategy: ``build(arg, config)`` returns the predicate."""

    name: str
    description: str
    build: Callable[[str | None, SelectionConfig], Predicate]
    needs_labels: bool = False
    needs_scores: bool = False
    takes_arg: bool = False


STRATEGIES: dict[str, Strategy] = {}


def register_strategy(
    name: str,
    description: str,
    *,
    needs_labels: bool = False,
    needs_scores: bool = False,
    takes_arg: bool = False,
) -> Callable[[Callable[[str | None, SelectionConfig], Predicate]], Any]:
    """Register ``build(arg, config) -> predicate`` under ``name`` (decorator)."""

    def deco(build: Callable[[str | None, SelectionConfig], Predicate]) -> Any:
        STRATEGIES[name] = Strategy(
            name, description, build, needs_labels, needs_scores, takes_arg=takes_arg
        )
        return build

    return deco


def get_strategy(spec: str) -> tuple[Strategy, str | None]:
    """Split ``name[:arg]`` and look the name up; unknown names are a :class:`ConfigError`."""
    name, sep, arg = spec.partition(":")
    strat = STRATEGIES.get(name)
    if strat is None:
        known = ", ".join(f"{s.name}:<arg>" if s.takes_arg else s.name for s in STRATEGIES.values())
        raise ConfigError(f"strategy: unknown strategy {spec!r}; known: {known}")
    if strat.takes_arg and not arg:
        raise ConfigError(f"strategy: {name!r} needs an argument, e.g. {name}:<value>")
    if not strat.takes_arg and sep:
        raise ConfigError(f"strategy: {name!r} takes no argument (got {spec!r})")
    return strat, (arg or None)


def is_correct(traj: Trajectory, correctness: Correctness = "em") -> bool:
    """Whether the final answer is right (missing scores count as wrong)."""
    from searchprime.eval.score import is_correct as scored_correct

    if traj.scores is None:
        return False
    if correctness == "em_or_judge":
        return scored_correct(traj, "em") or scored_correct(traj, "judge")
    return scored_correct(traj, correctness)


def _labels(traj: Trajectory) -> BehaviorLabels:
    assert traj.labels is not None  # checked before predicates run
    return traj.labels


@register_strategy(
    "behavior", "all behaviors of the set present (right or wrong answer)", needs_labels=True
)
def _behavior(arg: str | None, cfg: SelectionConfig) -> Predicate:
    names = tuple(cfg.behaviors)
    return lambda t: _labels(t).has_all(names)


@register_strategy(
    "behavior-incorrect",
    "all behaviors of the set present and the answer wrong",
    needs_labels=True,
    needs_scores=True,
)
def _behavior_incorrect(arg: str | None, cfg: SelectionConfig) -> Predicate:
    names = tuple(cfg.behaviors)
    return lambda t: _labels(t).has_all(names) and not is_correct(t, cfg.correctness)


@register_strategy("correct", "the final answer is right (behaviors ignored)", needs_scores=True)
def _correct(arg: str | None, cfg: SelectionConfig) -> Predicate:
    return lambda t: is_correct(t, cfg.correctness)


@register_strategy("random", "any trajectory")
def _random(arg: str | None, cfg: SelectionConfig) -> Predicate:
    return lambda t: True


@register_strategy("single", "one behavior present", needs_labels=True, takes_arg=True)
def _single(arg: str | None, cfg: SelectionConfig) -> Predicate:
    if arg not in BEHAVIORS:
        raise ConfigError(
            f"strategy: single:{arg}: unknown behavior; known: {', '.join(BEHAVIORS)}"
        )
    return lambda t: _labels(t).has(arg)


@register_strategy("py", "a Python function module:function(traj) -> bool", takes_arg=True)
def _py(arg: str | None, cfg: SelectionConfig) -> Predicate:
    module, _, func = (arg or "").rpartition(":")
    if not module or not func:
        raise ConfigError(f"strategy: py:{arg}: expected py:<module>:<function>")
    try:
        fn = getattr(importlib.import_module(module), func)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"strategy: py:{arg}: cannot import ({exc})") from None
    if not callable(fn):
        raise ConfigError(f"strategy: py:{arg}: {func} is not callable")
    return lambda t: bool(fn(t))


# --------------------------------------------------------------------------- expressions

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


def _expr_namespace(t: Trajectory, cfg: SelectionConfig) -> dict[str, Any]:
    s = t.scores
    present = {name for name, ev in t.labels.behaviors.items() if ev.present} if t.labels else set()
    return {
        "em": s.em if s else None,
        "f1": s.f1 if s else None,
        "cover_em": s.cover_em if s else None,
        "judge": s.judge if s else None,
        "correct": is_correct(t, cfg.correctness),
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


@register_strategy("expr", "a small expression over the trajectory: " + EXPR_NAMES, takes_arg=True)
def _expr(arg: str | None, cfg: SelectionConfig) -> Predicate:
    source = arg or ""
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as exc:
        raise ConfigError(f"strategy: expr:{source}: not a valid expression ({exc.msg})") from None
    names = set(_expr_namespace(Trajectory(task_id="x", question="x", termination="answer"), cfg))
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
            return bool(eval(code, {"__builtins__": {}}, _expr_namespace(t, cfg)))  # noqa: S307
        except TypeError as exc:  # e.g. None >= 1 when a score is missing
            raise SelectionError(
                f"strategy: expr:{source}: failed on task {t.task_id} attempt {t.attempt}: {exc}"
            ) from None

    return pred


# --------------------------------------------------------------------------- selection


def action_signature(traj: Trajectory) -> tuple[tuple[str, str], ...]:
    """The action sequence (kind, whitespace/case-normalised content) used for dedup."""
    return tuple((t.action.kind, " ".join(t.action.content.lower().split())) for t in traj.turns)


def dedup(trajs: Iterable[Trajectory]) -> list[Trajectory]:
    """Keep the first trajectory of each (task id, action sequence)."""
    seen: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
    kept = []
    for t in trajs:
        key = (t.task_id, action_signature(t))
        if key not in seen:
            seen.add(key)
            kept.append(t)
    return kept


class SelectionCard(BaseModel):
    """What was selected and why: written beside every exported dataset."""

    model_config = ConfigDict(extra="forbid")

    strategy: str
    description: str
    config: SelectionConfig
    counts: dict[str, int] = Field(description="Funnel: read -> usable -> matched -> selected.")
    selected_tasks: int
    correct_rate: float | None = Field(description="Fraction correct among the selected.")
    behavior_rates: dict[str, float] = Field(description="Fraction showing each behavior.")
    annotators: list[str] = Field(description="Who labelled the selected trajectories.")
    mean_turns: float
    mean_searches: float
    keys: list[tuple[str, int]] = Field(description="(task id, attempt) of each selected one.")
    strata: dict[str, dict[str, int]] | None = Field(
        default=None, description="With stratify: per value, usable pool and selected counts."
    )
    extra: dict[str, Any] = Field(default_factory=dict, description="Set by exporters.")

    def summary_lines(self) -> list[str]:
        """A short human-readable rendering of the card."""
        c = self.counts
        funnel = " -> ".join(f"{k} {v}" for k, v in c.items())
        rates = ", ".join(f"{k} {v:.0%}" for k, v in self.behavior_rates.items())
        correct = "n/a" if self.correct_rate is None else f"{self.correct_rate:.0%}"
        lines = [
            f"strategy {self.strategy} ({self.description}), seed {self.config.seed}",
            f"funnel: {funnel}",
            f"selected {c.get('selected', 0)} trajectories over {self.selected_tasks} tasks; "
            f"correct {correct}; turns {self.mean_turns:.1f}, searches {self.mean_searches:.1f}",
            f"behaviors: {rates or 'no labels'}",
        ]
        if self.strata:
            mix = ", ".join(f"{k}: {v['selected']}/{v['pool']}" for k, v in self.strata.items())
            lines.append(f"stratified by {self.config.stratify} (selected/pool): {mix}")
        lines += [f"{k}: {v}" for k, v in self.extra.items()]
        return lines


@dataclass
class Selection:
    """Selected trajectories (in input order) and their card."""

    trajectories: list[Trajectory]
    card: SelectionCard


def _check_needs(strat: Strategy, trajs: list[Trajectory]) -> None:
    for need, attr, fix in (
        (strat.needs_labels, "labels", "searchprime behaviors annotate"),
        (strat.needs_scores, "scores", "searchprime score"),
    ):
        if not need:
            continue
        missing = [t for t in trajs if getattr(t, attr) is None]
        if missing:
            first = missing[0]
            raise SelectionError(
                f"strategy {strat.name!r} needs {attr}, but {len(missing)} of {len(trajs)} "
                f"trajectories have none (first: task {first.task_id} attempt {first.attempt}); "
                f"run `{fix}` first"
            )


def select_trajectories(
    trajs: Iterable[Trajectory],
    config: SelectionConfig,
    tasks: Mapping[str, Task] | None = None,
) -> Selection:
    """Apply ``config`` to ``trajs``: filter, match, dedup, draw exactly ``config.n``.

    ``tasks`` (id -> task) is needed only by ``config.stratify``.
    """
    strat, arg = get_strategy(config.strategy)
    pred = strat.build(arg, config)
    every = list(trajs)
    usable = [
        t
        for t in every
        if t.termination != "error" and (t.termination == "answer" or not config.require_answer)
    ]
    _check_needs(strat, usable)
    stratum: dict[str, str] | None = None  # task id -> value of the stratify field
    if config.stratify:
        if tasks is None:
            raise ConfigError(
                f"stratify: {config.stratify!r} needs the tasks the trajectories were rolled out on"
            )
        stratum = {t.task_id: _stratum(t, config.stratify, tasks) for t in usable}
        pool = Counter(stratum[t.task_id] for t in usable)
    matched = [t for t in usable if pred(t)]
    unique = dedup(matched) if config.dedup else matched
    counts = {"read": len(every), "usable": len(usable), "matched": len(matched)}
    if config.dedup:
        counts["unique"] = len(unique)
    if config.n is not None:
        if len(unique) < config.n:
            raise SelectionError(
                f"strategy {config.strategy!r} kept {len(unique)} trajectories "
                f"({', '.join(f'{k} {v}' for k, v in counts.items())}), fewer than n={config.n}; "
                "lower n or collect more trajectories"
            )
        order = {id(t): i for i, t in enumerate(unique)}
        rng = random.Random(config.seed)
        if stratum is not None:
            chosen = _stratified_draw(unique, config.n, stratum, pool, rng)
        else:
            chosen = rng.sample(unique, config.n)
        chosen.sort(key=lambda t: order[id(t)])
    else:
        chosen = unique
    counts["selected"] = len(chosen)
    card = _card(strat, config, counts, chosen)
    if stratum is not None:
        picked = Counter(stratum[t.task_id] for t in chosen)
        card.strata = {k: {"pool": pool[k], "selected": picked[k]} for k in sorted(pool)}
    return Selection(chosen, card)


def _stratum(traj: Trajectory, field: str, tasks: Mapping[str, Task]) -> str:
    task = tasks.get(traj.task_id)
    if task is None:
        raise SelectionError(
            f"stratify: {field}: task {traj.task_id!r} is not among the tasks given "
            "(pass the task file the trajectories were rolled out on)"
        )
    if field not in task.meta:
        raise SelectionError(f"stratify: task {traj.task_id!r} has no meta field {field!r}")
    return str(task.meta[field])


def allocate(n: int, shares: Mapping[str, int], available: Mapping[str, int]) -> dict[str, int]:
    """Split ``n`` over strata in proportion to ``shares``, never above ``available``.

    Water-filling: a stratum whose share exceeds what it has gives everything, and the rest
    of ``n`` is split over the others in proportion again; then largest-remainder rounding.
    Returns less than ``n`` in all only if ``available`` sums to less.

    >>> allocate(10, {"1": 37, "2": 43, "3": 20}, {"1": 50, "2": 30, "3": 1})
    {'1': 4, '2': 5, '3': 1}
    """
    quota = dict.fromkeys(available, 0)
    open_ = sorted(k for k, v in available.items() if v > 0)
    while open_:
        rest = n - sum(quota.values())
        weights = {k: shares.get(k, 0) for k in open_}
        if not any(weights.values()):
            weights = dict.fromkeys(open_, 1)
        total = sum(weights.values())
        exact = {k: rest * w / total for k, w in weights.items()}
        short = [k for k in open_ if exact[k] >= available[k]]
        if not short:
            give = {k: int(v) for k, v in exact.items()}
            by_remainder = sorted(open_, key=lambda k: give[k] - exact[k])
            for k in by_remainder[: rest - sum(give.values())]:
                give[k] += 1  # exact < available, so rounding up stays within it
            quota.update(give)
            break
        for k in short:
            quota[k] = available[k]
        open_ = [k for k in open_ if k not in short]
    return quota


def _stratified_draw(
    unique: list[Trajectory],
    n: int,
    stratum: Mapping[str, str],
    pool: Mapping[str, int],
    rng: random.Random,
) -> list[Trajectory]:
    groups: dict[str, list[Trajectory]] = {}
    for t in unique:
        groups.setdefault(stratum[t.task_id], []).append(t)
    quota = allocate(n, pool, {k: len(v) for k, v in groups.items()})
    return [t for k in sorted(groups) for t in rng.sample(groups[k], quota[k])]


def _card(
    strat: Strategy, config: SelectionConfig, counts: dict[str, int], chosen: list[Trajectory]
) -> SelectionCard:
    n = len(chosen) or 1
    scored = [t for t in chosen if t.scores is not None]
    labelled = [t for t in chosen if t.labels is not None]
    rates = {}
    if labelled:
        names = list(BEHAVIORS) + sorted(
            {k for t in labelled for k in t.labels.behaviors if k not in BEHAVIORS}
        )
        rates = {b: sum(t.labels.has(b) for t in labelled) / len(labelled) for b in names}
    return SelectionCard(
        strategy=config.strategy,
        description=strat.description,
        config=config,
        counts=counts,
        selected_tasks=len({t.task_id for t in chosen}),
        correct_rate=(
            sum(is_correct(t, config.correctness) for t in scored) / len(scored) if scored else None
        ),
        behavior_rates=rates,
        annotators=sorted({t.labels.annotator for t in labelled}),
        mean_turns=sum(len(t.turns) for t in chosen) / n,
        mean_searches=sum(t.n_searches for t in chosen) / n,
        keys=[t.key for t in chosen],
    )

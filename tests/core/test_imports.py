"""Imports run the way DESIGN.md §8 draws them, and every public package declares ``__all__``.

Read from the source (AST), not by importing: module-level, function-level (lazy) and
``TYPE_CHECKING`` imports all count. An edge is allowed by the stage table, by a narrow rule
(one importing module, maybe lazy only), or by :data:`UNDRAWN` — edges the code has and the
drawing lacks, listed so that the lead decides; an entry that no longer occurs fails too, so
the lists only shrink.
"""

from __future__ import annotations

import ast
import functools
import importlib
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "searchprime"
EVERY = frozenset({"*"})

#: DESIGN §8, plus the edges the lead added (eval -> train for entropy is a narrow rule below).
STAGES: dict[str, frozenset[str]] = {
    "cli": EVERY,
    "experiment": EVERY,
    "__main__": frozenset({"cli"}),
    "rl": frozenset({"agent", "llm", "search", "eval", "train", "records", "behaviors"}),
    "train": frozenset({"agent", "data", "records"}),
    "report": frozenset({"eval", "behaviors", "records"}),
    "agent": frozenset({"llm", "search", "records"}),
    "world": frozenset({"records"}),
    "behaviors": frozenset({"eval", "world", "records"}),
    "eval": frozenset({"records"}),
    "data": frozenset({"records"}),
    "llm": frozenset({"records", "_http"}),
    "search": frozenset({"records", "_http"}),
    "records": frozenset(),
    # private machinery of the package root (issue 16: one HTTP transport for llm and search,
    # plugin registries for everyone)
    "_http": frozenset({"records"}),
    "_plugins": frozenset(),
}
#: Leaf modules of the package root that any module may import (they import no stage).
SHARED = frozenset({"errors", "_lazy", "secrets", "config", "_plugins"})


@dataclass(frozen=True)
class Narrow:
    """``module`` (or a module under it) may import ``stage``; with ``lazy``, only inside a
    function."""

    module: str
    stage: str
    lazy: bool = False
    why: str = ""


NARROW = [
    Narrow("searchprime.world.calibrate", "search", why="DESIGN: search, only for calibration"),
    Narrow("searchprime.eval.judge", "llm", why="DESIGN: llm, only for the LLM judge"),
    Narrow("searchprime.eval.llmcall", "llm", why="the judge's cached LLM calls"),
    Narrow("searchprime.eval.entropy", "train", lazy=True, why="lead: entropy loads the policy"),
]

#: Edges in the code that DESIGN §8 does not draw: (importing module, imported stage) -> why
#: it is there. For the lead: redraw DESIGN or change the code, then delete the entry.
UNDRAWN: dict[tuple[str, str], str] = {
    ("searchprime.world.teachers", "llm"): "a teacher implements the LLM protocol",
    ("searchprime.world.teachers", "search"): "reads results with search.format.parse_hits",
    ("searchprime.world.calibrate", "agent"): "calibration runs teachers through rollout()",
    ("searchprime.world.calibrate", "eval"): "calibration counts right answers by eval's EM",
    ("searchprime.data.config", "eval"): "selection's correctness is eval.score.is_correct",
    ("searchprime.data.prime", "tasks"): "prime --tasks (stratify) loads a task file",
    ("searchprime.eval.entropy", "data"): "entropy scores the SFT samples of a trajectory",
    ("searchprime.eval.entropy", "llm"): "entropy renders chats with llm.tokens",
    ("searchprime.eval.score", "tasks"): "score loads the tasks file (any layout)",
    ("searchprime.behaviors.annotate", "llm"): "the LLM annotator takes an LLM",
    ("searchprime.behaviors.discover", "llm"): "discovery takes an LLM",
    ("searchprime.behaviors.rules", "search"): "the rules read observations with parse_hits",
    ("searchprime.rl.curves", "report"): "RL curves are drawn with report.plots",
    ("searchprime.rl.grpo", "tasks"): "RL loads its task file",
    ("searchprime.train.models", "llm"): "the SmolLM2 GGUF comes from llm.models",
    ("searchprime.train.gguf_export", "llm"): "the GGUF template comes from llm.models",
    ("searchprime.tasks._loaders", "records"): "tasks (the task-file loaders) is not drawn",
}


@dataclass(frozen=True)
class Edge:
    module: str  # importing module, dotted
    stage: str  # imported stage (first component under searchprime)
    target: str  # imported module, dotted
    line: int
    lazy: bool  # inside a function

    def __str__(self) -> str:
        where = self.module.replace(".", "/") + f".py:{self.line}"
        return f"{where}: {self.stage_of(self.module)} -> {self.stage} ({self.target})"

    @staticmethod
    def stage_of(module: str) -> str:
        parts = module.split(".")
        return parts[1] if len(parts) > 1 else parts[0]


def _module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _targets(node: ast.AST, module: str, is_package: bool) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    assert isinstance(node, ast.ImportFrom)
    base = node.module or ""
    if node.level:  # relative: resolve against the importing package
        pkg = module.split(".") if is_package else module.split(".")[:-1]
        pkg = pkg[: len(pkg) - (node.level - 1)]
        base = ".".join([*pkg, *([base] if base else [])])
    if base == "searchprime":  # `from searchprime import secrets` names a module
        return [f"searchprime.{a.name}" for a in node.names]
    return [base]


@functools.cache
def _edges() -> tuple[Edge, ...]:
    edges = []
    for path in sorted(SRC.rglob("*.py")):
        module = _module_name(path)
        tree = ast.parse(path.read_text(), filename=str(path))
        lazy_nodes: set[int] = set()
        for fn in ast.walk(tree):
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lazy_nodes.update(id(n) for n in ast.walk(fn))
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            for target in _targets(node, module, path.name == "__init__.py"):
                parts = target.split(".")
                if parts[0] != "searchprime" or len(parts) < 2:
                    continue
                if parts[1] == Edge.stage_of(module):
                    continue
                edges.append(Edge(module, parts[1], target, node.lineno, id(node) in lazy_nodes))
    return tuple(edges)


def _allowed_by_table(edge: Edge) -> bool:
    if edge.stage in SHARED:
        return True
    allowed = STAGES.get(Edge.stage_of(edge.module), frozenset())
    return allowed == EVERY or edge.stage in allowed


def _narrow_rule(edge: Edge) -> Narrow | None:
    for rule in NARROW:
        inside = edge.module == rule.module or edge.module.startswith(rule.module + ".")
        if inside and edge.stage == rule.stage and (edge.lazy or not rule.lazy):
            return rule
    return None


def test_the_edge_reader_sees_lazy_relative_and_root_imports() -> None:
    src = (
        "from searchprime import secrets\nfrom . import load\n"
        "def f():\n    from searchprime.agent.loop import run_agent\n"
    )
    tree = ast.parse(src)
    found = [t for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
             for t in _targets(n, "searchprime.world.calibrate", False)]  # fmt: skip
    assert found == ["searchprime.secrets", "searchprime.world", "searchprime.agent.loop"]
    lazy = {e.target: e.lazy for e in _edges() if e.module == "searchprime.world.calibrate"}
    assert lazy["searchprime.agent.rollout"] is True
    assert lazy["searchprime.records"] is False


def test_imports_follow_design_section_8() -> None:
    edges = _edges()
    assert len(edges) > 100  # the reader found the package
    bad = [
        str(e)
        for e in edges
        if not _allowed_by_table(e)
        and _narrow_rule(e) is None
        and (e.module, e.stage) not in UNDRAWN
    ]
    assert not bad, "imports against DESIGN §8 (redraw it or change the code):\n" + "\n".join(bad)


def test_the_exception_lists_only_shrink() -> None:
    edges = _edges()
    seen = {(e.module, e.stage) for e in edges}
    stale = [k for k in UNDRAWN if k not in seen]
    assert not stale, f"UNDRAWN entries no longer in the code (delete them): {stale}"
    unused = [r for r in NARROW if not any(_narrow_rule(e) is r for e in edges)]
    assert not unused, f"NARROW rules no import uses (delete them): {unused}"
    both = [k for k in UNDRAWN if any(_narrow_rule(e) for e in edges if (e.module, e.stage) == k)]
    assert not both, f"UNDRAWN entries a NARROW rule already allows: {both}"


def test_nothing_imports_the_cli() -> None:
    users = [str(e) for e in _edges() if e.stage == "cli" and e.module != "searchprime.__main__"]
    assert not users


def _declares_all(tree: ast.Module) -> bool:
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
            return True
    return False


PACKAGES = sorted(
    _module_name(p) for p in SRC.rglob("__init__.py") if not p.parent.name.startswith("_")
)


@pytest.mark.parametrize("package", PACKAGES)
def test_public_packages_declare_all(package: str) -> None:
    init = SRC.parent.joinpath(*package.split("."), "__init__.py")
    assert _declares_all(ast.parse(init.read_text())), f"{package} has no __all__"
    module = importlib.import_module(package)
    declared = list(module.__all__)
    assert len(declared) == len(set(declared)), f"{package}.__all__ repeats a name"
    missing = [name for name in declared if not hasattr(module, name)]  # lazy names load here
    assert not missing, f"{package}.__all__ names what it does not define: {missing}"

"""Imports run the way docs/architecture.md draws them (DESIGN.md §8 plus the edges the code
keeps, each with its reason), and every public package declares ``__all__``.

Read from the source (AST), not by importing: module-level, function-level (lazy) and
``TYPE_CHECKING`` imports all count. The drawing's table is the single list of allowed edges;
a module row no import uses fails too, so the drawing stays the code's.
"""

from __future__ import annotations

import ast
import functools
import importlib
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "searchprime"
DRAWING = SRC.parents[1] / "docs" / "architecture.md"
EVERY = "*"
#: Leaf modules of the package root that any module may import (they import no stage).
SHARED = frozenset({"errors", "_lazy", "secrets", "config", "_plugins"})


@dataclass(frozen=True)
class Rule:
    """One table row: modules under ``importer`` may import ``stage`` (only lazily with
    ``lazy``)."""

    importer: str  # a stage or a dotted module under one
    stage: str
    lazy: bool = False


def _read_drawing(path: Path = DRAWING) -> list[Rule]:
    """The rules of the ``| importer | may import | why |`` table of docs/architecture.md."""
    rules = []
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[0].startswith("`"):
            continue
        importer = cells[0].strip("`")
        assert importer, f"{path}:{lineno}: empty importer"
        for item in filter(None, (i.strip() for i in cells[1].split(","))):
            m = re.fullmatch(r"(\*|[\w.]+)( \(lazy\))?", item)
            assert m, f"{path}:{lineno}: cannot read {item!r}"
            rules.append(Rule(importer, m.group(1), lazy=bool(m.group(2))))
        if not cells[1]:
            rules.append(Rule(importer, ""))  # a row that allows nothing still names its stage
    return rules


RULES = _read_drawing()


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


def _rule_for(edge: Edge) -> Rule | None:
    """The table row that allows ``edge``, or None."""
    if edge.stage in SHARED:
        return Rule("*", edge.stage)
    for rule in RULES:
        inside = edge.module == f"searchprime.{rule.importer}" or edge.module.startswith(
            f"searchprime.{rule.importer}."
        )
        if inside and rule.stage in (edge.stage, EVERY) and (edge.lazy or not rule.lazy):
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


def test_the_drawing_is_read() -> None:
    stages = {r.importer for r in RULES if "." not in r.importer}
    drawn = {p.name for p in SRC.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert drawn - {"cli"} <= stages, f"stages with no row: {sorted(drawn - stages)}"
    assert Rule("eval.entropy", "train", lazy=True) in RULES
    assert Rule("rl", "behaviors") in RULES


def test_a_drawing_row_that_cannot_be_read_fails(tmp_path: Path) -> None:
    bad = tmp_path / "architecture.md"
    bad.write_text("| importer | may import | why |\n|---|---|---|\n| `rl` | agent; llm | x |\n")
    with pytest.raises(AssertionError, match=r"architecture.md:3: cannot read 'agent; llm'"):
        _read_drawing(bad)


def test_imports_follow_the_drawing() -> None:
    edges = _edges()
    assert len(edges) > 100  # the reader found the package
    bad = [str(e) for e in edges if _rule_for(e) is None]
    assert not bad, "imports against docs/architecture.md (redraw it or change the code):\n" + (
        "\n".join(bad)
    )


def test_every_drawn_edge_is_used() -> None:
    edges = _edges()
    used = {_rule_for(e) for e in edges}
    stale = [r for r in RULES if r.stage not in ("", EVERY) and "." in r.importer and r not in used]
    assert not stale, f"rows of docs/architecture.md no import uses (delete them): {stale}"


def test_a_lazy_only_rule_refuses_a_module_level_import() -> None:
    eager = Edge("searchprime.eval.entropy", "train", "searchprime.train.sft", 1, lazy=False)
    lazy = Edge("searchprime.eval.entropy", "train", "searchprime.train.sft", 1, lazy=True)
    assert _rule_for(eager) is None
    assert _rule_for(lazy) == Rule("eval.entropy", "train", lazy=True)
    assert _rule_for(Edge("searchprime.eval.score", "agent", "searchprime.agent", 1, False)) is None


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

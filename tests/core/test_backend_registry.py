"""Search and LLM backends plug in from outside the package and run a real rollout.

The third-party code below is written into ``tmp_path`` and put on ``sys.path``: nothing of it
lives in searchprime or its tests. It is reached three ways: ``py:<module>:<factory>`` names,
the ``@register_*_backend`` decorators, and an installed distribution's entry points.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from searchprime.cli.main import app
from searchprime.cli.rollout_cmd import rollout_main
from searchprime.errors import ConfigError
from searchprime.llm.registry import LLM_BACKENDS, LLMConfig, load_llm
from searchprime.records import Task, Trajectory, read_jsonl
from searchprime.search.registry import SEARCH_BACKENDS, SearchConfig, load_search

THIRD_PARTY = '''
"""Acme's backends: an in-memory search and a policy that answers from what it found."""
import re

from searchprime.llm.base import Completion
from searchprime.llm.registry import register_llm_backend
from searchprime.records import SearchHit
from searchprime.search.registry import register_search_backend


class MemorySearch:
    name = "acme-memory"

    def __init__(self, docs):
        self.docs = docs

    async def search(self, queries, topk):
        out = []
        for q in queries:
            words = set(q.lower().split())
            hits = [SearchHit(doc_id=i, title=i, text=t) for i, t in self.docs.items()
                    if words & set(t.lower().replace(".", "").split())]
            out.append(hits[:topk])
        return out

    def describe(self):
        return {"kind": "acme-memory", "docs": len(self.docs)}

    async def aclose(self):
        pass


class ReaderLLM:
    name = "acme-reader"

    def __init__(self, style):
        self.style = style

    async def complete(self, messages, params):
        seen = re.findall(r"capital of (\\w+) is (\\w+)", messages[-1].content)
        if seen:
            return Completion(text=f"<think>found it</think>\\n<answer>{seen[0][1]}</answer>")
        country = re.search(r"capital of (\\w+)\\?", messages[-1].content).group(1)
        return Completion(text=f"<think>look it up</think>\\n<search>{country}</search>")

    def count_tokens(self, messages):
        return sum(len(m.content) for m in messages) // 4

    def describe(self):
        return {"kind": "acme-reader", "style": self.style}

    async def aclose(self):
        pass


def make_search(cfg):
    return MemorySearch(cfg.options["docs"])


def make_llm(cfg):
    return ReaderLLM(cfg.options.get("style", "plain"))


def needs_docs(cfg):
    if "docs" not in cfg.options:
        raise ValueError("kind acme-memory needs options.docs")


def not_a_backend(cfg):
    return object()


register_search_backend("acme-memory", check=needs_docs)(make_search)
register_llm_backend("acme-reader")(make_llm)
'''

DOCS = {
    "veltria": "The capital of Veltria is Morvane.",
    "osk": "The capital of Osk is Dalbury.",
    "misc": "Glass markets are common in the north.",
}
TASKS = [
    Task(id="v", question="What is the capital of Veltria?", answers=["Morvane"]),
    Task(id="o", question="What is the capital of Osk?", answers=["Dalbury"]),
]


@pytest.fixture()
def acme(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh third-party module on sys.path (its name); registrations are undone after."""
    name = f"acme_backends_{uuid.uuid4().hex[:8]}"
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / f"{name}.py").write_text(THIRD_PARTY)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    for registry in (SEARCH_BACKENDS, LLM_BACKENDS):
        monkeypatch.setattr(registry, "_plugins", dict(registry._plugins))
    return name


def _tasks_file(tmp_path: Path) -> Path:
    path = tmp_path / "tasks.jsonl"
    path.write_text("".join(t.model_dump_json() + "\n" for t in TASKS))
    return path


def _config(tmp_path: Path, llm_kind: str, search_kind: str) -> Path:
    path = tmp_path / "rollout.yaml"
    docs = "".join(f"      {k}: {v!r}\n" for k, v in DOCS.items())
    path.write_text(
        f"policy:\n  kind: {llm_kind!r}\n  options:\n    style: terse\n"
        f"search:\n  kind: {search_kind!r}\n  topk: 2\n  options:\n    docs:\n{docs}"
        "concurrency: 2\n"
    )
    return path


def _check_run(out: Path) -> None:
    trajs = {t.task_id: t for t in read_jsonl(out, Trajectory)}
    assert set(trajs) == {"v", "o"}
    for tid, answer, doc in (("v", "Morvane", "veltria"), ("o", "Dalbury", "osk")):
        traj = trajs[tid]
        assert traj.termination == "answer" and traj.final_answer == answer
        search_turn = traj.turns[0]
        assert search_turn.action.kind == "search"
        assert [h.doc_id for h in search_turn.hits] == [doc]  # the plug-in really searched
        assert f"The capital of {'Veltria' if tid == 'v' else 'Osk'}" in search_turn.observation
        assert traj.policy == {"kind": "acme-reader", "style": "terse"}
        assert traj.search == {"kind": "acme-memory", "docs": 3}


def test_py_names_run_a_cli_rollout(acme: str, tmp_path: Path) -> None:
    cfg = _config(tmp_path, f"py:{acme}:make_llm", f"py:{acme}:make_search")
    out = tmp_path / "out.jsonl"
    args = ["rollout", "--tasks", str(_tasks_file(tmp_path)), "--out", str(out),
            "--config", str(cfg), "--max-turns", "3"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "2 trajectories written" in result.output
    _check_run(out)


def test_decorated_backends_run_a_rollout_by_name(acme: str, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="unknown search backend 'acme-memory'"):
        SearchConfig(kind="acme-memory", options={"docs": DOCS})
    __import__(acme)  # the decorators run: both names are now known
    assert "acme-memory" in SEARCH_BACKENDS.names() and "acme-reader" in LLM_BACKENDS.names()
    out = tmp_path / "out.jsonl"
    cfg = _config(tmp_path, "acme-reader", "acme-memory")
    summary = rollout_main(_tasks_file(tmp_path), out, cfg, progress=False)
    assert summary.written == 2
    _check_run(out)


def test_entry_points_are_found_without_importing_the_package(
    acme: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An installed distribution declares its backends; the CLI finds them by name alone."""
    dist = tmp_path / "site" / "acme_plugins-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-plugins\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        f"[searchprime.search_backends]\nacme-ep-search = {acme}:make_search\n\n"
        f"[searchprime.llm_backends]\nacme-ep-llm = {acme}:make_llm\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path / "site"))  # refreshes importlib's caches
    assert "acme-ep-search" in SEARCH_BACKENDS.names()
    out = tmp_path / "out.jsonl"
    args = ["rollout", "--tasks", str(_tasks_file(tmp_path)), "--out", str(out),
            "--config", str(_config(tmp_path, "acme-ep-llm", "acme-ep-search"))]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    _check_run(out)


def test_unknown_kind_names_the_field_and_lists_the_registered_kinds(tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as info:
        SearchConfig(kind="elastic")
    [problem] = info.value.errors()
    assert problem["loc"] == ("kind",)
    assert (
        "unknown search backend 'elastic'; registered: bm25, dense, http, serper"
        in (problem["msg"])
    )
    with pytest.raises(ConfigError) as err:
        rollout_main(_tasks_file(tmp_path), tmp_path / "o.jsonl",
                     _config(tmp_path, "vllm", "bm25"), progress=False)  # fmt: skip
    assert "policy.kind" in str(err.value)
    assert "unknown LLM backend 'vllm'; registered: local, openai" in str(err.value)


def test_plugin_errors_are_config_errors(acme: str) -> None:
    with pytest.raises(ValidationError, match="cannot import it"):
        SearchConfig(kind="py:no_such_module_xyz:make")
    with pytest.raises(ValidationError, match="expected py:<module>:<name>"):
        LLMConfig(kind=f"py:{acme}")
    __import__(acme)
    with pytest.raises(ValidationError, match="needs options.docs"):  # the plug-in's own check
        SearchConfig(kind="acme-memory")
    with pytest.raises(ValidationError, match="takes no `options`"):
        SearchConfig(kind="bm25", path="x", options={"docs": {}})
    cfg = SearchConfig(kind=f"py:{acme}:not_a_backend")
    with pytest.raises(ConfigError, match=r"implement SearchBackend \(it lacks name, search"):
        load_search(cfg)
    with pytest.raises(ConfigError, match=r"implement LLM \(it lacks name, complete, count_tokens"):
        load_llm({"kind": f"py:{acme}:not_a_backend"})
    with pytest.raises(ValueError, match="plain word"):
        SEARCH_BACKENDS.register("py:x")

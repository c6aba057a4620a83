"""LLM annotation logic with a deterministic scripted LLM (the real model: test_llm_e2e.py)."""

from __future__ import annotations

import json
import re

import pytest
from tests.scripted_llm import ScriptedLLM

from searchprime.behaviors.annotate import LLMAnnotator, annotate_file, parse_labels
from searchprime.behaviors.taxonomy import load_taxonomy
from searchprime.llm.base import Completion
from searchprime.records import BEHAVIORS, Trajectory, read_jsonl, write_jsonl

IV, AE, AS, ER = BEHAVIORS


class ScriptedJudge(ScriptedLLM):
    """Says IV is present when the excerpt contains 'VERIFY', AS when it contains 'ADAPT';
    replies garbage when the excerpt contains 'GARBLE' (every try)."""

    model = "scripted-judge"

    def __init__(self):
        super().__init__(self.reply)

    def reply(self, messages, _):
        prompt = messages[-1].content
        excerpt = prompt.split("Trajectory:", 1)[1].rsplit("Reply with only", 1)[0]
        if "GARBLE" in excerpt:
            return Completion(text="I think the agent did well overall.")
        turns = [int(t) for t in re.findall(r"\[Turn (\d+)\]", excerpt)]
        reply = {
            IV: {"present": "yes" if "VERIFY" in excerpt else "no", "turns": turns[:1]},
            AE: {"present": "no", "turns": [], "rationale": "no conflict"},
            AS: {"present": "ADAPT" in excerpt, "rationale": "changed query"},
            ER: "no",
        }
        return Completion(text="```json\n" + json.dumps(reply) + "\n```")


def test_parse_labels_tolerates_formats() -> None:
    text = 'Sure! {"a": {"present": "Yes", "turns": ["2", "x"]}, "b": false, "c": "maybe"}'
    found = parse_labels(text, ("a", "b", "c", "d"))
    assert found["a"].present is True and found["a"].turns == [2]
    assert found["b"].present is False
    assert "c" not in found and "d" not in found
    assert parse_labels("no json here", ("a",)) == {}


def test_annotate_resume_chunking_and_unknowns(tmp_path, traj_factory) -> None:
    long_obs = "VERIFY " + "filler text " * 400  # ~4.8k chars: forces chunks
    trajs = [
        traj_factory("short", observation="ADAPT results"),
        traj_factory("long", n_turns=4, observation=long_obs),
        traj_factory("bad", observation="GARBLE"),
    ]
    for t in trajs:
        t.labels = None
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_jsonl(src, trajs)
    llm = ScriptedJudge()
    ann = LLMAnnotator(llm, cache=tmp_path / "cache.sqlite", max_chars=3000, retries=1)
    res = annotate_file(src, out, ann, limit=2)  # first two only
    assert (res.total, res.skipped, res.written) == (2, 0, 2)
    res = annotate_file(src, out, ann)  # resume: only "bad" is new
    assert (res.total, res.skipped, res.written) == (3, 2, 1)
    got = {t.task_id: t.labels for t in read_jsonl(out, Trajectory)}
    assert set(got) == {"short", "long", "bad"}

    short = got["short"]
    assert short.annotator == "llm:scripted-judge" and short.notes == []
    assert short.has(AS) and not short.has(IV) and short.behaviors[AE].present is False

    long = got["long"]
    assert long.notes and "chunked into" in long.notes[0]
    n_chunks = int(re.search(r"chunked into (\d+)", long.notes[0]).group(1))
    assert n_chunks >= 3
    assert long.has(IV)  # present in some chunk -> present
    assert long.behaviors[ER].present is False  # absent in all chunks
    # nothing was cut: every character of every observation reached the judge
    long_prompts = [p for p in llm.prompts if "part " in p and "of a long trajectory" in p]
    assert sum(p.count("filler text") for p in long_prompts) >= 3 * 400 - 3 * n_chunks

    bad = got["bad"]  # unparseable after retries -> unknown, never "no"
    assert all(ev.present is None for ev in bad.behaviors.values())
    assert "unparseable" in bad.behaviors[IV].rationale

    # a rerun on a fresh output makes zero LLM calls: everything is cached
    calls = llm.calls
    again = LLMAnnotator(llm, cache=tmp_path / "cache.sqlite", max_chars=3000, retries=1)
    res = annotate_file(src, tmp_path / "out2.jsonl", again)
    assert llm.calls == calls and res.llm_calls == 0 and res.cache_hits > 0
    assert res.unknown == 4  # the four unknown judgements of "bad"

    # a retried attempt (a later record of the same key in the input) is labelled again
    retried = traj_factory("short", observation="VERIFY results")
    retried.labels = None
    with src.open("a") as fh:
        fh.write(retried.model_dump_json() + "\n")
    res = annotate_file(src, out, ann)
    assert (res.total, res.skipped, res.written) == (3, 2, 1)
    relabelled = {t.task_id: t.labels for t in read_jsonl(out, Trajectory)}["short"]
    assert relabelled.has(IV) and not short.has(IV)
    assert annotate_file(src, out, ann).written == 0


def test_custom_taxonomy_from_yaml(tmp_path, traj_factory) -> None:
    yml = tmp_path / "tax.yaml"
    yml.write_text(
        "behaviors:\n"
        "  - name: Information Verification\n    definition: checks facts twice\n"
        "    examples: one quote\n"
        "  - {name: adaptive_search, definition: rephrases}\n",
        encoding="utf-8",
    )
    tax = load_taxonomy(yml)
    assert tax.names == (IV, AS) and tax.behaviors[0].examples == ["one quote"]
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_jsonl(src, [traj_factory("t", observation="VERIFY", labelled=False)])
    annotate_file(src, out, LLMAnnotator(ScriptedJudge(), tax))
    (t,) = read_jsonl(out, Trajectory)
    assert set(t.labels.behaviors) == {IV, AS} and t.labels.has(IV)


def test_bad_taxonomy_files(tmp_path) -> None:
    from searchprime.errors import ConfigError

    bad = tmp_path / "bad.json"
    bad.write_text('[{"name": "x"}]', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad.json: behaviors.0.definition"):
        load_taxonomy(bad)
    dup = tmp_path / "dup.yaml"
    dup.write_text("- {name: A b, definition: x}\n- {name: a-b, definition: y}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="duplicate behavior names: a_b"):
        load_taxonomy(dup)
    with pytest.raises(ConfigError, match="not found"):
        load_taxonomy(tmp_path / "missing.yaml")
    assert load_taxonomy(None).names == BEHAVIORS


def test_rules_judge_dispatches_lazily(tmp_path, monkeypatch, traj_factory) -> None:
    """--judge rules calls behaviors.rules.annotate_rules(traj, world) with load_world(dir)."""
    import sys
    import types

    from searchprime.behaviors.annotate import RulesAnnotator
    from searchprime.records import BehaviorEvidence, BehaviorLabels

    seen = []
    rules = types.ModuleType("searchprime.behaviors.rules")

    def annotate_rules(traj, world):
        seen.append((traj.task_id, world))
        ev = BehaviorEvidence(present=True, turns=[0], rationale="rule")
        return BehaviorLabels(annotator="rules:v1", behaviors={IV: ev})

    rules.annotate_rules = annotate_rules
    world_mod = types.ModuleType("searchprime.world")
    world_mod.load_world = lambda d: f"world@{d}"
    if "searchprime.behaviors.rules" not in sys.modules:
        monkeypatch.setitem(sys.modules, "searchprime.behaviors.rules", rules)
        monkeypatch.setitem(sys.modules, "searchprime.world", world_mod)
    else:  # the world helper's real module is present: patch only what we observe
        real_rules, real_world = (
            sys.modules["searchprime.behaviors.rules"],
            sys.modules.get("searchprime.world"),
        )
        monkeypatch.setattr(real_rules, "annotate_rules", annotate_rules)
        monkeypatch.setattr(real_world, "load_world", world_mod.load_world, raising=False)
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_jsonl(src, [traj_factory("a", labelled=False), traj_factory("b", labelled=False)])
    res = annotate_file(src, out, RulesAnnotator(tmp_path / "world"))
    assert res.written == 2
    assert sorted(s[0] for s in seen) == ["a", "b"]
    assert seen[0][1] == f"world@{tmp_path / 'world'}"
    assert all(t.labels.annotator == "rules:v1" for t in read_jsonl(out, Trajectory))

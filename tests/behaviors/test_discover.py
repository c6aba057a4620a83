"""Discovery pipeline logic with a scripted LLM: pairing, extraction, merging to <= K, resume."""

from __future__ import annotations

import json

from tests.scripted_llm import ScriptedLLM

from searchprime.behaviors.discover import DiscoverConfig, discover_files, pair_trajectories
from searchprime.behaviors.taxonomy import load_taxonomy
from searchprime.llm.base import Completion
from searchprime.records import write_jsonl


class ScriptedDiscoverer(ScriptedLLM):
    """Reasoner: prose. Extractor: 3 behaviors per pair (names vary by pair). Merger: halves."""

    model = "scripted-discoverer"

    def __init__(self, garble_merges: bool = False):
        super().__init__(self.reply)
        self.kinds: list[str] = []
        self.garble_merges = garble_merges

    def reply(self, messages, _):
        prompt = messages[-1].content
        if prompt.startswith("Two search agents"):
            self.kinds.append("reason")
            qid = prompt.split("Question: ", 1)[1].split("\n", 1)[0]
            return Completion(text=f"A verified facts on {qid}; B trusted a forum.")
        if prompt.startswith("From the analysis"):
            self.kinds.append("extract")
            tag = prompt.split("facts on ", 1)[1].split(";", 1)[0].replace(" ", "_")
            items = [
                {"name": f"verify {tag}", "definition": "checks twice", "example": "two sources"},
                {"name": "weigh authority", "definition": "prefers encyclopedias"},
                {"name": f"rephrase {tag}", "definition": "changes query", "example": "alias"},
            ]
            return Completion(text="Here you go:\n" + json.dumps(items))
        self.kinds.append("merge")
        if self.garble_merges:
            return Completion(text="sorry, cannot")
        listing = json.loads(prompt.split("Behaviors:\n", 1)[1])
        target = int(prompt.split("return at most ", 1)[1].split(" ", 1)[0])
        merged = [
            {"name": b["name"], "definition": b["definition"], "examples": b.get("examples", [])}
            for b in listing[: max(1, min(target, len(listing) // 2))]
        ]
        return Completion(text=json.dumps(merged))


def _runs(traj_factory):
    a = [traj_factory(f"q{i}", correct=i % 2 == 0) for i in range(10)]
    b = [traj_factory(f"q{i}", correct=i % 2 == 1) for i in range(10)]
    b.append(traj_factory("only_in_b", correct=True))
    for t in a + b:
        t.question = f"question {t.task_id}"
    return a, b


def test_pairing(traj_factory) -> None:
    a, b = _runs(traj_factory)
    pairs = pair_trajectories(a, b)
    assert len(pairs) == 10
    for good, bad in pairs:
        assert good.task_id == bad.task_id and good.final_answer == "Paris"
        assert bad.final_answer == "Lyon"
    one = [traj_factory("x", correct=True, attempt=0), traj_factory("x", correct=False, attempt=1)]
    assert len(pair_trajectories(one)) == 1
    assert pair_trajectories(a, b, max_pairs=3)[2][0].task_id == "q2"


def test_discover_merges_to_k_and_resumes(tmp_path, traj_factory) -> None:
    a, b = _runs(traj_factory)
    fa, fb, out = tmp_path / "a.jsonl", tmp_path / "b.jsonl", tmp_path / "tax.json"
    write_jsonl(fa, a)
    write_jsonl(fb, b)
    llm = ScriptedDiscoverer()
    cfg = DiscoverConfig(max_behaviors=3, max_pairs=8, merge_chunk=6)
    res = discover_files(fa, fb, out, llm, cfg)
    assert res.pairs == 8 and res.extracted == 24
    assert llm.kinds.count("reason") == 8 and llm.kinds.count("extract") == 8
    assert llm.kinds.count("merge") >= 2 and res.rounds >= 1
    tax = load_taxonomy(out)  # the written file is a valid taxonomy
    assert 1 <= len(tax.behaviors) <= 3
    assert tax.names[0] == "weigh_authority"  # the most frequent name survives
    assert res.llm_calls == llm.calls

    calls = llm.calls  # rerun: replayed from the cache, zero calls, same taxonomy
    res2 = discover_files(fa, fb, out, llm, cfg)
    assert llm.calls == calls and res2.llm_calls == 0 and res2.cache_hits == calls
    assert load_taxonomy(out).names == tax.names


def test_non_reducing_merger_still_terminates(tmp_path, traj_factory) -> None:
    a, b = _runs(traj_factory)
    fa, fb, out = tmp_path / "a.jsonl", tmp_path / "b.jsonl", tmp_path / "tax.json"
    write_jsonl(fa, a)
    write_jsonl(fb, b)
    cfg = DiscoverConfig(max_behaviors=2, max_pairs=4, merge_chunk=4, retries=0)
    res = discover_files(fa, fb, out, ScriptedDiscoverer(garble_merges=True), cfg)
    assert len(load_taxonomy(out).behaviors) <= 2
    assert res.rounds >= 1


def test_template_echo_is_not_a_behavior() -> None:
    from searchprime.behaviors.discover import _parse_list

    echo = '[{"name": "short_behavior_name", "definition": "<one sentence>", "examples": []}]'
    assert _parse_list(echo) is None
    assert _parse_list('[{"name": "<short behavior name>", "definition": "checks"}]') is None
    ok = _parse_list('x [{"name": "Cross-check", "definition": "Verifies with a 2nd source."}]')
    assert ok == [{"name": "Cross-check", "definition": "Verifies with a 2nd source."}]

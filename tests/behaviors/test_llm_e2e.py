"""LLM annotation and discovery end to end against the real SmolLM2-135M on 127.0.0.1.

A 135M model labels poorly (see the agreement figure in the report); this checks the
plumbing over the OpenAI API, chunking, resume, caching (reruns make zero calls) and that
unparseable replies become unknown (present=None), never "no".
"""

from __future__ import annotations

import json
import re

import pytest
from tests.conftest import json_values

from searchprime.behaviors.annotate import LLMAnnotator, annotate_file
from searchprime.behaviors.discover import DiscoverConfig, discover_files
from searchprime.behaviors.taxonomy import load_taxonomy
from searchprime.records import BEHAVIORS, Trajectory, read_jsonl, write_jsonl

pytestmark = pytest.mark.slow


def _stated(reply: str, name: str) -> bool | None | str:
    """What one reply says of behavior ``name``, read here: True/False for a JSON
    ``{"present": "yes"|"no"}``; None when the reply never names it; "unclear" otherwise."""
    if name not in reply:
        return None
    for value in json_values(reply):
        item = value.get(name) if isinstance(value, dict) else None
        if isinstance(item, dict) and item.get("present") in ("yes", "no"):
            return item["present"] == "yes"
    return "unclear"


def _check_labels(labels, replies: list[str]) -> None:
    """A behavior is present if any part's reply says so, absent if every part says no, and
    unknown (never "no") if some part's reply did not say."""
    for name in BEHAVIORS:
        ev = labels.behaviors[name]
        said = [_stated(r, name) for r in replies]
        if "unclear" in said:  # the reader here is stricter than the annotator's
            assert ev.present is not None or "unknown" in ev.rationale
        elif True in said:
            assert ev.present is True, (name, said, ev)
        elif None in said:
            assert ev.present is None, (name, said, ev)
            missing = said.count(None)
            assert ev.rationale.endswith(
                f"unknown: judge reply unparseable for {missing} of {len(said)} part(s)"
            )
        else:
            assert ev.present is False, (name, said, ev)


def test_annotate_with_smollm2(tmp_path, smol_llm, counting, traj_factory) -> None:
    trajs = [
        traj_factory("short", labelled=False),
        traj_factory("long", labelled=False, n_turns=3, observation="Y is a city. " * 40),
    ]
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_jsonl(src, trajs)
    llm = counting(smol_llm)
    cache = tmp_path / "c.sqlite"
    ann = LLMAnnotator(llm, cache=cache, max_chars=700, max_tokens=32, retries=0)
    res = annotate_file(src, out, ann, limit=1)
    assert res.written == 1 and llm.calls == 1
    res = annotate_file(src, out, ann)  # resume: only "long" remains, judged in chunks
    assert (res.skipped, res.written) == (1, 1)
    calls = llm.calls
    assert calls >= 3  # 1 + at least two chunks
    labelled = {t.task_id: t.labels for t in read_jsonl(out, Trajectory)}
    assert "chunked into" in labelled["long"].notes[0]
    # "short" was asked once; "long" once per part (concurrently), each prompt naming its part
    prompts = [p for p, _ in llm.exchanges]
    parts = len(prompts) - 1
    assert "of a long trajectory" not in prompts[0]
    named_parts = sorted(re.findall(r"\(This is part (\d+) of (\d+) of a long", "".join(prompts)))
    assert named_parts == [(str(k), str(parts)) for k in range(1, parts + 1)]
    replies = {"short": [llm.exchanges[0][1]], "long": [r for _, r in llm.exchanges[1:]]}
    for tid, labels in labelled.items():
        assert labels.annotator == "llm:smollm2-135m"
        assert set(labels.behaviors) == set(BEHAVIORS)
        _check_labels(labels, replies[tid])

    fresh = LLMAnnotator(llm, cache=cache, max_chars=700, max_tokens=32, retries=0)
    res = annotate_file(src, tmp_path / "out2.jsonl", fresh)
    assert llm.calls == calls and res.llm_calls == 0 and res.written == 2
    again = {t.task_id: t.labels for t in read_jsonl(tmp_path / "out2.jsonl", Trajectory)}
    assert again == labelled


def test_discover_with_smollm2(tmp_path, smol_llm, counting, traj_factory) -> None:
    fa, fb, out = tmp_path / "a.jsonl", tmp_path / "b.jsonl", tmp_path / "tax.json"
    write_jsonl(fa, [traj_factory("q", correct=True)])
    write_jsonl(fb, [traj_factory("q", correct=False)])
    llm = counting(smol_llm)
    cfg = DiscoverConfig(max_behaviors=8, max_tokens=32, retries=0, max_chars=600)
    res = discover_files(fa, fb, out, llm, cfg)
    assert res.pairs == 1 and llm.calls >= 2  # reasoner + extractor (+ merges)
    assert out.exists()
    # the reasoner saw both trajectories; the extractor read the reasoner's own analysis
    (reasoned, analysis), (extract, listing) = llm.exchanges[:2]
    assert "Agent A answered correctly" in reasoned and "<answer>Lyon</answer>" in reasoned
    assert f"Analysis:\n{analysis.strip()}" in extract
    named = [
        i["name"]
        for v in json_values(listing)
        if isinstance(v, list)
        for i in v
        if isinstance(i, dict) and isinstance(i.get("name"), str)
    ]
    if not named:  # a 135M model may list nothing: an empty taxonomy, and notes that say why
        assert res.taxonomy.behaviors == [] and res.extracted == 0
        assert json.loads(out.read_text()) == []  # the file says so too
        assert res.notes == [
            "1 of 1 pairs gave no parseable behavior list",
            "no behavior was extracted",
        ]
    else:  # every behavior kept is one the model named (or merged), at most K of them
        kept = load_taxonomy(out).behaviors
        assert [b.name for b in kept] == [b.name for b in res.taxonomy.behaviors]
        replies = " ".join(r for _, r in llm.exchanges)
        assert 0 < len(kept) <= 8 and all(b.name in replies for b in kept)
    calls = llm.calls
    res2 = discover_files(fa, fb, out, llm, cfg)
    assert llm.calls == calls and res2.llm_calls == 0

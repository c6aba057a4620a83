"""LLM annotation and discovery end to end against the real SmolLM2-135M on 127.0.0.1.

A 135M model labels poorly (see the agreement figure in the report); this checks the
plumbing over the OpenAI API, chunking, resume, caching (reruns make zero calls) and that
unparseable replies become unknown (present=None), never "no".
"""

from __future__ import annotations

import pytest

from searchprime.behaviors.annotate import LLMAnnotator, annotate_file
from searchprime.behaviors.discover import DiscoverConfig, discover_files
from searchprime.behaviors.taxonomy import load_taxonomy
from searchprime.records import BEHAVIORS, Trajectory, read_jsonl, write_jsonl

pytestmark = pytest.mark.slow


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
    for labels in labelled.values():
        assert labels.annotator == "llm:smollm2-135m"
        assert set(labels.behaviors) == set(BEHAVIORS)
        for ev in labels.behaviors.values():
            assert ev.present in (True, False, None)
            if ev.present is None:
                assert "unknown" in ev.rationale

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
    if res.taxonomy.behaviors:  # a 135M model may give nothing usable: then a note says so
        assert len(load_taxonomy(out).behaviors) <= 8
    else:
        assert res.notes
    calls = llm.calls
    res2 = discover_files(fa, fb, out, llm, cfg)
    assert llm.calls == calls and res2.llm_calls == 0

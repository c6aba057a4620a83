"""World generation: determinism, layout, trap rates, page shape, config errors."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from searchprime.config import load_config
from searchprime.errors import ConfigError, RecordError
from searchprime.records import Task, read_jsonl
from searchprime.search.corpus import read_corpus
from searchprime.world import TRAPS, WorldConfig, behaviors_offered, build_world, load_world


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.json*"))}


def test_same_seed_gives_byte_identical_files(tmp_path: Path) -> None:
    cfg = WorldConfig(seed=11, entities=400, tasks=300)
    build_world(cfg, tmp_path / "a")
    build_world(cfg, tmp_path / "b")
    a, b = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert set(a) >= {"corpus.jsonl", "facts.jsonl", "world.json", "tasks/train.jsonl"}
    assert a == b
    build_world(WorldConfig(seed=12, entities=400, tasks=300), tmp_path / "c")
    assert _files(tmp_path / "c")["corpus.jsonl"] != a["corpus.jsonl"]


def test_layout_tasks_and_corpus(world_dir: Path, world) -> None:
    card = json.loads((world_dir / "world.json").read_text())
    assert card["counts"]["entities"] == 1500
    assert sum(card["counts"]["tasks"].values()) == 1200
    docs = list(read_corpus(world_dir / "corpus.jsonl"))
    assert len(docs) == card["counts"]["documents"]
    assert all(d.source and d.url and d.meta["authority"] in (1, 2, 3) for d in docs)
    words = sorted(len(d.text.split()) for d in docs)
    assert words[len(words) // 2] <= 40 and words[-1] <= 60  # short pages for a 135M policy
    tasks = list(read_jsonl(world_dir / "tasks" / "dev.jsonl", Task))
    for task in tasks:
        meta = task.meta
        assert 1 <= meta["hops"] <= 3 and len(meta["chain"]) == meta["hops"]
        assert set(meta["traps"]) <= set(TRAPS)
        assert len(meta["gold_entities"]) == meta["hops"] + 1
        assert task.answers == [world.name(meta["gold_entities"][-1])]
        # the chain really leads to the answer
        assert world.chain(task)[-1].object == meta["gold_entities"][-1]
    assert len({t.question for rows in world.tasks.values() for t in rows}) == 1200


def test_traps_present_at_configured_rates(world) -> None:
    rows = [t for rows in world.tasks.values() for t in rows]
    rates = Counter(trap for t in rows for trap in t.meta["traps"])
    n = len(rows)
    cfg = WorldConfig()
    # each trap is at least as frequent as configured (combos and chains add more)
    for trap in TRAPS:
        assert rates[trap] / n >= cfg.trap_rates[trap] * 0.8, (trap, rates[trap] / n)
    assert sum(not t.meta["traps"] for t in rows) / n >= 0.05  # some clean tasks remain
    combos = sum(len(t.meta["traps"]) >= 3 for t in rows) / n
    assert combos >= 0.15  # capped by distinct chains; world.json reports the achieved share
    # alias questions name the alias, over-specific ones carry the descriptor
    for t in rows:
        start = world.entities[t.meta["gold_entities"][0]]
        if "alias" in t.meta["traps"]:
            assert start.alias in t.question and start.name not in t.question
        if "overspecific" in t.meta["traps"]:
            assert start.descriptor in t.question


def test_traps_shape_the_corpus(world) -> None:
    """Conflicting pages are low authority and wrong; twins hold every token of the original."""
    conflicts = [p for p in world.pages.values() if p.role == "conflict"]
    assert conflicts
    for page in conflicts:
        assert page.authority == 1
        rel, subj, value = page.claims[0]
        assert world.fact(subj, rel).object != value
    for ent in world.entities.values():
        if ent.twin_of:
            base = world.entities[ent.twin_of]
            assert set(re.findall(r"\w+", base.name.lower())) <= set(
                re.findall(r"\w+", ent.name.lower())
            )


def test_behaviors_offered(world) -> None:
    rows = world.split("dev")
    for task in rows:
        offered = behaviors_offered(task)
        assert "information_verification" in offered
        traps = set(task.meta["traps"])
        assert ("authority_evaluation" in offered) == ("conflict" in traps)
        assert ("error_recovery" in offered) == ("distractor" in traps)
        assert ("adaptive_search" in offered) == bool(traps & {"alias", "overspecific"})


def test_config_errors_name_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "w.yaml"
    bad.write_text("entities: 500\ntrap_rates: {nonsense: 0.3}\n")
    with pytest.raises(ConfigError, match="trap_rates"):
        load_config(WorldConfig, bad)
    with pytest.raises(ConfigError, match="colour"):
        load_config(WorldConfig, None, {"colour": "red"})
    with pytest.raises(RecordError, match="world.json"):
        load_world(tmp_path)

"""``WorldConfig`` and ``build_world``: write a sandbox world to a folder.

Layout::

    corpus.jsonl          {id, title, text, url, source, authority}   (what BM25 indexes)
    pages.jsonl           {id, about, role, claims, alias_of}          (ground truth per page)
    entities.jsonl        {id, kind, name, alias, twin_of, twin, descriptor}
    facts.jsonl           {id, subject, relation, object, wrong}
    tasks/{train,dev,test}.jsonl   Task records; meta: hops, relations, traps, chain, ...
    world.json            the card: config, counts, trap rates per split

The same config (seed included) writes byte-identical files.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from searchprime.errors import ConfigError
from searchprime.records import atomic_write_text
from searchprime.world.generate import generate
from searchprime.world.schema import TRAPS

__all__ = ["WORLD_VERSION", "WorldConfig", "build_world"]

WORLD_VERSION = 1


class WorldConfig(BaseModel):
    """How big the world is and how often each trap fires.

    The default trap mix (conflict 0.45, distractor 0.35, alias 0.2, overspecific 0.2, plus
    ``combo_rate`` 0.4 of tasks forced to carry conflict + distractor + alias|overspecific)
    is what makes all four behaviors co-occur often enough for priming data; see
    ``bench/world.py`` for the resulting calibration table.
    """

    model_config = ConfigDict(extra="forbid")

    seed: int = Field(default=0, description="Seed of every random choice.")
    entities: int = Field(default=2000, ge=60, description="Number of entities (twins included).")
    tasks: int = Field(default=4000, ge=1, description="Number of tasks over all splits.")
    splits: dict[str, float] = Field(
        default_factory=lambda: {"train": 0.8, "dev": 0.1, "test": 0.1},
        description="Split name -> fraction of tasks (normalised).",
    )
    hop_weights: list[float] = Field(
        default_factory=lambda: [0.3, 0.5, 0.2], description="Weights of 1, 2 and 3 hops."
    )
    trap_rates: dict[str, float] = Field(
        default_factory=lambda: {
            "conflict": 0.45,
            "distractor": 0.35,
            "alias": 0.2,
            "overspecific": 0.2,
        },
        description="Per-task chance of each trap (alias and overspecific exclude each other).",
    )
    combo_rate: float = Field(
        default=0.4,
        ge=0,
        le=1,
        description="Share of tasks asked to carry three traps (achieved share is in world.json; "
        "it is capped by how many distinct chains carry them).",
    )
    conflict_rate: float = Field(
        default=0.35, ge=0, le=1, description="Share of facts with a wrong low-authority page."
    )
    twin_rate: float = Field(
        default=0.3, ge=0, le=1, description="Share of persons/orgs/works with a near-duplicate."
    )
    alias_rate: float = Field(
        default=0.3, ge=0, le=1, description="Share of entities with an alias."
    )
    theme_pages: int = Field(default=3, ge=0, description="Pages per descriptor (over-specific).")
    descriptor_share: int = Field(
        default=6, ge=1, description="About how many entities share one descriptor."
    )

    @field_validator("trap_rates")
    @classmethod
    def _known_traps(cls, v: dict[str, float]) -> dict[str, float]:
        unknown = set(v) - set(TRAPS)
        if unknown:
            raise ValueError(f"unknown traps {sorted(unknown)}; known: {list(TRAPS)}")
        full = {t: 0.0 for t in TRAPS} | v
        if full["alias"] + full["overspecific"] > 1:
            raise ValueError("alias + overspecific rates must not exceed 1")
        return full

    @model_validator(mode="after")
    def _check(self) -> WorldConfig:
        if len(self.hop_weights) != 3 or sum(self.hop_weights) <= 0:
            raise ValueError("hop_weights needs three non-negative weights (1, 2, 3 hops)")
        if not self.splits or sum(self.splits.values()) <= 0:
            raise ValueError("splits needs at least one positive fraction")
        return self


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def _write_lines(path: Path, rows) -> None:
    atomic_write_text(path, "".join(_dumps(r) + "\n" for r in rows))


def _split(tasks: list[dict[str, Any]], splits: dict[str, float]) -> dict[str, list]:
    total = sum(splits.values())
    out: dict[str, list] = {}
    start = 0
    names = list(splits)
    for i, name in enumerate(names):
        end = (
            len(tasks) if i == len(names) - 1 else start + round(len(tasks) * splits[name] / total)
        )
        out[name] = tasks[start:end]
        start = end
    return out


def build_world(cfg: WorldConfig, out_dir: str | Path) -> dict[str, Any]:
    """Generate the world of ``cfg`` and write it under ``out_dir``; return the card."""
    if not isinstance(cfg, WorldConfig):
        raise ConfigError("build_world needs a WorldConfig")
    t0 = time.perf_counter()
    out = Path(out_dir)
    (out / "tasks").mkdir(parents=True, exist_ok=True)
    gw = generate(cfg)
    _write_lines(out / "corpus.jsonl", (d.record() for d in gw.docs))
    _write_lines(out / "pages.jsonl", (d.page() for d in gw.docs))
    _write_lines(out / "entities.jsonl", (e.card() for e in gw.entities.values()))
    _write_lines(out / "facts.jsonl", (f.card() for f in gw.facts.values()))
    splits = _split(gw.tasks, cfg.splits)
    trap_rates: dict[str, dict[str, float]] = {}
    for name, rows in splits.items():
        _write_lines(out / "tasks" / f"{name}.jsonl", rows)
        counts = Counter(t for row in rows for t in row["meta"]["traps"])
        n = max(len(rows), 1)
        trap_rates[name] = {t: round(counts[t] / n, 4) for t in TRAPS}
        trap_rates[name]["none"] = round(sum(not row["meta"]["traps"] for row in rows) / n, 4)
        trap_rates[name]["three_or_more"] = round(
            sum(len(row["meta"]["traps"]) >= 3 for row in rows) / n, 4
        )
    kinds = Counter(e.kind for e in gw.entities.values())
    card = {
        "world_version": WORLD_VERSION,
        "config": cfg.model_dump(),
        "counts": {
            "entities": len(gw.entities),
            "entities_by_kind": dict(sorted(kinds.items())),
            "facts": len(gw.facts),
            "documents": len(gw.docs),
            "documents_by_role": dict(sorted(Counter(d.role for d in gw.docs).items())),
            "tasks": {name: len(rows) for name, rows in splits.items()},
            "hops": dict(sorted(Counter(str(t["meta"]["hops"]) for t in gw.tasks).items())),
        },
        "trap_rates": trap_rates,
    }
    atomic_write_text(out / "world.json", json.dumps(card, indent=2, sort_keys=True) + "\n")
    card["build_seconds"] = round(time.perf_counter() - t0, 2)
    return card

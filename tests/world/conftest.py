"""Fixtures: one small sandbox world, its real BM25 index, and teacher trajectories."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from searchprime.world import WorldConfig, build_world, load_world
from searchprime.world.calibrate import ensure_index

PRESETS = ("plain", "all", "verify", "authority", "adaptive", "recovery")


@pytest.fixture(scope="session")
def world_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("world")
    build_world(WorldConfig(seed=7, entities=1500, tasks=1200), out)
    ensure_index(out)
    return out


@pytest.fixture(scope="session")
def world(world_dir: Path):
    return load_world(world_dir)


@pytest.fixture(scope="session")
def search(world_dir: Path):
    from searchprime.search.bm25 import BM25Search

    return BM25Search.load(world_dir / "index")


@pytest.fixture(scope="session")
def mixed_trajectories(world, search):
    """Teacher trajectories through the real agent loop: 60 dev tasks x 6 presets."""
    from searchprime.agent.loop import AgentConfig, run_agent
    from searchprime.agent.rollout import attempt_seed
    from searchprime.world import Teacher

    cfg = AgentConfig(max_turns=10, topk=3)
    tasks = world.split("dev")[:60]

    async def main():
        out = []
        for preset in PRESETS:
            teacher = Teacher(world, preset)
            out += await asyncio.gather(
                *(run_agent(t, teacher, search, cfg, seed=attempt_seed(t.id, 0)) for t in tasks)
            )
        return out

    return asyncio.run(main())

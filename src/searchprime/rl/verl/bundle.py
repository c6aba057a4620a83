"""Write the verl bundle: data, reward, agent-loop registration, search server, launch script.

``export_bundle(cfg, out)`` writes into ``out``:

``train.parquet`` / ``val.parquet``
    verl ``RLHFDataset`` rows (:mod:`.rows`), in our layout or the paper's (``verl.layout``).
``reward.py``
    ``compute_score`` for ``reward.custom_reward_function`` (:mod:`.reward`), ``METRIC`` set.
``agent_loop.yaml``
    registers :class:`~searchprime.rl.verl.agent_loop.SearchPrimeAgentLoop` as
    ``searchprime_agent`` with the episode settings and the search URL.
``search_server.yaml``
    the ``searchprime index serve`` the agent loop queries (index, host, port, workers, url).
``run_grpo.sh``
    starts the search server if needed and launches ``verl.trainer.main_ppo`` with the paper's
    GRPO settings (G = 8, 32 prompts per step, lr 1e-6, KL 0.001 low_var_kl, clip 0.2, entropy
    0.001, token-mean, T 1.0 / validation 0.4, ≤ 8 turns of ≤ 1,024 tokens).
``bundle.json``
    what was written: layout, metric, rows per split and per data source, settings.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import yaml

from searchprime.errors import ConfigError
from searchprime.records import Task, atomic_write_text
from searchprime.rl.verl._script import REWARD_PY, RUN_GRPO_SH
from searchprime.rl.verl.config import VerlExportConfig
from searchprime.rl.verl.rows import AGENT_NAME, holdout, task_rows

__all__ = ["BUNDLE_FILES", "export_bundle", "write_parquet"]

BUNDLE_FILES = (
    "train.parquet",
    "val.parquet",
    "reward.py",
    "agent_loop.yaml",
    "search_server.yaml",
    "run_grpo.sh",
    "bundle.json",
)


def write_parquet(rows: list[dict[str, Any]], path: Path) -> None:
    """Write ``rows`` as one parquet file, atomically."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not rows:
        raise ConfigError(f"{path.name}: no tasks to write")
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    pq.write_table(pa.Table.from_pylist(rows), tmp)
    os.replace(tmp, path)


def _load(path: str, limit: int | None = None) -> list[Task]:
    from searchprime.tasks import load_tasks

    return load_tasks(path, limit=limit)


def _agent_loop_yaml(cfg: VerlExportConfig) -> str:
    e = cfg.episode
    entry = {
        "name": AGENT_NAME,
        "_target_": "searchprime.rl.verl.agent_loop.SearchPrimeAgentLoop",
        "search_url": cfg.search_url,
        "search_timeout_s": 30.0,
        "episode": {
            "max_turns": e.max_turns,
            "max_tokens": e.max_tokens,
            "topk": e.topk,
            "prompt": e.prompt,
            "thinking": e.thinking,
            "search_reminder_after": e.search_reminder_after,
            "turns_left_reminder": e.turns_left_reminder,
        },
    }
    head = (
        "# verl agent loop of this bundle: actor_rollout_ref.rollout.agent.agent_loop_config_path\n"
        "# (vLLM keeps the action stop strings with include_stop_str_in_output; for SGLang add\n"
        "# `stop_params: {}`).\n"
    )
    return head + yaml.safe_dump([entry], sort_keys=False)


def _search_server_yaml(cfg: VerlExportConfig) -> str:
    url = urlparse(cfg.search_url)
    index = cfg.index_path
    entry = {
        "index": str(Path(index).resolve()) if index else None,
        "host": url.hostname or "127.0.0.1",
        "port": url.port or 8000,
        "workers": cfg.verl.server_workers,
        "topk": cfg.episode.topk,
        "url": cfg.search_url,
    }
    head = "# `searchprime index serve INDEX --host --port --workers`: run_grpo.sh starts it.\n"
    return head + yaml.safe_dump(entry, sort_keys=False)


def _run_script(cfg: VerlExportConfig) -> str:
    v = cfg.verl
    return RUN_GRPO_SH.format(
        model=cfg.model or "",
        n_gpus=v.n_gpus_per_node,
        batch_size=v.batch_size,
        group_size=v.group_size,
        max_prompt_length=v.max_prompt_length,
        max_response_length=v.max_response_length,
        max_tokens_per_gpu=2 * (v.max_prompt_length + v.max_response_length),
        agent_name=AGENT_NAME,
    )


def export_bundle(cfg: VerlExportConfig, out_dir: str | Path) -> dict[str, Any]:
    """Write the bundle for ``cfg`` into ``out_dir``; return what ``bundle.json`` records."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tasks = _load(cfg.tasks, cfg.limit)
    if cfg.verl.val_tasks:
        train, val = tasks, _load(cfg.verl.val_tasks)
    else:
        train, val = holdout(tasks, cfg.verl.val_size, cfg.verl.seed)
    if not val:
        val = train  # verl needs a val file; one task set serves both
    e = cfg.episode
    style = {"layout": cfg.verl.layout, "thinking": e.thinking, "prompt": e.prompt}
    rows = {
        split: task_rows(ts, split=split, **style) for split, ts in (("train", train), ("val", val))
    }
    for split, split_rows in rows.items():
        write_parquet(split_rows, out / f"{split}.parquet")
    atomic_write_text(out / "reward.py", REWARD_PY.format(metric=cfg.metric))
    atomic_write_text(out / "agent_loop.yaml", _agent_loop_yaml(cfg))
    atomic_write_text(out / "search_server.yaml", _search_server_yaml(cfg))
    script = out / "run_grpo.sh"
    atomic_write_text(script, _run_script(cfg))
    script.chmod(0o755)
    card = {
        "layout": cfg.verl.layout,
        "metric": cfg.metric,
        "files": list(BUNDLE_FILES),
        "rows": {split: len(r) for split, r in rows.items()},
        "val_is_train": val is train,
        "data_sources": dict(Counter(t.data_source or "searchprime" for t in train + val)),
        "tasks": cfg.tasks,
        "model": cfg.model,
        "search_url": cfg.search_url,
        "episode": cfg.episode.model_dump(mode="json"),
        "verl": cfg.verl.model_dump(mode="json"),
    }
    atomic_write_text(out / "bundle.json", json.dumps(card, indent=2) + "\n")
    return card

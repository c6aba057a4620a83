"""``searchprime rollout``: run the search agent over tasks, appending trajectories to JSONL.

Exit codes: 0 every attempt of this run was recorded without a backend error; 1 some attempts
ended in backend errors (their error records are written; a rerun retries them); 2 a one-line
``error:`` (bad input, the output locked by another run, the policy endpoint unreachable, or the
run stopped after ``stop_after_errors`` backend errors in a row); 130 interrupted.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import typer
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from searchprime import secrets
from searchprime.agent.loop import AgentConfig
from searchprime.cli._common import console, progress_bar, summary
from searchprime.config import load_config
from searchprime.errors import ConfigError

__all__ = ["RolloutRunConfig", "register", "rollout_main"]


class RolloutRunConfig(BaseModel):
    """The YAML file of ``searchprime rollout --config`` (flags override its fields)."""

    model_config = ConfigDict(extra="forbid")

    agent: AgentConfig = Field(default_factory=AgentConfig, description="Agent loop settings.")
    policy: dict[str, Any] | None = Field(
        default=None, description="An LLMConfig (searchprime.llm.registry), e.g. {kind: openai}."
    )
    search: dict[str, Any] | None = Field(
        default=None, description="A SearchConfig (searchprime.search.registry), e.g. {kind: bm25}."
    )
    attempts: int = Field(default=1, ge=1, description="Trajectories per task (pass@k).")
    concurrency: int = Field(default=8, ge=1, description="Agents in flight at once.")
    seed: int = Field(default=0, description="Base seed; each (task, attempt) derives its own.")
    task_format: str = Field(default="auto", description="Task file layout (see load_tasks).")
    data_source: str | None = Field(
        default=None, description="Source name for tasks that name none (GAIA, HLE files)."
    )
    limit: int | None = Field(default=None, ge=0, description="Use only the first N tasks.")
    retry_errors: bool = Field(
        default=True,
        description="Rerun (task, attempt) pairs whose last record is a backend error; "
        "False keeps those records as they are.",
    )
    stop_after_errors: int = Field(
        default=8,
        ge=0,
        description="Stop the run after this many attempts in a row end in backend errors "
        "(0: never).",
    )


def _index_kind(index_dir: str) -> str:
    """The kind an index folder declares in its manifest (bm25 when it says nothing)."""
    manifest = Path(index_dir) / "searchprime_index.json"
    if not Path(index_dir).is_dir():
        raise ConfigError(f"--search-index {index_dir}: not a folder")
    try:
        return str(json.loads(manifest.read_text(encoding="utf-8")).get("kind", "bm25"))
    except (OSError, ValueError):
        return "bm25"


def _validated(model: type[BaseModel], data: dict[str, Any], where: str) -> BaseModel:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{where}.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(problems) from None


def _build_policy(cfg: RolloutRunConfig, teacher: str | None, world: str | None) -> Any:
    if teacher is not None:
        if world is None:
            raise ConfigError("--teacher needs --world DIR (the sandbox world it knows)")
        from searchprime.world import Teacher, load_world

        return Teacher(load_world(world), teacher)
    if cfg.policy is None:
        raise ConfigError(
            "no policy: pass --policy-url URL, --policy-model PATH, --teacher PRESET --world DIR, "
            "or a `policy:` section in --config"
        )
    from searchprime.llm.registry import LLMConfig, load_llm

    policy = dict(cfg.policy)
    if policy.get("kind", "openai") == "openai" and "concurrency" not in policy:
        policy["concurrency"] = max(32, cfg.concurrency)  # never the bottleneck by default
    return load_llm(_validated(LLMConfig, policy, "policy"))


def _build_search(cfg: RolloutRunConfig) -> Any:
    if cfg.search is None:
        raise ConfigError("no search backend: pass --search-index DIR or --search-url URL")
    from searchprime.search.registry import SearchConfig, load_search

    search_cfg = _validated(SearchConfig, cfg.search, "search")
    secrets.register_env(search_cfg.token_env)  # masked in everything written or printed
    return load_search(search_cfg)


def _section(name: str, fields: dict[str, Any]) -> dict[str, Any]:
    """Dotted overrides of the named fields only: the rest of a YAML section stays."""
    return {f"{name}.{key}": value for key, value in fields.items()}


def _say(line: str) -> None:
    console.print(secrets.mask(line), highlight=False, markup=False, soft_wrap=True)


def rollout_main(
    tasks: Path,
    out: Path,
    config: Path | None = None,
    policy_url: str | list[str] | None = None,
    policy_model: str | None = None,
    api_key_env: str | None = None,
    teacher: str | None = None,
    world: str | None = None,
    search_index: str | None = None,
    search_url: str | None = None,
    attempts: int | None = None,
    concurrency: int | None = None,
    max_turns: int | None = None,
    thinking: str | None = None,
    limit: int | None = None,
    seed: int | None = None,
    task_format: str | None = None,
    data_source: str | None = None,
    progress: bool = True,
    retry_errors: bool | None = None,
) -> Any:
    """Run a rollout as the CLI does; returns the :class:`RolloutSummary`.

    Holds the lock on ``out`` for the whole run (a second writer gets ``LockHeldError``).
    Several ``policy_url`` values make one pool of servers (see :mod:`searchprime.llm.pool`).
    """
    from searchprime.records.lock import OutputLock
    from searchprime.tasks import load_tasks

    if isinstance(policy_url, list):  # the repeatable flag: one URL is a plain server
        policy_url = (policy_url[0] if len(policy_url) == 1 else policy_url) or None
    chosen = [n for n, v in (("--policy-url", policy_url), ("--policy-model", policy_model),
                             ("--teacher", teacher)) if v is not None]  # fmt: skip
    if len(chosen) > 1:
        raise ConfigError(f"choose one policy, got {' and '.join(chosen)}")
    if search_index is not None and search_url is not None:
        raise ConfigError("choose one of --search-index and --search-url")
    overrides: dict[str, Any] = {
        "attempts": attempts,
        "concurrency": concurrency,
        "agent.max_turns": max_turns,
        "agent.thinking": thinking,
        "limit": limit,
        "seed": seed,
        "task_format": task_format,
        "data_source": data_source,
        "retry_errors": retry_errors,
        # a flag overrides only the fields it names; the rest of the YAML section stays
        "policy.api_key_env": api_key_env,
    }
    if policy_url is not None:
        overrides.update(_section("policy", {"kind": "openai", "base_url": policy_url}))
    if policy_model is not None:
        overrides.update(_section("policy", {"kind": "local", "path": policy_model}))
    if search_index is not None:
        kind = _index_kind(search_index)
        overrides.update(_section("search", {"kind": kind, "path": search_index}))
    if search_url is not None:
        overrides.update(_section("search", {"kind": "http", "url": search_url}))
    cfg = load_config(RolloutRunConfig, config, overrides)

    task_list = load_tasks(tasks, cfg.task_format, cfg.limit, data_source=cfg.data_source)
    if not task_list:
        raise ConfigError(f"{tasks}: no tasks to run")
    with OutputLock(out, purpose="searchprime rollout"):
        return _run_locked(cfg, task_list, out, teacher, world, progress)


def _run_locked(
    cfg: RolloutRunConfig,
    task_list: list[Any],
    out: Path,
    teacher: str | None,
    world: str | None,
    progress: bool,
) -> Any:
    from searchprime.agent.rollout import close_backends, finished_keys, prepare_policy, rollout

    agent = cfg.agent.model_dump(mode="json")
    done = finished_keys(out, agent, retry_errors=cfg.retry_errors)  # refuse a mismatch up front
    llm = _build_policy(cfg, teacher, world)
    search = _build_search(cfg)
    total = len(task_list) * cfg.attempts
    already = sum((t.id, a) in done for t in task_list for a in range(cfg.attempts))

    async def main() -> Any:
        try:
            if already < total:
                await prepare_policy(llm)  # a dead endpoint stops here, before the header
            servers = len(getattr(llm, "base_urls", ())) or 1
            _say(
                f"rollout: {len(task_list)} tasks x {cfg.attempts} attempt(s), policy "
                f"{getattr(llm, 'name', type(llm).__name__)}"
                + (f" on {servers} servers" if servers > 1 else "")
                + ", search "
                f"{getattr(search, 'name', '?')}, concurrency {cfg.concurrency} -> {out}"
            )
            kwargs = {
                "attempts": cfg.attempts,
                "concurrency": cfg.concurrency,
                "seed": cfg.seed,
                "retry_errors": cfg.retry_errors,
                "stop_after_errors": cfg.stop_after_errors,
                "lock": False,  # held by rollout_main
            }
            if not progress:
                return await rollout(task_list, llm, search, cfg.agent, out, **kwargs)
            with progress_bar("rollout", total) as advance:
                if already:
                    advance(already)
                return await rollout(
                    task_list, llm, search, cfg.agent, out, on_done=lambda _t: advance(1), **kwargs
                )
        finally:
            await close_backends(llm, search)

    return asyncio.run(main())


def register(app: typer.Typer) -> None:
    """Add ``rollout`` to ``app``."""

    @app.command("rollout")
    def rollout_cmd(
        tasks: Path = typer.Option(..., "--tasks", help="Task file (.json, .jsonl, .csv, hf:...)."),
        out: Path = typer.Option(..., "--out", help="Trajectories JSONL (appended; resumable)."),
        config: Path | None = typer.Option(None, "--config", help="YAML RolloutRunConfig."),
        policy_url: list[str] | None = typer.Option(
            None,
            "--policy-url",
            help="OpenAI-compatible endpoint, e.g. http://host:8000/v1; repeat it for several "
            "servers of one model (least-loaded, a failed one rests and is retried later).",
        ),
        policy_model: str | None = typer.Option(
            None, "--policy-model", help="Local Hugging Face model folder or .gguf file."
        ),
        api_key_env: str | None = typer.Option(
            None, "--api-key-env", help="Name of the env var holding the endpoint's API key."
        ),
        teacher: str | None = typer.Option(
            None, "--teacher", help="Scripted sandbox teacher preset (needs --world)."
        ),
        world: str | None = typer.Option(None, "--world", help="Sandbox world folder."),
        search_index: str | None = typer.Option(
            None, "--search-index", help="Index folder built by `searchprime index build`."
        ),
        search_url: str | None = typer.Option(
            None, "--search-url", help="Retrieval server URL (Search-R1 POST /retrieve)."
        ),
        attempts: int | None = typer.Option(None, "--attempts", help="Trajectories per task."),
        concurrency: int | None = typer.Option(None, "--concurrency", help="Agents in flight."),
        max_turns: int | None = typer.Option(None, "--max-turns", help="Turn limit per task."),
        thinking: str | None = typer.Option(
            None, "--thinking", help="explicit | internal | none (see AgentConfig)."
        ),
        limit: int | None = typer.Option(None, "--limit", help="Use only the first N tasks."),
        seed: int | None = typer.Option(None, "--seed", help="Base sampling seed."),
        task_format: str | None = typer.Option(
            None, "--task-format", help="auto | bp | flashrag | jsonl | csv | parquet | hf | hfdisk"
        ),
        data_source: str | None = typer.Option(
            None, "--data-source", help="Source name for tasks that name none (GAIA, HLE)."
        ),
        retry_errors: bool | None = typer.Option(
            None,
            "--retry-errors/--no-retry-errors",
            help="Rerun pairs whose last record is a backend error (default) or keep them.",
        ),
    ) -> None:
        """Run the search agent on every task; append one trajectory per (task, attempt).

        Exit 0: all recorded; 1: some attempts ended in backend errors (rerun to retry them);
        2: an error line (bad input, output in use by another run, endpoint unreachable).
        """
        result = rollout_main(
            tasks,
            out,
            config,
            policy_url=policy_url,
            policy_model=policy_model,
            api_key_env=api_key_env,
            teacher=teacher,
            world=world,
            search_index=search_index,
            search_url=search_url,
            attempts=attempts,
            concurrency=concurrency,
            max_turns=max_turns,
            thinking=thinking,
            limit=limit,
            seed=seed,
            task_format=task_format,
            data_source=data_source,
            retry_errors=retry_errors,
        )
        if result.failed:
            _say(f"✗ {result.line()}")
            raise typer.Exit(1)
        summary(secrets.mask(result.line()))

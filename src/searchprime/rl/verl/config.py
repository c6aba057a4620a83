"""What ``train rl --export-verl`` reads: the RL run's config, plus a ``verl:`` block.

:class:`VerlExportConfig` accepts every key of :class:`~searchprime.rl.config.RLRunConfig` (an
RL YAML exports unchanged), with ``model``, ``output_dir`` and ``search`` optional, and the
episode defaulting to the paper's recipe (≤ 8 turns, ≤ 1,024 new tokens per turn, the full
scaffold prompt) for each key the config leaves unset. The ``verl`` block holds what only
the bundle needs.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from searchprime.rl.config import RLRunConfig
from searchprime.search.registry import SearchConfig

__all__ = ["LAYOUTS", "METRICS", "PAPER_EPISODE", "VerlExportConfig", "VerlSettings"]

#: Row layouts: ours (the loop's own chat, Search-R1's ground truth) and the paper's RL repo's.
LAYOUTS = ("searchprime", "bp")
#: Answer metrics the bundle's reward can use (``searchprime.eval.metrics``).
METRICS = ("em", "f1", "cover_em")
#: The paper's episode (RL.md): used for each ``episode`` key the config does not set.
PAPER_EPISODE: dict[str, Any] = {"max_turns": 8, "max_tokens": 1024, "prompt": "full"}


class VerlSettings(BaseModel):
    """Settings of the verl bundle (the ``verl:`` block)."""

    model_config = ConfigDict(extra="forbid")

    layout: Literal["searchprime", "bp"] = Field(
        default="searchprime",
        description="'searchprime': the loop's system + question chat, Search-R1's ground truth; "
        "'bp': the paper's RL repository (one user message, data_source webwalker, ability "
        "agent, the answer in extra_info.answer).",
    )
    metric: Literal["em", "f1", "cover_em"] | None = Field(
        default=None,
        description="Reward metric; None: f1 when the RL rewards weigh f1 above em, else em.",
    )
    val_tasks: str | None = Field(
        default=None, description="Validation tasks; None: hold out val_size training tasks."
    )
    val_size: int | None = Field(
        default=None,
        ge=0,
        description="Tasks held out for val.parquet without val_tasks; None: 10% (1 to 256).",
    )
    seed: int = Field(default=0, description="Seed of the held-out draw.")
    search_url: str = Field(
        default="http://127.0.0.1:8000/retrieve",
        description="The retrieval server the agent loop queries (`searchprime index serve`).",
    )
    server_workers: int = Field(default=1, ge=1, description="`index serve --workers`.")
    max_prompt_length: int = Field(
        default=1024, ge=64, description="verl data.max_prompt_length (system + question)."
    )
    max_response_length: int = Field(
        default=12288,
        ge=64,
        description="verl data.max_response_length: every turn and observation of an episode.",
    )
    group_size: int = Field(default=8, ge=1, description="GRPO group (rollout.n).")
    batch_size: int = Field(default=32, ge=1, description="Prompts per step (train_batch_size).")
    n_gpus_per_node: int = Field(default=8, ge=1, description="trainer.n_gpus_per_node.")


class VerlExportConfig(RLRunConfig):
    """An RL run's config read for the verl bundle (see the module docstring)."""

    model: str | None = Field(default=None, description="Policy (actor_rollout_ref.model.path).")
    output_dir: str | None = Field(default=None, description="Unused by the bundle.")
    search: SearchConfig | None = Field(
        default=None, description="Search backend; its index is what run_grpo.sh serves."
    )
    verl: VerlSettings = Field(default_factory=VerlSettings)

    @model_validator(mode="before")
    @classmethod
    def _paper_episode(cls, data: Any) -> Any:
        if isinstance(data, dict):
            episode = data.get("episode")
            if episode is None or isinstance(episode, dict):
                data = {**data, "episode": {**PAPER_EPISODE, **(episode or {})}}
        return data

    @property
    def metric(self) -> str:
        """The reward metric: ``verl.metric``, else the larger of the f1 / em reward weights."""
        if self.verl.metric is not None:
            return self.verl.metric
        return "f1" if self.rewards.get("f1", 0.0) > self.rewards.get("em", 0.0) else "em"

    @property
    def index_path(self) -> str | None:
        """The index folder run_grpo.sh serves (bm25 / dense configs), if any."""
        if self.search is not None and self.search.kind in ("bm25", "dense"):
            return self.search.path
        return None

    @property
    def search_url(self) -> str:
        """Where the agent loop searches: an ``http`` search config's URL, else ``verl``'s."""
        if self.search is not None and self.search.kind == "http" and self.search.url:
            return self.search.url
        return self.verl.search_url

"""verl's RL rows (``RLHFDataset`` layout) for tasks, in our layout or the paper's.

``searchprime`` layout (one row per task)::

    data_source   the task's own source ("2wiki", "tq", "sandbox", ...; "searchprime" if none)
    prompt        the chat the agent loop starts from: system rules + "Question: ..."
    ability       "fact-reasoning"
    reward_model  {"style": "rule", "ground_truth": {"target": [answers]}}  (Search-R1's shape)
    extra_info    {"index", "split", "task_id", "question", "answers"}
    agent_name    "searchprime_agent" (verl picks the agent loop per row by this column)

``bp`` layout: the paper's RL repository (``deep_research_data_prepare.py``): ``data_source``
"webwalker", ``prompt`` one user message holding the question, ``ability`` "agent",
``extra_info`` ``{"split", "id", "answer"}`` (golds joined by ``<|answer_split|>``), plus
``reward_model`` (verl's reward managers read it) and ``agent_name``.
"""

from __future__ import annotations

import random
from typing import Any

from searchprime.agent import prompts
from searchprime.data.export import VERL_AGENT_NAME
from searchprime.eval.metrics import ANSWER_SPLIT
from searchprime.records import Task

__all__ = ["AGENT_NAME", "holdout", "task_rows"]

#: The name the bundle's agent_loop.yaml registers our agent loop under (one name for the
#: bundle's rows and ``prime --format verl``'s).
AGENT_NAME = VERL_AGENT_NAME


def _row_ours(task: Task, index: int, split: str, system: str) -> dict[str, Any]:
    return {
        "data_source": task.data_source or "searchprime",
        "prompt": [
            {"role": "system", "content": system},
            {"role": "user", "content": prompts.first_user_message(task.question)},
        ],
        "ability": "fact-reasoning",
        "reward_model": {"style": "rule", "ground_truth": {"target": list(task.answers)}},
        "extra_info": {
            "index": index,
            "split": split,
            "task_id": task.id,
            "question": task.question,
            "answers": list(task.answers),
        },
        "agent_name": AGENT_NAME,
    }


def _row_bp(task: Task, index: int, split: str) -> dict[str, Any]:
    answer = ANSWER_SPLIT.join(task.answers)
    return {
        "data_source": "webwalker",
        "prompt": [{"role": "user", "content": task.question}],
        "ability": "agent",
        "reward_model": {"style": "rule", "ground_truth": answer},
        "extra_info": {"split": split, "id": task.id, "answer": answer, "index": index},
        "agent_name": AGENT_NAME,
    }


def task_rows(
    tasks: list[Task],
    *,
    split: str,
    layout: str = "searchprime",
    thinking: prompts.Thinking = "explicit",
    prompt: prompts.PromptStyle = "full",
) -> list[dict[str, Any]]:
    """One row per task; ``thinking`` / ``prompt`` pick the system message (ours only)."""
    if layout == "bp":
        return [_row_bp(t, i, split) for i, t in enumerate(tasks)]
    if layout != "searchprime":
        raise ValueError(f"layout must be 'searchprime' or 'bp', got {layout!r}")
    system = prompts.system_prompt(thinking, prompt)
    return [_row_ours(t, i, split, system) for i, t in enumerate(tasks)]


def holdout(tasks: list[Task], size: int | None, seed: int = 0) -> tuple[list[Task], list[Task]]:
    """(train, val): ``size`` tasks drawn with ``seed`` (None: 10%, 1 to 256), order kept."""
    n = len(tasks)
    if size is None:
        size = min(256, max(1, n // 10)) if n >= 2 else 0
    size = min(size, max(0, n - 1))
    picked = set(random.Random(seed).sample(range(n), size))
    train = [t for i, t in enumerate(tasks) if i not in picked]
    val = [t for i, t in enumerate(tasks) if i in picked]
    return train, val

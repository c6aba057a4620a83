"""Load question/answer tasks from the layouts the field uses (Behavior Priming, FlashRAG, HF)."""

from searchprime.tasks._loaders import (
    ANSWER_SPLIT,
    TASK_FORMATS,
    detect_format,
    load_tasks,
    record_to_task,
)

__all__ = ["ANSWER_SPLIT", "TASK_FORMATS", "detect_format", "load_tasks", "record_to_task"]

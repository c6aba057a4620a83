"""Typed, versioned records exchanged between pipeline stages (see README 'File formats')."""

from searchprime.records.behavior import BEHAVIORS, BehaviorEvidence, BehaviorLabels
from searchprime.records.jsonl import (
    JsonlWriter,
    atomic_write_bytes,
    atomic_write_text,
    iter_json_lines,
    read_jsonl,
    read_latest,
    repair_tail,
    validation_to_record_error,
    write_jsonl,
)
from searchprime.records.latest import ReadReport, latest_per_key
from searchprime.records.search import SearchHit
from searchprime.records.task import Task
from searchprime.records.trajectory import (
    SCHEMA_VERSION,
    Action,
    ActionKind,
    Message,
    Scores,
    Termination,
    Trajectory,
    Turn,
)

__all__ = [
    "BEHAVIORS",
    "SCHEMA_VERSION",
    "Action",
    "ActionKind",
    "BehaviorEvidence",
    "BehaviorLabels",
    "JsonlWriter",
    "Message",
    "ReadReport",
    "Scores",
    "SearchHit",
    "Task",
    "Termination",
    "Trajectory",
    "Turn",
    "atomic_write_bytes",
    "atomic_write_text",
    "iter_json_lines",
    "latest_per_key",
    "read_jsonl",
    "read_latest",
    "repair_tail",
    "validation_to_record_error",
    "write_jsonl",
]

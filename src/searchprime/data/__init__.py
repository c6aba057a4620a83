"""Priming data: select trajectories (strategies), shape them into samples, export them."""

from searchprime.data.export import FORMATS, export_samples
from searchprime.data.export_check import ExportCheck, check_export
from searchprime.data.prime import CARD_FILE, prime, read_trajectories
from searchprime.data.samples import SHAPES, Sample, build_samples
from searchprime.data.select import (
    STRATEGIES,
    Selection,
    SelectionCard,
    SelectionConfig,
    SelectionError,
    register_strategy,
    select_trajectories,
)

__all__ = [
    "ExportCheck",
    "check_export",
    "CARD_FILE",
    "FORMATS",
    "SHAPES",
    "STRATEGIES",
    "Sample",
    "Selection",
    "SelectionCard",
    "SelectionConfig",
    "SelectionError",
    "build_samples",
    "export_samples",
    "prime",
    "read_trajectories",
    "register_strategy",
    "select_trajectories",
]

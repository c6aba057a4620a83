"""Every error searchprime raises on purpose.

SearchPrimeError                 base; the CLI prints it as one line, without a traceback
├── ConfigError                  a config file or flag is invalid (names the field)
├── RecordError                  a malformed input record (names file:line: field: problem)
├── SelectionError               the trajectories cannot satisfy a selection (too few, no labels)
├── MissingExtraError            an optional dependency is not installed (names the extra)
├── BackendError                 a backend (LLM, search, judge) failed after its retries
│   ├── LLMError
│   │   └── EndpointUnreachable  (llm.openai_http) no connection to the policy endpoint at all
│   └── SearchError
└── ResumeError                  an output file cannot be resumed (e.g. another run's config)
    └── LockHeldError            (records.lock) another process writes the same output
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "BackendError",
    "ConfigError",
    "LLMError",
    "MissingExtraError",
    "RecordError",
    "ResumeError",
    "SearchError",
    "SearchPrimeError",
    "SelectionError",
]


class SearchPrimeError(Exception):
    """Base class: a problem the user can fix, printed without a traceback."""


class ConfigError(SearchPrimeError):
    """A configuration value is invalid."""


class RecordError(SearchPrimeError):
    """A malformed record in an input file, located as ``file:line: field: problem``."""

    def __init__(self, path: str | Path | None, line: int | None, field: str, problem: str):
        self.path = str(path) if path is not None else "<input>"
        self.line = line
        self.field = field
        self.problem = problem
        where = self.path if line is None else f"{self.path}:{line}"
        super().__init__(f"{where}: {field}: {problem}")

    def __reduce__(self) -> tuple:
        # rebuilt from its fields when it crosses a process boundary (worker pools)
        return (type(self), (self.path, self.line, self.field, self.problem))


class SelectionError(SearchPrimeError):
    """The input cannot satisfy the requested selection (too few matches, missing labels...)."""


class MissingExtraError(SearchPrimeError):
    """An optional dependency is missing; the message says which extra installs it."""

    def __init__(self, package: str, extra: str):
        self.package = package
        self.extra = extra
        super().__init__(
            f"{package} is not installed: install the `{extra}` extra: "
            f"pip install 'searchprime[{extra}]'"
        )

    def __reduce__(self) -> tuple:
        return (type(self), (self.package, self.extra))


class BackendError(SearchPrimeError):
    """A backend failed after retries."""


class LLMError(BackendError):
    """An LLM backend failed after retries.

    ``final`` is True when the reply said the *request* was at fault (a 4xx not worth
    retrying, e.g. a context too long): another server of the same model would refuse it too.
    """

    final: bool = False


class SearchError(BackendError):
    """A search backend failed after retries."""


class ResumeError(SearchPrimeError):
    """An existing output cannot be resumed safely."""

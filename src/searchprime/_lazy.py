"""Import optional heavy dependencies with a hint naming the extra that installs them."""

from __future__ import annotations

import importlib
from types import ModuleType

from searchprime.errors import MissingExtraError


def require(module: str, extra: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingExtraError` naming ``extra``."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(module.split(".")[0], extra) from exc

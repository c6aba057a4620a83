"""Configs: pydantic models loaded from YAML, overridden by flags; unknown keys are errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from searchprime.errors import ConfigError

C = TypeVar("C", bound=BaseModel)

__all__ = ["load_config", "set_dotted"]


def set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``data['a']['b'] = value`` for ``dotted='a.b'``, creating levels as needed."""
    keys = dotted.split(".")
    node = data
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{dotted}: cannot set a field inside a non-mapping value")
    node[keys[-1]] = value


def load_config(
    model: type[C],
    path: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
) -> C:
    """Load ``model`` from a YAML file (optional) and apply ``overrides``.

    Overrides use dotted keys (``agent.max_turns``); ``None`` values are ignored so CLI flags
    left unset do not clobber the file. Errors name the file and the bad field.
    """
    data: dict[str, Any] = {}
    where = "<flags>"
    if path is not None:
        where = str(path)
        try:
            loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{path}: config file not found") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a mapping at the top level")
        data = loaded
    for key, value in (overrides or {}).items():
        if value is not None:
            set_dotted(data, key, value)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(f"{where}: {problems}") from None

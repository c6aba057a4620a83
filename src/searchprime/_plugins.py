"""Registries of pluggable parts (search and LLM backends) that other packages extend.

A config's ``kind`` names a part in one of three ways:

- a name registered with the registry's decorator (the built-in parts register themselves;
  a module of yours registers when it is imported);
- ``py:<module>:<factory>``: any importable callable, imported when the config is read;
- a name an installed distribution declares in the registry's entry-point group, so the CLI
  finds it with no import of yours at all (``pyproject.toml``)::

      [project.entry-points."searchprime.search_backends"]
      elastic = "my_pkg.search:make_elastic"

Lookups raise :class:`ValueError` (a pydantic validator turns it into an error on the field)
whose message lists the registered names.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Generic, TypeVar

from searchprime.errors import ConfigError

__all__ = ["Plugin", "Registry", "builtin_check", "import_callable"]

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Plugin(Generic[F]):
    """One registered part: its name, its factory and the config check it asked for."""

    name: str
    factory: F
    check: Callable[[Any], None] | None = None
    """Called with the validated config; raises :class:`ValueError` for what it lacks."""


class Registry(Generic[F]):
    """Name -> :class:`Plugin`, also resolving ``py:`` names and entry points.

    >>> shapes: Registry = Registry("shape", "example.shapes")
    >>> @shapes.register("square")
    ... def square(side): return side * side
    >>> shapes.get("square").factory(3), shapes.get("py:math:hypot").factory(3, 4)
    (9, 5.0)
    """

    def __init__(self, what: str, group: str):
        self.what = what
        self.group = group
        self._plugins: dict[str, Plugin[F]] = {}
        self._lock = threading.Lock()

    def register(
        self, name: str, *, check: Callable[[Any], None] | None = None
    ) -> Callable[[F], F]:
        """A decorator registering a factory as ``name`` (a later registration replaces it)."""
        if not name or ":" in name or name != name.strip():
            raise ValueError(f"{self.what} name {name!r}: a plain word, without ':'")

        def deco(factory: F) -> F:
            with self._lock:
                self._plugins[name] = Plugin(name, factory, check)
            return factory

        return deco

    def names(self) -> list[str]:
        """Registered names and the entry points installed for this registry, sorted."""
        installed = {ep.name for ep in metadata.entry_points(group=self.group)}
        return sorted(set(self._plugins) | installed)

    def get(self, kind: str) -> Plugin[F]:
        """The plugin ``kind`` names; :class:`ValueError` naming the known ones if none."""
        if kind.startswith("py:"):
            return Plugin(kind, import_callable(kind, self.what))
        plugin = self._plugins.get(kind) or self._entry_point(kind)
        if plugin is None:
            known = ", ".join(self.names())
            raise ValueError(
                f"unknown {self.what} {kind!r}; registered: {known} (or py:<module>:<factory>)"
            )
        return plugin

    def known(self, kind: str) -> str:
        """``kind`` if it names a plugin (a field validator: ``AfterValidator(reg.known)``)."""
        self.get(kind)
        return kind

    def checked(self, cfg: Any) -> Any:
        """``cfg`` after its plugin's check (a model validator, run after the fields)."""
        check = self.get(cfg.kind).check
        if check is not None:
            check(cfg)
        return cfg

    def build(self, cfg: Any, protocol: type, where: str) -> Any:
        """``factory(cfg)`` of the plugin ``cfg.kind`` names, checked against ``protocol``;
        :class:`ConfigError` naming ``<where>.kind`` when that fails."""
        try:
            plugin = self.get(cfg.kind)
        except ValueError as exc:  # unregistered since the config was validated
            raise ConfigError(f"{where}.kind: {exc}") from None
        made = plugin.factory(cfg)
        missing = [m for m in _members(protocol) if not hasattr(made, m)]
        if missing:
            raise ConfigError(
                f"{where}.kind: {cfg.kind!r} made a {type(made).__name__}, which does not "
                f"implement {protocol.__name__} (it lacks {', '.join(missing)})"
            )
        return made

    def _entry_point(self, kind: str) -> Plugin[F] | None:
        for ep in metadata.entry_points(group=self.group, name=kind):
            try:
                loaded = ep.load()
            except (ImportError, AttributeError) as exc:
                raise ValueError(
                    f"{self.what} {kind!r} (entry point {ep.value}): cannot import it ({exc})"
                ) from None
            with self._lock:
                plugin = self._plugins.get(kind)  # importing it may have registered it
                if plugin is None:
                    if not callable(loaded):
                        raise ValueError(
                            f"{self.what} {kind!r}: entry point {ep.value} is not callable"
                        )
                    plugin = self._plugins[kind] = Plugin(kind, loaded)
            return plugin
        return None


def import_callable(spec: str, what: str = "plug-in") -> Any:
    """The callable ``py:<module>:<name>`` names; :class:`ValueError` saying what is wrong.

    >>> import_callable("py:math:hypot")(3, 4)
    5.0
    """
    module, _, attr = spec.removeprefix("py:").partition(":")
    if not module or not attr:
        raise ValueError(f"{spec!r}: expected py:<module>:<name>")
    try:
        found = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"{what} {spec!r}: cannot import it ({exc})") from None
    if not callable(found):
        raise ValueError(f"{what} {spec!r}: {attr} is not callable")
    return found


def builtin_check(needs: str | None = None, hint: str = "") -> Callable[[Any], None]:
    """The check of a built-in kind: the config field it needs, and no ``options``."""

    def check(cfg: Any) -> None:
        if needs is not None and not getattr(cfg, needs):
            raise ValueError(f"kind {cfg.kind!r} needs `{needs}`" + (f" ({hint})" if hint else ""))
        if cfg.options:
            raise ValueError(f"kind {cfg.kind!r} takes no `options` (they are for plug-ins)")

    return check


def _members(protocol: type) -> list[str]:
    """The attributes and methods a Protocol class declares."""
    declared = [n for n in vars(protocol) if not n.startswith("_")]
    return [*getattr(protocol, "__annotations__", {}), *declared]

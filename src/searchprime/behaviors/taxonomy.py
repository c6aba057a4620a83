"""Behavior taxonomies: the study's four behaviors, or a custom list from YAML / discover JSON.

A taxonomy file is a list of ``{name, definition, examples}`` (``examples`` optional), either
at the top level or under a ``behaviors:`` key; ``behaviors discover`` writes exactly this.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from searchprime.errors import ConfigError
from searchprime.records import BEHAVIORS

__all__ = ["DEFAULT_TAXONOMY", "BehaviorDef", "Taxonomy", "load_taxonomy", "slugify"]


def slugify(name: str) -> str:
    """``"Information Verification"`` -> ``"information_verification"``."""
    return re.sub(r"[^a-z0-9]+", "_", name.strip().lower()).strip("_")


class BehaviorDef(BaseModel):
    """One behavior an annotator looks for."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, description="snake_case identifier used in labels.")
    definition: str = Field(min_length=1, description="What the behavior looks like.")
    examples: list[str] = Field(default_factory=list, description="Short illustrative snippets.")

    @field_validator("name")
    @classmethod
    def _slug(cls, value: str) -> str:
        slug = slugify(value)
        if not slug:
            raise ValueError(f"behavior name {value!r} has no letters or digits")
        return slug

    @field_validator("examples", mode="before")
    @classmethod
    def _one_example(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value


class Taxonomy(BaseModel):
    """An ordered list of behaviors with unique names."""

    model_config = ConfigDict(extra="forbid")

    behaviors: list[BehaviorDef] = Field(min_length=1)

    @field_validator("behaviors")
    @classmethod
    def _unique(cls, value: list[BehaviorDef]) -> list[BehaviorDef]:
        names = [b.name for b in value]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate behavior names: {', '.join(dupes)}")
        return value

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(b.name for b in self.behaviors)

    def to_json(self) -> str:
        """The taxonomy file layout: a JSON list of ``{name, definition, examples}``."""
        return json.dumps([b.model_dump() for b in self.behaviors], indent=2, ensure_ascii=False)


DEFAULT_TAXONOMY = Taxonomy(
    behaviors=[
        BehaviorDef(
            name=BEHAVIORS[0],
            definition=(
                "Information Verification: the agent confirms a critical fact with a second "
                "source or an extra search before relying on it, or explicitly grounds its "
                "answer in the retrieved evidence."
            ),
            examples=["Two sources agree that X was born in Y; I will rely on it."],
        ),
        BehaviorDef(
            name=BEHAVIORS[1],
            definition=(
                "Authority Evaluation: the agent notices that sources disagree and resolves the "
                "conflict by weighing their credibility (an encyclopedia or official page over a "
                "forum or a blog)."
            ),
            examples=[
                "The forum says 1990 but the encyclopedia says 1992; I trust the encyclopedia."
            ],
        ),
        BehaviorDef(
            name=BEHAVIORS[2],
            definition=(
                "Adaptive Search: the agent changes its query after a poor result: it narrows "
                "with terms learned from broad results, or broadens or rephrases (an alias, other "
                "keywords) when results are empty or off-target."
            ),
            examples=["No results for the full name; searching the alias instead."],
        ),
        BehaviorDef(
            name=BEHAVIORS[3],
            definition=(
                "Error Recovery: the agent recognises that an earlier step was wrong (wrong "
                "entity, dead end, bad assumption), says so, and pivots."
            ),
            examples=["That page was about a different person with a similar name; going back."],
        ),
    ]
)


def load_taxonomy(path: str | Path | None) -> Taxonomy:
    """Load a taxonomy from YAML or JSON; ``None`` gives :data:`DEFAULT_TAXONOMY`."""
    if path is None:
        return DEFAULT_TAXONOMY
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: taxonomy file not found") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: not valid {path.suffix.lstrip('.') or 'YAML'}: {exc}") from None
    if isinstance(data, dict):
        data = {"behaviors": data.get("behaviors")} if "behaviors" in data else data
    elif isinstance(data, list):
        data = {"behaviors": data}
    else:
        raise ConfigError(f"{path}: expected a list of {{name, definition, examples}}")
    try:
        return Taxonomy.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise ConfigError(f"{path}: {where}: {err['msg']}") from None

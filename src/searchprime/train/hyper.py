"""Training knobs declared once, shared by a run config and the experiment section that builds it.

A knob is a pydantic field that names the TRL config field it sets (``knob(trl=...)``); an unset
(None) knob leaves that field to ``trl`` or to our defaults. ``trl`` passes further fields of the
TRL config through and is checked when the config loads: an unknown field (with a close match),
a field searchprime sets itself, or a field a set knob owns is refused there, not in the run.
"""

from __future__ import annotations

import dataclasses
import difflib
from functools import cache
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic.fields import FieldInfo

from searchprime._lazy import require

__all__ = ["Hyper", "ReportTo", "knob", "trl_config_fields", "trl_name"]

#: Where a run logs its metrics (``report_to``): nowhere, TensorBoard, offline wandb, or both.
ReportTo = Literal["none", "tensorboard", "wandb"] | list[Literal["tensorboard", "wandb"]]


def knob(default: Any = None, *, trl: str, **kwargs: Any) -> Any:
    """A field whose value sets the TRL config field ``trl`` (None: not set)."""
    return Field(default, json_schema_extra={"trl": trl}, **kwargs)


def trl_name(field: FieldInfo) -> str | None:
    """The TRL config field a knob sets; None for other fields."""
    extra = field.json_schema_extra
    return extra.get("trl") if isinstance(extra, dict) else None  # type: ignore[return-value]


@cache
def trl_config_fields(config: str) -> frozenset[str]:
    """Field names of ``trl.<config>`` (imports trl once: ~9 s on a 2-core CPU)."""
    trl = require("trl", "train")
    return frozenset(f.name for f in dataclasses.fields(getattr(trl, config)))


class Hyper(BaseModel):
    """Base of the shared training knobs (:class:`~searchprime.train.sft_config.SFTHyper`,
    :class:`~searchprime.rl.config.RLHyper`); subclasses declare ``trl`` after their knobs."""

    model_config = ConfigDict(extra="forbid")

    #: The TRL config class that the knobs and ``trl`` feed.
    trl_config: ClassVar[str] = ""
    #: TRL fields searchprime sets itself -> why (refused in ``trl``).
    forced_trl: ClassVar[dict[str, str]] = {}
    #: Defaults of a subclass's knobs where they differ from the declared ones (a study's own
    #: defaults), so that a knob is still declared once.
    knob_defaults: ClassVar[dict[str, Any]] = {}
    #: How messages name a knob (the experiment's ``sft.`` / ``rl.``).
    knob_prefix: ClassVar[str] = ""

    learning_rate: float | None = knob(trl="learning_rate", gt=0, description="Peak LR.")
    report_to: ReportTo = knob(
        "none",
        trl="report_to",
        exclude_if=lambda v: v == "none",  # the default leaves a saved config as it was
        description="Where to log training metrics: 'none', 'tensorboard' (event files in "
        "<output_dir>/runs), 'wandb' (an offline run in <output_dir>/wandb unless WANDB_MODE / "
        "WANDB_DIR are set; nothing is sent), or a list of both.",
    )

    @model_validator(mode="before")
    @classmethod
    def _fill_knob_defaults(cls, data: Any) -> Any:
        if isinstance(data, dict) and cls.knob_defaults:
            return {**cls.knob_defaults, **data}
        return data

    @classmethod
    def owned_trl(cls, values: dict[str, Any]) -> dict[str, str]:
        """TRL fields that the knobs set in ``values`` own -> the knob(s) to set instead."""
        return {
            trl: name
            for name, f in cls.model_fields.items()
            if (trl := trl_name(f)) is not None and values.get(name) is not None
        }

    @field_validator("trl", check_fields=False)
    @classmethod
    def _check_trl(cls, v: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        owned = cls.owned_trl(info.data)
        for key in v:
            if key in cls.forced_trl:
                raise ValueError(f"{key}: set by searchprime ({cls.forced_trl[key]})")
            if key in owned:
                raise ValueError(f"{key}: set it as {cls.knob_prefix}{owned[key]}, not in trl")
        known = trl_config_fields(cls.trl_config) if v else frozenset()
        for key in v:
            if key not in known:
                close = difflib.get_close_matches(key, known, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ValueError(f"{key}: not a trl.{cls.trl_config} field{hint}")
        return v

    def knob_trl(self) -> dict[str, Any]:
        """The TRL fields the set knobs give."""
        return {
            trl: getattr(self, name)
            for name, f in type(self).model_fields.items()
            if (trl := trl_name(f)) is not None and getattr(self, name) is not None
        }

    def shared(self, base: type[Hyper]) -> dict[str, Any]:
        """This config's values of ``base``'s fields: what a section hands its run config."""
        return {name: getattr(self, name) for name in base.model_fields}

"""The base of every configuration section: unknown keys refused, empty strings judged."""

from __future__ import annotations

from typing import Any, ClassVar, get_args

from pydantic import BaseModel, ConfigDict, model_validator


class _Section(BaseModel):
    # Typos in a key must fail loudly: a silently ignored key is a device that misbehaves later.
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, validate_default=True)

    #: String keys whose empty value means something (every other one must name a thing).
    _may_be_empty: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="before")
    @classmethod
    def _empty_values(cls, data: Any) -> Any:
        # The example config writes an optional key as `key = ""  # unset`, so an empty value of a
        # key that may be unset means unset; an empty device name, path or choice is a mistake
        # that would otherwise surface much later as a device that "does not exist".
        if not isinstance(data, dict):
            return data
        out = dict(data)
        for name, value in data.items():
            field = cls.model_fields.get(name)
            if field is None or not isinstance(value, str) or value.strip():
                continue
            if name in cls._may_be_empty:
                continue
            if type(None) in get_args(field.annotation):
                out[name] = None
            else:
                raise ValueError(f"{name}: must not be empty")
        return out

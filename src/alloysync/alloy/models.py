"""Alloy items as pydantic models, and Alloy's date-time text format.

This module owns the shape of what Alloy sends back: an `Item` with its `Attribute` list, and the
`AlloyDateTime` field type of its date-time fields (parsed and written by `alloysync.model.times`).

Field names mirror the wire format (`itemId`, `designCode`, ...) so a model dumps back to exactly
what Alloy sent. Models are deliberately lenient: real responses carry fields we do not use
(`icon`, `colour`, `context`, `start`, `end`, `geometry`, `locked`, `createdDate`, and whatever
Alloy adds next); they are accepted, kept, and dumped again, never rejected.

Attribute values stay as Alloy sent them (strings for DateTime values, lists of item ids for
links, dicts for Json attributes); interpreting them belongs to whoever knows the attribute.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer

from alloysync.model.times import format_alloy_datetime, parse_alloy_datetime

__all__ = ["AlloyDateTime", "Attribute", "Item", "format_alloy_datetime", "parse_alloy_datetime"]


def _to_datetime(value: Any) -> Any:
    if isinstance(value, str):
        return parse_alloy_datetime(value)
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


AlloyDateTime = Annotated[
    datetime,
    BeforeValidator(_to_datetime),
    PlainSerializer(format_alloy_datetime, return_type=str, when_used="json"),
]
"""A date-time field: parsed leniently into aware UTC, dumped to JSON in Alloy's format."""


class Attribute(BaseModel):
    """One `{"attributeCode", "value"}` pair of an item. `value` is any JSON value, or null."""

    model_config = ConfigDict(extra="allow")

    attributeCode: str
    value: Any = None


class Item(BaseModel):
    """An Alloy item. Unknown fields are accepted and kept (see `model_extra`)."""

    model_config = ConfigDict(extra="allow")

    itemId: str
    designCode: str
    collection: str = "Live"
    attributes: list[Attribute] = Field(default_factory=list)
    signature: str | None = None
    lastEditDate: AlloyDateTime | None = None

    def values(self) -> dict[str, Any]:
        """The attributes as `{code: value}`. When a code appears twice, the last one wins."""
        return {attribute.attributeCode: attribute.value for attribute in self.attributes}

    def value(self, code: str, default: Any = None) -> Any:
        """The value of attribute `code` (the last one if repeated), or `default` when absent."""
        for attribute in reversed(self.attributes):
            if attribute.attributeCode == code:
                return attribute.value
        return default

    def has(self, code: str) -> bool:
        """Whether the item carries attribute `code` at all (even with a null value)."""
        return any(attribute.attributeCode == code for attribute in self.attributes)

"""Alloy items as pydantic models, and Alloy's date-time text format.

This module owns the shape of what Alloy sends back: an `Item` with its `Attribute` list, plus the
two date-time helpers every other module uses to read and write Alloy `DateTime` values.

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

__all__ = ["AlloyDateTime", "Attribute", "Item", "format_alloy_datetime", "parse_alloy_datetime"]


def parse_alloy_datetime(text: str) -> datetime:
    """Parse an Alloy date-time into an aware UTC `datetime`.

    Accepts `2024-07-02T00:00:00.000Z`, `2024-07-02T00:00:00Z`, explicit offsets
    (`2024-07-02T02:00:00+02:00`), any number of fractional digits and, leniently, text without a
    zone, which Alloy means as UTC. Raises `ValueError` for anything else.
    """
    cleaned = text.strip()
    if cleaned.endswith(("z", "Z")):
        cleaned = cleaned[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(cleaned)
    except ValueError:
        raise ValueError(f"not an ISO-8601 date-time: {text!r}") from None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def format_alloy_datetime(moment: datetime) -> str:
    """Format a `datetime` the way Alloy writes DateTime values: `2024-07-02T00:00:00.000Z`.

    Aware values are converted to UTC; naive values are taken to be UTC already. Precision is
    milliseconds (truncated), as in Alloy.
    """
    utc = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return f"{utc:%Y-%m-%dT%H:%M:%S}.{utc.microsecond // 1000:03d}Z"


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

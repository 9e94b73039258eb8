"""Builders for AQS (Alloy Query Syntax) nodes.

This module owns the JSON shape of the queries we send to `POST /api/aqs/query`. Every function
returns a plain dict in Alloy's node shape, `{"type": ..., "properties": {...}, "children": [...]}`,
ready to be sent as `{"aqs": node}`; nothing here talks to the network. For example, job items
edited after a cursor:

    query(
        "designs_alloysyncJobs",
        greater_than(item_property("lastEditDate"), datetime_value(cursor)),
        sort_by_last_edit="asc",
    )
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, Literal

from alloysync.alloy.models import format_alloy_datetime

__all__ = [
    "Node",
    "and_",
    "attribute",
    "boolean",
    "datetime_value",
    "equals",
    "greater_than",
    "item_property",
    "less_than",
    "node",
    "number",
    "or_",
    "query",
    "string",
]

Node = dict[str, Any]
SortOrder = Literal["asc", "desc"]

_SORT_ORDER = {"asc": "Ascending", "desc": "Descending"}


def node(type_: str, properties: dict[str, Any] | None = None, children: Iterable[Node] = ()) -> Node:
    """Any AQS node; the named builders below cover what alloysync needs."""
    built: Node = {"type": type_, "properties": dict(properties or {})}
    kids = list(children)
    if kids:
        built["children"] = kids
    return built


def query(
    design: str,
    *filters: Node,
    collection: str = "Live",
    attributes: Iterable[str] = ("All",),
    sort_by_last_edit: SortOrder | None = None,
) -> Node:
    """The root `Query` node for items of `design` in `collection`.

    Several filters are combined with `And`. `attributes` lists the attribute codes to return
    (`"All"` for every one). `sort_by_last_edit` orders results by `lastEditDate`, which makes
    paging through a changing set stable enough for incremental sync.
    """
    properties: dict[str, Any] = {
        "dodiCode": design,
        "collectionCode": [collection],
        "attributes": list(attributes),
    }
    if sort_by_last_edit is not None:
        properties["sortInfo"] = {
            "itemPropertyName": "lastEditDate",
            "sortOrder": _SORT_ORDER[sort_by_last_edit],
        }
    if not filters:
        return node("Query", properties)
    return node("Query", properties, [and_(*filters)])


def attribute(code: str) -> Node:
    """The value of attribute `code` of the item being tested."""
    return node("Attribute", {"attributeCode": code})


def item_property(name: str) -> Node:
    """A property of the item itself rather than an attribute, e.g. `lastEditDate` or `itemId`."""
    return node("ItemProperty", {"itemPropertyName": name})


def string(*values: str) -> Node:
    """A String literal (several values match any of them)."""
    return node("String", {"value": list(values)})


def boolean(*values: bool) -> Node:
    """A Boolean literal."""
    return node("Boolean", {"value": list(values)})


def number(*values: float) -> Node:
    """A Number literal."""
    return node("Number", {"value": list(values)})


def datetime_value(*moments: datetime) -> Node:
    """A DateTime literal, formatted as Alloy does (`2024-07-02T00:00:00.000Z`)."""
    return node("DateTime", {"value": [format_alloy_datetime(moment) for moment in moments]})


def equals(left: Node, right: Node) -> Node:
    """`left = right`."""
    return node("Equals", children=[left, right])


def greater_than(left: Node, right: Node) -> Node:
    """`left > right` (strictly)."""
    return node("GreaterThan", children=[left, right])


def less_than(left: Node, right: Node) -> Node:
    """`left < right` (strictly)."""
    return node("LessThan", children=[left, right])


def and_(*conditions: Node) -> Node:
    """All of `conditions`. A single condition is returned as is (Alloy wants two or more children)."""
    return _group("And", conditions)


def or_(*conditions: Node) -> Node:
    """Any of `conditions`. A single condition is returned as is (Alloy wants two or more children)."""
    return _group("Or", conditions)


def _group(type_: str, conditions: tuple[Node, ...]) -> Node:
    if not conditions:
        raise ValueError(f"{type_} needs at least one condition")
    if len(conditions) == 1:
        return conditions[0]
    return node(type_, children=conditions)

"""Builders for AQS nodes used by the emulator tests (plain dicts, as a client would send them)."""

from __future__ import annotations

from typing import Any

JOBS = "designs_alloysyncJobs"


def node(
    node_type: str, properties: dict[str, Any] | None = None, children: list[Any] | None = None
) -> dict[str, Any]:
    return {"type": node_type, "properties": properties or {}, "children": children or []}


def query(
    design: str,
    filter_node: dict[str, Any] | None = None,
    attributes: list[str] | None = None,
    sort: dict[str, Any] | None = None,
) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "dodiCode": design,
        "collectionCode": ["Live"],
        "attributes": attributes or ["All"],
    }
    if sort is not None:
        properties["sortInfo"] = sort
    return node("Query", properties, [filter_node] if filter_node is not None else [])


def attribute(code: str) -> dict[str, Any]:
    return node("Attribute", {"attributeCode": code})


def item_property(name: str) -> dict[str, Any]:
    return node("ItemProperty", {"itemPropertyName": name})


def literal(kind: str, *values: Any) -> dict[str, Any]:
    return node(kind, {"value": list(values)})


def equals(operand: dict[str, Any], value: dict[str, Any]) -> dict[str, Any]:
    return node("Equals", children=[operand, value])


def greater_than(operand: dict[str, Any], value: dict[str, Any]) -> dict[str, Any]:
    return node("GreaterThan", children=[operand, value])


def less_than(operand: dict[str, Any], value: dict[str, Any]) -> dict[str, Any]:
    return node("LessThan", children=[operand, value])


def all_of(*children: dict[str, Any]) -> dict[str, Any]:
    return node("And", children=list(children))


def any_of(*children: dict[str, Any]) -> dict[str, Any]:
    return node("Or", children=list(children))


def attribute_values(item: dict[str, Any]) -> dict[str, Any]:
    return {entry["attributeCode"]: entry["value"] for entry in item["attributes"]}

"""AQS: parsing an Alloy query node tree into a `Query`, and evaluating it against items.

Supported: root `Query` (`dodiCode`, `collectionCode`, `attributes`, `sortInfo`) with at most one
filter child; filters `And`, `Or` (two or more children), `Equals`, `GreaterThan`, `LessThan` (an
`Attribute` or `ItemProperty` operand, then a `String`, `Boolean`, `Number` or `DateTime` literal).
Anything else is a 400 (category `AqsInvalidQuery`) whose message says which node is wrong and why.
`check_query` then holds the query against the designs: the queried design must exist (`DodiNotFound`)
and every attribute it filters, sorts or selects by must be one of the design's (`AqsInvalidQuery`).

Matching: `Equals` matches when the item's value equals any listed value; `GreaterThan` and
`LessThan` take exactly one value. An item lacking the attribute, or holding a value of another
type, does not match. A Link attribute (array of ids) equals a `String` when it contains it.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from operator import attrgetter, gt, lt
from typing import Any

from alloysync.emulator.clock import parse_timestamp
from alloysync.emulator.design_store import DesignStore
from alloysync.emulator.errors import AlloyError, Category, bad_request
from alloysync.emulator.store import Item

FILTER_TYPES = ("And", "Or", "Equals", "GreaterThan", "LessThan")
LITERAL_TYPES = ("String", "Boolean", "Number", "DateTime")
ITEM_PROPERTIES = ("lastEditDate", "createdDate", "itemId")
SORT_ORDERS = ("Ascending", "Descending")
_DATE_PROPERTIES = ("lastEditDate", "createdDate")
_PROPERTY_FIELDS = {"lastEditDate": "last_edit", "createdDate": "created", "itemId": "item_id"}  # on Item


def _invalid(message: str) -> AlloyError:
    return bad_request(f"invalid AQS: {message}", Category.AQS_INVALID_QUERY)


@dataclass(frozen=True)
class AttributeOperand:
    code: str

    def read(self, item: Item) -> Any:
        return item.attributes.get(self.code)

    def describe(self) -> str:
        return f"attribute {self.code}"


@dataclass(frozen=True)
class PropertyOperand:
    name: str

    def read(self, item: Item) -> Any:
        return getattr(item, _PROPERTY_FIELDS[self.name])

    def describe(self) -> str:
        return f"item property {self.name}"


Operand = AttributeOperand | PropertyOperand


@dataclass(frozen=True)
class Literal:
    """A typed constant: `kind` is one of LITERAL_TYPES, values already converted (DateTime → datetime)."""

    kind: str
    values: tuple[Any, ...]

    def coerce(self, candidate: Any) -> Any:
        """The item's value as a value of this literal's kind, or None when it is of another type."""
        return _COERCIONS[self.kind](candidate)


def _as_string(candidate: Any) -> str | None:
    return candidate if isinstance(candidate, str) else None


def _as_boolean(candidate: Any) -> bool | None:
    return candidate if isinstance(candidate, bool) else None


def _as_number(candidate: Any) -> int | float | None:
    is_number = isinstance(candidate, int | float) and not isinstance(candidate, bool)
    return candidate if is_number else None


def _as_datetime(candidate: Any) -> datetime | None:
    if isinstance(candidate, datetime):
        return candidate
    return parse_timestamp(candidate) if isinstance(candidate, str) else None


_COERCIONS: dict[str, Callable[[Any], Any]] = {
    "String": _as_string,
    "Boolean": _as_boolean,
    "Number": _as_number,
    "DateTime": _as_datetime,
}
_ORDERINGS: dict[str, Callable[[Any, Any], Any]] = {"GreaterThan": gt, "LessThan": lt}


@dataclass(frozen=True)
class Comparison:
    operator: str  # Equals | GreaterThan | LessThan
    operand: Operand
    literal: Literal

    def matches(self, item: Item) -> bool:
        actual = self.operand.read(item)
        if isinstance(actual, list) and self.operator == "Equals":
            return any(self._holds(candidate) for candidate in actual)
        return actual is not None and self._holds(actual)

    def attribute_codes(self) -> set[str]:
        return {self.operand.code} if isinstance(self.operand, AttributeOperand) else set()

    def _holds(self, candidate: Any) -> bool:
        """Whether one value of the item holds against the literal (a value of another type never does)."""
        value = self.literal.coerce(candidate)
        if value is None:
            return False
        if self.operator == "Equals":
            return value in self.literal.values  # JSON values: `in` is `==` here (no NaN reaches a literal)
        return bool(_ORDERINGS[self.operator](value, self.literal.values[0]))


@dataclass(frozen=True)
class BooleanGroup:
    operator: str  # And | Or
    children: tuple[Filter, ...]

    def attribute_codes(self) -> set[str]:
        return set().union(*(child.attribute_codes() for child in self.children))

    def matches(self, item: Item) -> bool:
        if self.operator == "And":
            return all(child.matches(item) for child in self.children)
        return any(child.matches(item) for child in self.children)


Filter = Comparison | BooleanGroup


@dataclass(frozen=True)
class SortOrder:
    """Sort by an item property or by an attribute; ties are broken by item id."""

    item_property: str | None
    attribute_code: str | None
    descending: bool


DEFAULT_SORT = SortOrder(item_property="itemId", attribute_code=None, descending=False)


@dataclass(frozen=True)
class Query:
    design_code: str
    collections: frozenset[str]
    attributes: frozenset[str] | None  # None: all attributes
    sort: SortOrder
    filter: Filter | None

    def run(self, items: Sequence[Item], *, edit_ordered: bool = False) -> list[Item]:
        """The matching items in the query's order.

        `edit_ordered`: `items` are in ascending lastEditDate order, no two alike (the store's
        order, see `ItemStore.in_edit_order`). Then a filter that requires `lastEditDate > t`
        scans only the items edited after t, and a sort by lastEditDate keeps that order (or
        reverses it): the poller's incremental query costs what it returns, not the whole store, and
        evaluates no filter per item."""
        condition = self.filter
        if edit_ordered:
            after = _edited_after(condition)
            if after is not None:
                items = items[bisect.bisect_right(items, after, key=_LAST_EDIT) :]
                if isinstance(condition, Comparison):  # it is the bound: every item left meets it
                    condition = None
        design_code, collections = self.design_code, self.collections
        matching = [
            item for item in items if item.design_code == design_code and item.collection in collections
        ]
        if condition is not None:
            matching = [item for item in matching if condition.matches(item)]
        if edit_ordered and self.sort.item_property == "lastEditDate" and self.sort.attribute_code is None:
            return matching[::-1] if self.sort.descending else matching
        return _sorted(matching, self.sort)

    def attribute_codes(self) -> set[str]:
        """Every attribute code the query filters, sorts or selects by."""
        codes = set(self.attributes or ())
        if self.sort.attribute_code is not None:
            codes.add(self.sort.attribute_code)
        if self.filter is not None:
            codes |= self.filter.attribute_codes()
        return codes


def check_query(query: Query, designs: DesignStore) -> None:
    """400 when the queried design does not exist or an attribute is not one of its attributes."""
    design = designs.find(query.design_code)
    if design is None:
        raise bad_request(
            f"invalid AQS: there is no design {query.design_code!r} (Query.properties.dodiCode)",
            Category.DODI_NOT_FOUND,
            {"designCode": query.design_code},
        )
    unknown = sorted(code for code in query.attribute_codes() if design.attribute(code) is None)
    if unknown:
        raise _invalid(
            f"design {design.code} has no attribute {', '.join(unknown)}; "
            f"GET /api/design/{design.code} lists its attributes"
        )


def parse_query(body: Any) -> Query:
    """The query in a request body `{"aqs": NODE}`; 400 with what is wrong otherwise."""
    if not isinstance(body, dict) or "aqs" not in body:
        raise _invalid(
            'the body must be an object {"aqs": {"type": "Query", "properties": {...}, "children": [...]}}'
        )
    root = body["aqs"]
    node_type, properties, children = _node_parts(root, "aqs")
    if node_type != "Query":
        raise _invalid(f'the root node must be of type "Query", got {node_type!r}')
    design_code = properties.get("dodiCode")
    if not isinstance(design_code, str) or not design_code:
        raise _invalid("Query.properties.dodiCode must be a design code string")
    if len(children) > 1:
        raise _invalid(
            f"Query takes at most one filter child (combine filters with And/Or), got {len(children)}"
        )
    return Query(
        design_code=design_code,
        collections=_parse_collections(properties.get("collectionCode")),
        attributes=_parse_attribute_selection(properties.get("attributes")),
        sort=_parse_sort(properties.get("sortInfo")),
        filter=_parse_filter(children[0], "aqs.children[0]") if children else None,
    )


def _node_parts(node: Any, where: str) -> tuple[str, dict[str, Any], list[Any]]:
    if not isinstance(node, dict):
        raise _invalid(f"{where} must be a node object with type, properties and children")
    node_type = node.get("type")
    if not isinstance(node_type, str):
        raise _invalid(f"{where}.type must be a string")
    properties = node.get("properties") or {}
    if not isinstance(properties, dict):
        raise _invalid(f"{where}.properties must be an object")
    children = node.get("children") or []
    if not isinstance(children, list):
        raise _invalid(f"{where}.children must be a list")
    return node_type, properties, children


def _parse_collections(raw: Any) -> frozenset[str]:
    if raw is None:
        return frozenset({"Live"})
    if not isinstance(raw, list) or not raw or not all(isinstance(code, str) for code in raw):
        raise _invalid('Query.properties.collectionCode must be a non-empty list of strings such as ["Live"]')
    return frozenset(raw)


def _parse_attribute_selection(raw: Any) -> frozenset[str] | None:
    if raw is None:
        return None
    if not isinstance(raw, list) or not all(isinstance(code, str) for code in raw):
        raise _invalid('Query.properties.attributes must be ["All"] or a list of attribute codes')
    return None if "All" in raw else frozenset(raw)


def _parse_sort(raw: Any) -> SortOrder:
    if raw is None:
        return DEFAULT_SORT
    if not isinstance(raw, dict):
        raise _invalid("Query.properties.sortInfo must be an object")
    order = raw.get("sortOrder", "Ascending")
    if order not in SORT_ORDERS:
        raise _invalid(f"sortInfo.sortOrder must be Ascending or Descending, got {order!r}")
    item_property, attribute_code = raw.get("itemPropertyName"), raw.get("attributeCode")
    if (item_property is None) == (attribute_code is None):
        raise _invalid("sortInfo needs exactly one of itemPropertyName and attributeCode")
    if item_property is not None and item_property not in ITEM_PROPERTIES:
        raise _invalid(
            f"sortInfo.itemPropertyName must be one of {', '.join(ITEM_PROPERTIES)}, got {item_property!r}"
        )
    if attribute_code is not None and (not isinstance(attribute_code, str) or not attribute_code):
        raise _invalid("sortInfo.attributeCode must be a non-empty string")
    return SortOrder(
        item_property=item_property, attribute_code=attribute_code, descending=order == "Descending"
    )


def _parse_filter(node: Any, where: str) -> Filter:
    node_type, _properties, children = _node_parts(node, where)
    if node_type in ("And", "Or"):
        if len(children) < 2:
            raise _invalid(f"{where}: {node_type} needs at least two child filters, got {len(children)}")
        return BooleanGroup(
            node_type,
            tuple(_parse_filter(child, f"{where}.children[{i}]") for i, child in enumerate(children)),
        )
    if node_type in ("Equals", "GreaterThan", "LessThan"):
        return _parse_comparison(node_type, children, where)
    if node_type in LITERAL_TYPES or node_type in ("Attribute", "ItemProperty"):
        raise _invalid(
            f"{where}: a {node_type} node is an operand, it must be inside {', '.join(FILTER_TYPES[2:])}"
        )
    raise _invalid(
        f"{where}: unknown node type {node_type!r}; supported filters are {', '.join(FILTER_TYPES)}"
    )


def _parse_comparison(operator: str, children: list[Any], where: str) -> Comparison:
    if len(children) != 2:
        raise _invalid(
            f"{where}: {operator} needs exactly two children (an Attribute or ItemProperty, then a value), "
            f"got {len(children)}"
        )
    operand = _parse_operand(children[0], f"{where}.children[0]")
    literal = _parse_literal(children[1], f"{where}.children[1]")
    if operator != "Equals":
        if literal.kind == "Boolean":
            raise _invalid(f"{where}: {operator} cannot compare Boolean values")
        if len(literal.values) != 1:
            raise _invalid(f"{where}: {operator} takes exactly one value, got {len(literal.values)}")
    if isinstance(operand, PropertyOperand):
        expected_kind = "DateTime" if operand.name in _DATE_PROPERTIES else "String"
        if literal.kind != expected_kind:
            raise _invalid(f"{where}: {operand.describe()} must be compared with a {expected_kind} value")
    return Comparison(operator, operand, literal)


def _parse_operand(node: Any, where: str) -> Operand:
    node_type, properties, children = _node_parts(node, where)
    if children:
        raise _invalid(f"{where}: a {node_type} operand has no children")
    if node_type == "Attribute":
        code = properties.get("attributeCode")
        if not isinstance(code, str) or not code:
            raise _invalid(f"{where}: Attribute needs properties.attributeCode")
        return AttributeOperand(code)
    if node_type == "ItemProperty":
        name = properties.get("itemPropertyName")
        if name not in ITEM_PROPERTIES:
            raise _invalid(
                f"{where}: ItemProperty.itemPropertyName must be one of {', '.join(ITEM_PROPERTIES)}"
            )
        return PropertyOperand(str(name))
    raise _invalid(
        f"{where}: the first child of a comparison must be Attribute or ItemProperty, got {node_type!r}"
    )


def _parse_literal(node: Any, where: str) -> Literal:
    node_type, properties, _children = _node_parts(node, where)
    if node_type not in LITERAL_TYPES:
        raise _invalid(
            f"{where}: the second child of a comparison must be one of {', '.join(LITERAL_TYPES)}, "
            f"got {node_type!r}"
        )
    raw_values = properties.get("value")
    if not isinstance(raw_values, list) or not raw_values:
        raise _invalid(f"{where}: {node_type}.properties.value must be a non-empty list of values")
    return Literal(node_type, tuple(_literal_value(node_type, value, where) for value in raw_values))


def _literal_value(kind: str, value: Any, where: str) -> Any:
    if kind == "String" and isinstance(value, str):
        return value
    if kind == "Boolean" and isinstance(value, bool):
        return value
    if kind == "Number" and isinstance(value, int | float) and not isinstance(value, bool):
        return value
    if kind == "DateTime" and isinstance(value, str):
        moment = parse_timestamp(value)
        if moment is not None:
            return moment
        raise _invalid(
            f'{where}: {value!r} is not an ISO-8601 date-time with a zone, e.g. "2024-07-02T00:00:00.000Z"'
        )
    raise _invalid(f"{where}: {json.dumps(value)} is not a {kind} value")


_LAST_EDIT = attrgetter("last_edit")


def _edited_after(node: Filter | None) -> datetime | None:
    """The t of a `lastEditDate > t` that every match must satisfy (at the top or in an And), if any."""
    if isinstance(node, Comparison):
        operand, literal = node.operand, node.literal
        if (
            node.operator == "GreaterThan"
            and isinstance(operand, PropertyOperand)
            and operand.name == "lastEditDate"
            and literal.kind == "DateTime"
        ):
            return literal.values[0]  # type: ignore[no-any-return]
    if isinstance(node, BooleanGroup) and node.operator == "And":
        bounds = [bound for child in node.children if (bound := _edited_after(child)) is not None]
        return max(bounds) if bounds else None
    return None


def _sorted(items: Sequence[Item], sort: SortOrder) -> list[Item]:
    if sort.attribute_code is None:
        key = attrgetter(_PROPERTY_FIELDS[sort.item_property or "itemId"], "item_id")
        return sorted(items, key=key, reverse=sort.descending)
    code = sort.attribute_code
    present = [item for item in items if code in item.attributes]
    missing = sorted((item for item in items if code not in item.attributes), key=lambda item: item.item_id)
    present.sort(key=lambda item: (_sort_key(item.attributes[code]), item.item_id), reverse=sort.descending)
    return present + missing  # items without the attribute come last in both orders


def _sort_key(value: Any) -> tuple[int, float, str]:
    """Orders values of mixed types: booleans, then numbers, then strings, then JSON values."""
    if isinstance(value, bool):
        return (0, float(value), "")
    if isinstance(value, int | float):
        return (1, float(value), "")
    if isinstance(value, str):
        return (2, 0.0, value)
    return (3, 0.0, json.dumps(value, sort_keys=True))

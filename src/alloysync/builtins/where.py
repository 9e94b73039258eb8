"""The `where` shorthand of `alloy.query`: a small JSON filter, compiled to AQS nodes.

    {"attributes_defectsStatus": "Open",                      equals (String, Number or Boolean)
     "attributes_defectsPriority": ["High", "Urgent"],        equals any of
     "attributes_defectsReported": {"before": "now-30d"},     DateTime before (LessThan) / "after"
     "attributes_defectsCost": {"gt": 100},                   "gt" / "lt" (GreaterThan / LessThan)
     "lastEditDate": {"after": "now-1d"},                     item properties: itemId, lastEditDate,
                                                              createdDate
     "any": [{...}, {...}]}                                   any of several such objects (Or)

Keys of one object are combined with And. A key is an attribute code (`attributes_…`) or an item
property. Operators: `eq`, `in` (a list), `gt`, `lt` (numbers or strings), `before`, `after`
(date-times: ISO, or `now`, `now-30d`, `now+2h` relative to when the step runs). Several operators
on one key are combined with And (`{"after": "now-60d", "before": "now-30d"}`). For what the
shorthand cannot say, give `aqs`: a raw AQS filter node, combined with `where` by And.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from alloysync.alloy import aqs
from alloysync.alloy.aqs import Node
from alloysync.builtins.common import moment
from alloysync.model.registry import ParamsError

ITEM_PROPERTIES = ("itemId", "lastEditDate", "createdDate")
ANY_KEY = "any"
OPERATORS = ("eq", "in", "gt", "lt", "before", "after")
_MAX_DEPTH = 4


def compile_where(where: Any, now: datetime, option: str = "where") -> list[Node]:
    """The AQS filter nodes `where` stands for (to be combined with And); ParamsError when bad."""
    return _conditions(where, now, option, 0)


def check_raw_filter(node: Any, option: str = "aqs") -> Node:
    """A raw AQS filter node: an object with a `type` (Alloy checks the rest)."""
    if not isinstance(node, dict) or not isinstance(node.get("type"), str) or not node["type"]:
        raise ParamsError(
            f'option {option!r} must be an AQS filter node such as {{"type": "Equals", "children": [...]}}'
        )
    if node["type"] == "Query":
        raise ParamsError(
            f"option {option!r} is a whole Query; give only its filter node (the design is option 'design')"
        )
    return node


def _conditions(where: Any, now: datetime, option: str, depth: int) -> list[Node]:
    if not isinstance(where, dict) or not where:
        raise ParamsError(f'option {option!r} must be an object such as {{"attributes_xStatus": "Open"}}')
    if depth > _MAX_DEPTH:
        raise ParamsError(f"option {option!r} nests 'any' more than {_MAX_DEPTH} deep")
    nodes: list[Node] = []
    for key, condition in where.items():
        where_key = f"{option}.{key}"
        if key == ANY_KEY:
            if not isinstance(condition, list) or len(condition) < 2:
                raise ParamsError(f"option {where_key!r} must be a list of two or more objects")
            branches = [
                aqs.and_(*_conditions(branch, now, f"{where_key}[{n}]", depth + 1))
                for n, branch in enumerate(condition)
            ]
            nodes.append(aqs.or_(*branches))
            continue
        operand = _operand(key, where_key)
        nodes.extend(_comparisons(operand, condition, now, where_key))
    return nodes


def _operand(key: str, option: str) -> Node:
    if key in ITEM_PROPERTIES:
        return aqs.item_property(key)
    if key.startswith("attributes_") and len(key) > len("attributes_"):
        return aqs.attribute(key)
    raise ParamsError(
        f"option {option!r}: {key!r} is neither an attribute code (attributes_…) nor an item property "
        f"({', '.join(ITEM_PROPERTIES)}), nor 'any'"
    )


def _comparisons(operand: Node, condition: Any, now: datetime, option: str) -> list[Node]:
    if not isinstance(condition, dict):
        return [aqs.equals(operand, _literal_any(condition, option))]
    if not condition:
        raise ParamsError(f"option {option!r} is an empty object; give an operator: {', '.join(OPERATORS)}")
    nodes = []
    for operator, value in condition.items():
        where = f"{option}.{operator}"
        if operator in ("eq", "in"):
            if operator == "in" and not isinstance(value, list):
                raise ParamsError(f"option {where!r} must be a list of values")
            nodes.append(aqs.equals(operand, _literal_any(value, where)))
        elif operator in ("gt", "lt"):
            literal = _literal_one(value, where)
            nodes.append(
                aqs.greater_than(operand, literal) if operator == "gt" else aqs.less_than(operand, literal)
            )
        elif operator in ("before", "after"):
            literal = aqs.datetime_value(moment(value, where, now))
            nodes.append(
                aqs.less_than(operand, literal)
                if operator == "before"
                else aqs.greater_than(operand, literal)
            )
        else:
            raise ParamsError(f"option {where!r}: unknown operator; use one of {', '.join(OPERATORS)}")
    return nodes


def _literal_any(value: Any, option: str) -> Node:
    values = value if isinstance(value, list) else [value]
    if not values:
        raise ParamsError(f"option {option!r} is an empty list")
    kinds = {_kind(entry, option) for entry in values}
    if len(kinds) > 1:
        raise ParamsError(f"option {option!r} mixes value types; give values of one type")
    kind = kinds.pop()
    if kind == "Boolean":
        return aqs.boolean(*values)
    if kind == "Number":
        return aqs.number(*values)
    return aqs.string(*values)


def _literal_one(value: Any, option: str) -> Node:
    kind = _kind(value, option)
    if kind == "Boolean":
        raise ParamsError(f"option {option!r}: booleans cannot be ordered; use eq")
    return aqs.number(value) if kind == "Number" else aqs.string(value)


# A value's AQS literal kind, by its Python type (bool first: a bool is an int too).
_KINDS: tuple[tuple[type | tuple[type, ...], str], ...] = (
    (bool, "Boolean"),
    ((int, float), "Number"),
    (str, "String"),
)


def _kind(value: Any, option: str) -> str:
    for types, kind in _KINDS:
        if isinstance(value, types):
            return kind
    raise ParamsError(f"option {option!r}: a value must be a string, number or boolean, not {value!r}")

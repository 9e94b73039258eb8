"""Attribute values: the shape of an attribute list, and value types for the designs the emulator knows.

Alloy checks every value against the attribute's type in the design. The emulator knows the types
of the jobs design (DESIGN §4, attribute codes from settings) and rejects a wrongly typed value there
with 400; items of any other design accept any JSON value. Setting an attribute to null clears it:
the attribute is then absent from the item, as in Alloy.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from alloysync.emulator.checks import describe_json, is_number
from alloysync.emulator.clock import format_timestamp, parse_timestamp
from alloysync.emulator.errors import AlloyError, bad_request
from alloysync.settings import JobAttributeCodes

ITEM_ID_PATTERN = re.compile(r"^[0-9a-f]{24}$")


class AttributeType(StrEnum):
    STRING = "String"
    NUMBER = "Number"
    BOOLEAN = "Boolean"
    DATETIME = "DateTime"
    JSON = "Json"
    LINK = "Link"


def job_attribute_types(codes: JobAttributeCodes) -> dict[str, AttributeType]:
    """The attribute types of the jobs design, keyed by the configured attribute codes."""
    return {
        codes.title: AttributeType.STRING,
        codes.enabled: AttributeType.BOOLEAN,
        codes.task: AttributeType.STRING,
        codes.params: AttributeType.JSON,
        codes.schedule: AttributeType.STRING,
        codes.timezone: AttributeType.STRING,
        codes.missed_runs: AttributeType.STRING,
        codes.run_requested: AttributeType.BOOLEAN,
        codes.status: AttributeType.STRING,
        codes.message: AttributeType.STRING,
        codes.result: AttributeType.JSON,
        codes.last_run_started: AttributeType.DATETIME,
        codes.last_run_finished: AttributeType.DATETIME,
        codes.next_run: AttributeType.DATETIME,
        codes.run_count: AttributeType.NUMBER,
    }


def parse_attribute_list(raw: Any) -> dict[str, Any]:
    """`[{"attributeCode", "value"}, ...]` as `{code: value}`; 400 when the list is malformed."""
    if raw is None:
        return {}
    if not isinstance(raw, list):
        raise bad_request(
            f"attributes must be a list of {{attributeCode, value}} objects, got {describe_json(raw)}"
        )
    values: dict[str, Any] = {}
    for position, entry in enumerate(raw):
        if not isinstance(entry, dict):
            raise bad_request(f"attributes[{position}] must be an object with attributeCode and value")
        code = entry.get("attributeCode")
        if not isinstance(code, str) or not code:
            raise bad_request(f"attributes[{position}].attributeCode must be a non-empty string")
        if "value" not in entry:
            raise bad_request(f"attribute {code} has no value (send null to clear it)")
        if code in values:
            raise bad_request(f"attribute {code} is given more than once")
        values[code] = entry["value"]
    return values


class DesignRules:
    """Checks attribute values against the types of the designs it knows."""

    def __init__(self, typed_designs: Mapping[str, Mapping[str, AttributeType]]) -> None:
        self._typed_designs = {design: dict(types) for design, types in typed_designs.items()}

    def check(self, design_code: str, values: Mapping[str, Any]) -> dict[str, Any]:
        """The values as stored (DateTimes normalised to Alloy's format); 400 on a wrongly typed value."""
        types = self._typed_designs.get(design_code, {})
        checked: dict[str, Any] = {}
        for code, value in values.items():
            attribute_type = types.get(code)
            checked[code] = value if attribute_type is None else check_value(code, attribute_type, value)
        return checked


def check_value(code: str, attribute_type: AttributeType, value: Any) -> Any:
    """The value as Alloy stores it, or 400 naming the attribute, its type and what was sent."""
    if value is None or attribute_type is AttributeType.JSON:
        return value
    if attribute_type is AttributeType.STRING and isinstance(value, str):
        return value
    if attribute_type is AttributeType.BOOLEAN and isinstance(value, bool):
        return value
    if attribute_type is AttributeType.NUMBER and is_number(value):
        return value
    if attribute_type is AttributeType.DATETIME and isinstance(value, str):
        moment = parse_timestamp(value)
        if moment is not None:
            return format_timestamp(moment)
    if attribute_type is AttributeType.LINK and _is_link(value):
        return value
    expected = {
        AttributeType.STRING: "a string",
        AttributeType.BOOLEAN: "true or false",
        AttributeType.NUMBER: "a number",
        AttributeType.DATETIME: 'an ISO-8601 date-time with a zone, such as "2024-07-02T00:00:00.000Z"',
        AttributeType.LINK: "an array of item ids",
    }[attribute_type]
    raise _wrong_type(code, attribute_type, value, expected)


def _wrong_type(code: str, attribute_type: AttributeType, value: Any, expected: str) -> AlloyError:
    return bad_request(
        f"attribute {code} is of type {attribute_type}: "
        f"its value must be {expected}, got {describe_json(value)}",
        error_code="AttributeValueInvalid",
        error_data={"attributeCode": code, "attributeType": str(attribute_type)},
    )


def _is_link(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(i, str) and ITEM_ID_PATTERN.match(i) for i in value)

"""Attribute types and their typed options (`DodiAttributeOptions*WebModel`): parsing, JSON, value checks.

An attribute's type follows from its options' `discriminator` (an attribute create request carries
no separate type): `DodiAttributeOptionsStringWebModel` makes a String attribute, and so on. Each
options class knows its fields (the names of Alloy's models), renders itself as Alloy does (fields
that are not set are left out), and checks an item value: the value's type (category
`DodiAttributeTypeViolated`) and the options' limits (`DodiAttributeOptionConstraintViolated`).
Options that are not well-formed are refused with `DodiAttributeOptionsMalformed`; well-formed but
contradictory ones (min above max, a bad regex, a default that breaks the limits) with
`DodiAttributeOptionInvalid`.

Supported types: String, Number, Boolean, DateTime, Date, Json, Link, GeoJson. Json accepts any
JSON value (Alloy's model says object; the emulator does not narrow it, so a client's own check of
a Json value is what decides). Alloy's Time, Seasonal, Aqs and Stream types are not emulated.

Why one module of more than 400 lines: it has one responsibility, the options model of Alloy's
attribute types, and its size is eight small classes (one per type, 20 to 60 lines each) that
share the field readers and error helpers at the top, their JSON (`_Options`: Alloy's field names
are the camelCase of theirs) and the discriminator table at the bottom.
Splitting the types across modules would separate each from the table that makes it reachable.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any, ClassVar

from alloysync.emulator.checks import describe_json, is_number
from alloysync.emulator.clock import format_timestamp, parse_timestamp
from alloysync.emulator.codes import HEX24
from alloysync.emulator.errors import AlloyError, Category, bad_request


class AttributeType(StrEnum):
    STRING = "String"
    NUMBER = "Number"
    BOOLEAN = "Boolean"
    DATETIME = "DateTime"
    DATE = "Date"
    JSON = "Json"
    LINK = "Link"
    GEOJSON = "GeoJson"


UNSUPPORTED_TYPES = ("Time", "Seasonal", "Aqs", "Stream")
GEOMETRY_TYPES = (
    "Point",
    "MultiPoint",
    "LineString",
    "MultiLineString",
    "Polygon",
    "MultiPolygon",
    "GeometryCollection",
)
PRECISIONS = ("Minutes", "Seconds", "Milliseconds")


@dataclass(frozen=True)
class Subject:
    """The attribute a value is checked for, to name it in error messages."""

    code: str
    name: str

    def describe(self) -> str:
        return f"attribute {self.code} ({self.name})"

    def type_violated(self, attribute_type: AttributeType, expected: str, value: Any) -> AlloyError:
        return bad_request(
            f"{self.describe()} is of type {attribute_type}: its value must be {expected}, "
            f"got {describe_json(value)}",
            Category.DODI_ATTRIBUTE_TYPE_VIOLATED,
            {"attributeCode": self.code, "attributeType": str(attribute_type)},
        )

    def constraint_violated(self, problem: str) -> AlloyError:
        return bad_request(
            f"{self.describe()}: {problem}",
            Category.DODI_ATTRIBUTE_OPTION_CONSTRAINT_VIOLATED,
            {"attributeCode": self.code},
        )


# --- reading option fields -------------------------------------------------------------------


class _Fields:
    """Reads the fields of one options object, refusing unknown fields and wrongly typed values."""

    def __init__(self, raw: Mapping[str, Any], discriminator: str, known: tuple[str, ...]) -> None:
        self._raw = raw
        self._discriminator = discriminator
        unknown = sorted(set(raw) - set(known) - {"discriminator"})
        if unknown:
            raise _malformed(
                f"{discriminator} has no field {', '.join(unknown)}; its fields are "
                f"{', '.join(known) or '(none)'} and discriminator"
            )

    def optional(self, name: str, accepts: Callable[[Any], bool], expected: str) -> Any:
        value = self._raw.get(name)
        if value is not None and not accepts(value):
            raise _malformed(f"{self._discriminator}.{name} must be {expected}, got {describe_json(value)}")
        return value

    def required(self, name: str, accepts: Callable[[Any], bool], expected: str) -> Any:
        if self._raw.get(name) is None:
            raise _malformed(f"{self._discriminator}.{name} is required: {expected}")
        return self.optional(name, accepts, expected)


def _malformed(message: str) -> AlloyError:
    return bad_request(message, Category.DODI_ATTRIBUTE_OPTIONS_MALFORMED)


def _invalid(message: str) -> AlloyError:
    return bad_request(message, Category.DODI_ATTRIBUTE_OPTION_INVALID)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool)


def _is_datetime_text(value: Any) -> bool:
    return isinstance(value, str) and parse_timestamp(value) is not None


def _is_date_text(value: Any) -> bool:
    return isinstance(value, str) and parse_date(value) is not None


def _is_str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(entry, str) for entry in value)


def _check_default(options: AttributeOptions, default: Any) -> None:
    if default is None:
        return
    try:
        options.check(default, Subject("defaultValue", "the default value"))
    except AlloyError as error:
        raise _invalid(f"the defaultValue does not fit the options: {error.message}") from None


def _refuse_crossed_bounds(
    what: AttributeType, low: Any, high: Any, beyond: str, texts: tuple[Any, Any] | None = None
) -> None:
    """Refuse options whose min lies `beyond` ("above", "after") their max; `texts`: the two as given."""
    if low is not None and high is not None and low > high:
        shown_low, shown_high = texts or (low, high)
        raise _invalid(f"{what} options: min {shown_low} is {beyond} max {shown_high}")


def parse_date(text: str) -> date | None:
    """A `YYYY-MM-DD` date, else None."""
    if not re.fullmatch(r"\d{4}-\d\d-\d\d", text):
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


# --- the options of each type ----------------------------------------------------------------


@dataclass(frozen=True)
class _Options:
    """What the options of every type share: Alloy's names of their fields, and their JSON."""

    type: ClassVar[AttributeType]
    discriminator: ClassVar[str]

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        """The fields as Alloy names them (`default_value` is `defaultValue`), in Alloy's order."""
        return tuple(_alloy_name(field.name) for field in dataclasses.fields(cls))

    def to_json(self) -> dict[str, Any]:
        """The options as Alloy renders them: the fields that are set, then the discriminator."""
        shown: dict[str, Any] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if value is not None:
                shown[_alloy_name(field.name)] = list(value) if isinstance(value, tuple) else value
        return {**shown, "discriminator": self.discriminator}


def _alloy_name(field_name: str) -> str:
    first, *rest = field_name.split("_")
    return first + "".join(word.title() for word in rest)


@dataclass(frozen=True)
class StringOptions(_Options):
    type: ClassVar[AttributeType] = AttributeType.STRING
    discriminator: ClassVar[str] = "DodiAttributeOptionsStringWebModel"

    min: int | None = None
    max: int | None = None
    regex: str | None = None
    default_value: str | None = None

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> StringOptions:
        fields = _Fields(raw, cls.discriminator, cls.field_names())
        options = cls(
            min=fields.optional("min", _is_count, "a whole number of characters, 0 or more"),
            max=fields.optional("max", _is_count, "a whole number of characters, 0 or more"),
            regex=fields.optional("regex", _is_str, "a regular expression"),
            default_value=fields.optional("defaultValue", _is_str, "a string"),
        )
        _refuse_crossed_bounds(cls.type, options.min, options.max, "above")
        if options.regex is not None:
            try:
                re.compile(options.regex)
            except re.error as error:
                raise _invalid(f"String options: regex {options.regex!r} is not valid: {error}") from None
        _check_default(options, options.default_value)
        return options

    def check(self, value: Any, subject: Subject) -> Any:
        if not isinstance(value, str):
            raise subject.type_violated(self.type, "a string", value)
        if self.max is not None and len(value) > self.max:
            raise subject.constraint_violated(
                f"the value is {len(value)} characters long; this attribute allows at most {self.max}"
            )
        if self.min is not None and len(value) < self.min:
            raise subject.constraint_violated(
                f"the value is {len(value)} characters long; this attribute needs at least {self.min}"
            )
        if self.regex is not None and re.search(self.regex, value) is None:
            raise subject.constraint_violated(f"the value does not match the pattern {self.regex!r}")
        return value


@dataclass(frozen=True)
class NumberOptions(_Options):
    type: ClassVar[AttributeType] = AttributeType.NUMBER
    discriminator: ClassVar[str] = "DodiAttributeOptionsNumberWebModel"

    decimal_places: int = 0
    min: float | None = None
    max: float | None = None
    default_value: float | None = None

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> NumberOptions:
        fields = _Fields(raw, cls.discriminator, cls.field_names())
        options = cls(
            decimal_places=fields.required(
                "decimalPlaces", _is_count, "the number of decimal places, a whole number 0 or more"
            ),
            min=fields.optional("min", is_number, "a number"),
            max=fields.optional("max", is_number, "a number"),
            default_value=fields.optional("defaultValue", is_number, "a number"),
        )
        _refuse_crossed_bounds(cls.type, options.min, options.max, "above")
        _check_default(options, options.default_value)
        return options

    def check(self, value: Any, subject: Subject) -> Any:
        if not is_number(value):
            raise subject.type_violated(self.type, "a number", value)
        if self.min is not None and value < self.min:
            raise subject.constraint_violated(f"the value {value} is below the minimum {self.min}")
        if self.max is not None and value > self.max:
            raise subject.constraint_violated(f"the value {value} is above the maximum {self.max}")
        if not math.isclose(round(value, self.decimal_places), value, rel_tol=1e-12, abs_tol=1e-12):
            raise subject.constraint_violated(
                f"the value {value} has more than {self.decimal_places} decimal places"
            )
        return value


@dataclass(frozen=True)
class BooleanOptions(_Options):
    type: ClassVar[AttributeType] = AttributeType.BOOLEAN
    discriminator: ClassVar[str] = "DodiAttributeOptionsBooleanWebModel"

    default_value: bool | None = None

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> BooleanOptions:
        fields = _Fields(raw, cls.discriminator, cls.field_names())
        return cls(default_value=fields.optional("defaultValue", _is_bool, "true or false"))

    def check(self, value: Any, subject: Subject) -> Any:
        if not isinstance(value, bool):
            raise subject.type_violated(self.type, "true or false", value)
        return value


@dataclass(frozen=True)
class DateTimeOptions(_Options):
    """DateTime values are stored in Alloy's format (UTC, milliseconds), cut to the precision."""

    type: ClassVar[AttributeType] = AttributeType.DATETIME
    discriminator: ClassVar[str] = "DodiAttributeOptionsDateTimeWebModel"

    precision: str | None = None  # Minutes | Seconds | Milliseconds (None: Milliseconds)
    min: str | None = None
    max: str | None = None
    default_value: str | None = None

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> DateTimeOptions:
        fields = _Fields(raw, cls.discriminator, cls.field_names())
        iso = "an ISO-8601 date-time with a zone, such as 2024-07-02T00:00:00.000Z"
        options = cls(
            precision=fields.optional("precision", lambda v: v in PRECISIONS, " or ".join(PRECISIONS)),
            min=fields.optional("min", _is_datetime_text, iso),
            max=fields.optional("max", _is_datetime_text, iso),
            default_value=fields.optional("defaultValue", _is_datetime_text, iso),
        )
        low, high = options._bound(options.min), options._bound(options.max)
        _refuse_crossed_bounds(cls.type, low, high, "after", (options.min, options.max))
        _check_default(options, options.default_value)
        return options

    @staticmethod
    def _bound(text: str | None) -> datetime | None:
        return None if text is None else parse_timestamp(text)

    def check(self, value: Any, subject: Subject) -> Any:
        moment = parse_timestamp(value) if isinstance(value, str) else None
        if moment is None:
            expected = 'an ISO-8601 date-time with a zone, such as "2024-07-02T00:00:00.000Z"'
            raise subject.type_violated(self.type, expected, value)
        low, high = self._bound(self.min), self._bound(self.max)
        if low is not None and moment < low:
            raise subject.constraint_violated(f"the value {value} is before the minimum {self.min}")
        if high is not None and moment > high:
            raise subject.constraint_violated(f"the value {value} is after the maximum {self.max}")
        return format_timestamp(_cut(moment, self.precision))


def _cut(moment: datetime, precision: str | None) -> datetime:
    if precision == "Minutes":
        return moment.replace(second=0, microsecond=0)
    if precision == "Seconds":
        return moment.replace(microsecond=0)
    return moment.astimezone(UTC)


@dataclass(frozen=True)
class DateOptions(_Options):
    type: ClassVar[AttributeType] = AttributeType.DATE
    discriminator: ClassVar[str] = "DodiAttributeOptionsDateWebModel"

    min: str | None = None
    max: str | None = None
    default_value: str | None = None

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> DateOptions:
        fields = _Fields(raw, cls.discriminator, cls.field_names())
        expected = "a date such as 2024-07-02"
        options = cls(
            min=fields.optional("min", _is_date_text, expected),
            max=fields.optional("max", _is_date_text, expected),
            default_value=fields.optional("defaultValue", _is_date_text, expected),
        )
        _refuse_crossed_bounds(cls.type, options.min, options.max, "after")
        _check_default(options, options.default_value)
        return options

    def check(self, value: Any, subject: Subject) -> Any:
        if not isinstance(value, str) or parse_date(value) is None:
            raise subject.type_violated(self.type, 'a date such as "2024-07-02"', value)
        if self.min is not None and value < self.min:
            raise subject.constraint_violated(f"the value {value} is before the minimum {self.min}")
        if self.max is not None and value > self.max:
            raise subject.constraint_violated(f"the value {value} is after the maximum {self.max}")
        return value


@dataclass(frozen=True)
class JsonOptions(_Options):
    type: ClassVar[AttributeType] = AttributeType.JSON
    discriminator: ClassVar[str] = "DodiAttributeOptionsJsonWebModel"

    default_value: dict[str, Any] | None = None

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> JsonOptions:
        fields = _Fields(raw, cls.discriminator, cls.field_names())
        return cls(default_value=fields.optional("defaultValue", lambda v: isinstance(v, dict), "an object"))

    def check(self, value: Any, subject: Subject) -> Any:
        return value


@dataclass(frozen=True)
class LinkOptions(_Options):
    """Link values are arrays of item ids; `item_values` checks that the linked items exist."""

    type: ClassVar[AttributeType] = AttributeType.LINK
    discriminator: ClassVar[str] = "DodiAttributeOptionsLinkWebModel"

    code: str = ""  # the design (or design interface) linked items belong to
    graph: str = "Lookup"
    weak_reference: bool = True
    max: int | None = None
    default_value: tuple[str, ...] | None = None
    collection_codes: tuple[str, ...] | None = None

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> LinkOptions:
        fields = _Fields(raw, cls.discriminator, cls.field_names())
        default = fields.optional("defaultValue", _is_str_list, "an array of item ids")
        collections = fields.optional("collectionCodes", _is_str_list, "an array of collection codes")
        options = cls(
            code=fields.required("code", _is_str, "the code of the design linked items belong to"),
            graph=fields.required("graph", _is_str, 'the graph of the link, such as "Lookup"'),
            weak_reference=fields.required("weakReference", _is_bool, "true or false"),
            max=fields.optional("max", _is_count, "the most linked items, a whole number"),
            default_value=None if default is None else tuple(default),
            collection_codes=None if collections is None else tuple(collections),
        )
        _check_default(options, None if default is None else list(default))
        return options

    def check(self, value: Any, subject: Subject) -> Any:
        if not isinstance(value, list) or not all(isinstance(i, str) and HEX24.match(i) for i in value):
            raise subject.type_violated(self.type, "an array of item ids (24 hex digits each)", value)
        if self.max is not None and len(value) > self.max:
            raise subject.constraint_violated(
                f"the value links {len(value)} items; this attribute allows at most {self.max}"
            )
        return value


@dataclass(frozen=True)
class GeoJsonOptions(_Options):
    type: ClassVar[AttributeType] = AttributeType.GEOJSON
    discriminator: ClassVar[str] = "DodiAttributeOptionsGeoJsonWebModel"

    allows: tuple[str, ...] = GEOMETRY_TYPES
    default_value: dict[str, Any] | None = None

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> GeoJsonOptions:
        fields = _Fields(raw, cls.discriminator, cls.field_names())
        allows = fields.required(
            "allows", lambda v: _is_str_list(v) and set(v) <= set(GEOMETRY_TYPES), _geometry_types_text()
        )
        options = cls(
            allows=tuple(allows),
            default_value=fields.optional(
                "defaultValue", lambda v: isinstance(v, dict), "a GeoJSON geometry"
            ),
        )
        _check_default(options, options.default_value)
        return options

    def check(self, value: Any, subject: Subject) -> Any:
        if not _is_geometry(value):
            expected = 'a GeoJSON geometry, such as {"type": "Point", "coordinates": [-1.5, 52.1]}'
            raise subject.type_violated(self.type, expected, value)
        if value["type"] not in self.allows:
            raise subject.constraint_violated(
                f"a {value['type']} geometry is not allowed here; allowed: {', '.join(self.allows)}"
            )
        return value


def _geometry_types_text() -> str:
    return "an array of geometry types out of " + ", ".join(GEOMETRY_TYPES)


def _is_geometry(value: Any) -> bool:
    if not isinstance(value, dict) or value.get("type") not in GEOMETRY_TYPES:
        return False
    if value["type"] == "GeometryCollection":
        members = value.get("geometries")
        return isinstance(members, list) and all(_is_geometry(member) for member in members)
    return isinstance(value.get("coordinates"), list)


AttributeOptions = (
    StringOptions
    | NumberOptions
    | BooleanOptions
    | DateTimeOptions
    | DateOptions
    | JsonOptions
    | LinkOptions
    | GeoJsonOptions
)

_OPTION_CLASSES: tuple[type[AttributeOptions], ...] = (
    StringOptions,
    NumberOptions,
    BooleanOptions,
    DateTimeOptions,
    DateOptions,
    JsonOptions,
    LinkOptions,
    GeoJsonOptions,
)
_BY_DISCRIMINATOR = {options.discriminator: options for options in _OPTION_CLASSES}
_BY_TYPE = {options.type: options for options in _OPTION_CLASSES}


def parse_options(raw: Any) -> AttributeOptions:
    """Typed options from their JSON (`{"discriminator": "DodiAttributeOptions...WebModel", ...}`)."""
    if not isinstance(raw, dict):
        raise _malformed(
            'options must be an object such as {"discriminator": "DodiAttributeOptionsStringWebModel", '
            f'"max": 100}}, got {describe_json(raw)}'
        )
    discriminator = raw.get("discriminator")
    options_class = _BY_DISCRIMINATOR.get(discriminator) if isinstance(discriminator, str) else None
    if options_class is None:
        unsupported = [
            name for name in UNSUPPORTED_TYPES if discriminator == f"DodiAttributeOptions{name}WebModel"
        ]
        if unsupported:
            raise _malformed(f"the emulator does not support {unsupported[0]} attributes")
        raise _malformed(
            f"options.discriminator must be one of {', '.join(_BY_DISCRIMINATOR)}, "
            f"got {describe_json(discriminator)}"
        )
    return options_class.parse(raw)


def default_options(attribute_type: AttributeType) -> AttributeOptions:
    """The options of an attribute of this type that sets none (a Link needs its own: it names a design)."""
    if attribute_type is AttributeType.LINK:
        raise ValueError("a Link attribute needs options naming the design it links to")
    return _BY_TYPE[attribute_type]()

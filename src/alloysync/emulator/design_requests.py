"""Reading design request bodies: Alloy's `DesignCreateWebRequestModel` and
`DodiAttributeCreateWebRequestModel`, and the admin API's design definition.

Field names are those of Alloy's models. A field the model does not have is refused with a message
listing the fields it has (Alloy might ignore it silently; the emulator says so, since a misspelt
field is a client bug). Accepted but without effect in the emulator: `itemLogsRetentionDays`,
`stencil`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from alloysync.emulator.attribute_options import (
    GEOMETRY_TYPES,
    AttributeOptions,
    AttributeType,
    default_options,
    parse_options,
)
from alloysync.emulator.checks import describe_json
from alloysync.emulator.design_store import AttributeDraft, DesignDraft
from alloysync.emulator.errors import bad_request

COLLECTION_CODES = ("Live", "Inventory", "Archive", "Template")
_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")

DESIGN_FIELDS = (
    "name",
    "colour",
    "icon",
    "title",
    "subtitle",
    "geometryRequired",
    "geometryAllows",
    "collections",
    "itemLogsRetentionDays",
    "stencil",
)
ATTRIBUTE_FIELDS = ("name", "required", "readonly", "unique", "tags", "options", "signature")


def parse_design_create(body: Mapping[str, Any]) -> DesignDraft:
    """`POST /api/design`'s body as a `DesignDraft`; 400 saying what is wrong otherwise."""
    _refuse_unknown(body, DESIGN_FIELDS, "DesignCreateWebRequestModel")
    return _design_draft(body)


def parse_attribute_create(body: Mapping[str, Any]) -> tuple[AttributeDraft, str]:
    """`POST /api/design/{code}/attribute`'s body: the attribute and the design signature sent."""
    _refuse_unknown(body, ATTRIBUTE_FIELDS, "DodiAttributeCreateWebRequestModel")
    signature = body.get("signature")
    if not isinstance(signature, str) or not signature:
        raise bad_request(
            "signature is required: send the design's current signature "
            "(design.metadata.signature from GET /api/design/{code})"
        )
    if "options" not in body:
        raise bad_request(
            'options is required: it gives the attribute its type, e.g. {"discriminator": '
            '"DodiAttributeOptionsStringWebModel", "max": 200}'
        )
    return _attribute_draft(body, parse_options(body["options"]), code=None), signature


def parse_admin_design(body: Mapping[str, Any]) -> tuple[DesignDraft, list[AttributeDraft], str | None]:
    """The admin API's `{"code"?, <design fields>, "attributes": [...]}`.

    Each attribute is `{"code"?, "name", "type" or "options", "required"?, "readonly"?, "unique"?,
    "tags"?}`: `type` (String, Number, ...) stands for that type's options with nothing set.
    """
    _refuse_unknown(body, (*DESIGN_FIELDS, "code", "attributes"), "the admin design definition")
    code = _optional(body, "code", lambda value: isinstance(value, str) and bool(value), "a design code")
    raw_attributes = body.get("attributes") or []
    if not isinstance(raw_attributes, list) or not all(isinstance(entry, dict) for entry in raw_attributes):
        raise bad_request("attributes must be a list of attribute objects")
    attributes = [_admin_attribute(entry, position) for position, entry in enumerate(raw_attributes)]
    return _design_draft(body), attributes, code


def _admin_attribute(raw: Mapping[str, Any], position: int) -> AttributeDraft:
    where = f"attributes[{position}]"
    _refuse_unknown(raw, ("code", "name", "type", "options", "required", "readonly", "unique", "tags"), where)
    code = _optional(raw, "code", lambda value: isinstance(value, str) and bool(value), "an attribute code")
    if ("type" in raw) == ("options" in raw):
        raise bad_request(f"{where} needs exactly one of type and options")
    options: AttributeOptions
    if "options" in raw:
        options = parse_options(raw["options"])
    else:
        kind = raw["type"]
        choices = [str(member) for member in AttributeType if member is not AttributeType.LINK]
        if kind not in choices:
            raise bad_request(f"{where}.type must be one of {', '.join(choices)} (a Link needs options)")
        options = default_options(AttributeType(kind))
    return _attribute_draft(raw, options, code=code)


def _design_draft(body: Mapping[str, Any]) -> DesignDraft:
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise bad_request("name is required: the design's name (its code is generated from it)")
    allows = _optional(
        body,
        "geometryAllows",
        lambda value: _is_subset_list(value, GEOMETRY_TYPES),
        "a non-empty list out of " + ", ".join(GEOMETRY_TYPES),
    )
    collections = _optional(
        body,
        "collections",
        lambda value: _is_subset_list(value, COLLECTION_CODES),
        "a non-empty list out of " + ", ".join(COLLECTION_CODES),
    )
    _optional(body, "itemLogsRetentionDays", lambda v: isinstance(v, int) and not isinstance(v, bool), "days")
    _optional(body, "stencil", lambda value: isinstance(value, dict), "an object")
    return DesignDraft(
        name=name,
        title=_optional(body, "title", _is_str, "a template string"),
        subtitle=_optional(body, "subtitle", _is_str, "a template string"),
        colour=_optional(body, "colour", lambda v: isinstance(v, str) and bool(_COLOUR.match(v)), "#rrggbb"),
        icon=_optional(body, "icon", lambda v: isinstance(v, str) and bool(v), "an icon code"),
        geometry_required=_optional(body, "geometryRequired", _is_bool, "true or false"),
        geometry_allows=None if allows is None else tuple(allows),
        collections=None if collections is None else tuple(collections),
    )


def _attribute_draft(raw: Mapping[str, Any], options: AttributeOptions, code: str | None) -> AttributeDraft:
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        raise bad_request("name is required: the attribute's name (its code is generated from it)")
    tags = _optional(
        raw, "tags", lambda v: isinstance(v, list) and all(_is_str(t) for t in v), "a list of strings"
    )
    return AttributeDraft(
        name=name,
        options=options,
        required=bool(_optional(raw, "required", _is_bool, "true or false")),
        readonly=bool(_optional(raw, "readonly", _is_bool, "true or false")),
        unique=bool(_optional(raw, "unique", _is_bool, "true or false")),
        tags=tuple(tags or ()),
        code=code,
    )


def _refuse_unknown(body: Mapping[str, Any], known: tuple[str, ...], model: str) -> None:
    unknown = sorted(set(body) - set(known))
    if unknown:
        raise bad_request(f"{model} has no field {', '.join(unknown)}; its fields are {', '.join(known)}")


def _optional(body: Mapping[str, Any], name: str, accepts: Callable[[Any], bool], expected: str) -> Any:
    value = body.get(name)
    if value is not None and not accepts(value):
        raise bad_request(f"{name} must be {expected}, got {describe_json(value)}")
    return value


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool)


def _is_subset_list(value: Any, allowed: tuple[str, ...]) -> bool:
    return isinstance(value, list) and bool(value) and all(entry in allowed for entry in value)

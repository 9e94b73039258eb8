"""Item values against their design: the attribute list's shape, and Alloy's checks of every value.

Checked, in this order, each refused with 400 and a message naming the attribute:
- the attribute belongs to the design (`DodiAttributeNotInDesign`);
- required attributes are present on create and never cleared (`DodiAttributeRequiredViolated`);
- readonly attributes are set only on create (`DodiAttributeReadonlyViolated`);
- the value's type and the options' limits (`attribute_options`), DateTimes normalised;
- linked items exist, in the linked design (`DodiAttributeLinkItemNotFound`);
- unique attributes hold a value no other item of the design holds (`DodiAttributeUniqueViolated`);
- the item's collection is one of the design's (`ItemCollectionConstraintViolated`) and its
  geometry is present where the design requires it (`ItemGeometryConstraintViolated`).
Setting an attribute to null clears it: the attribute is then absent from the item, as in Alloy.
On create, attributes with a default value in their options get it when they are not given.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from alloysync.emulator.attribute_options import LinkOptions
from alloysync.emulator.checks import describe_json
from alloysync.emulator.designs import GEOMETRY_CODE, Design, DesignAttribute
from alloysync.emulator.errors import AlloyError, Category, bad_request


class ItemLookup(Protocol):
    """What the checks need to know about other items."""

    def design_of(self, item_id: str) -> str | None:
        """The design code of the item, or None when there is no such item."""

    def values_of(self, design_code: str, attribute_code: str) -> Iterable[tuple[str, Any]]:
        """(item id, value) of every item of the design that holds the attribute."""


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


def check_new_item(
    design: Design, collection: str, values: Mapping[str, Any], lookup: ItemLookup
) -> dict[str, Any]:
    """The attributes a new item is stored with (nulls dropped, defaults added, values normalised)."""
    _check_collection(design, collection)
    stored = _checked(design, values, lookup, item_id=None, current=None)
    for attribute in design.all_attributes:
        default = attribute.options.default_value
        if attribute.code not in stored and attribute.code not in values and default not in (None, ()):
            stored[attribute.code] = list(default) if isinstance(default, tuple) else default
    for attribute in design.all_attributes:
        if attribute.required and attribute.code not in stored:
            raise _required(design, attribute)
    _check_geometry(design, stored)
    return stored


def check_edit(
    design: Design,
    item_id: str,
    current: Mapping[str, Any],
    values: Mapping[str, Any],
    lookup: ItemLookup,
) -> dict[str, Any]:
    """The attributes of the item after a partial edit (the given attributes change, null clears)."""
    checked = _checked(design, values, lookup, item_id=item_id, current=current)
    attributes = dict(current)
    for code in values:
        if code in checked:
            attributes[code] = checked[code]
        else:
            attributes.pop(code, None)
    _check_geometry(design, attributes)
    return attributes


def _checked(
    design: Design,
    values: Mapping[str, Any],
    lookup: ItemLookup,
    *,
    item_id: str | None,
    current: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The non-null values, checked and normalised (null values are left out)."""
    checked: dict[str, Any] = {}
    for code, value in values.items():
        attribute = design.attribute(code)
        if attribute is None:
            raise bad_request(
                f"attribute {code} is not an attribute of design {design.code} ({design.name}); "
                f"GET /api/design/{design.code} lists its attributes",
                Category.DODI_ATTRIBUTE_NOT_IN_DESIGN,
                {"attributeCode": code, "designCode": design.code},
            )
        if current is not None and attribute.readonly and current.get(code) != value:
            raise bad_request(
                f"{attribute.subject.describe()} is readonly: it can only be set when the item is created",
                Category.DODI_ATTRIBUTE_READONLY_VIOLATED,
                {"attributeCode": code},
            )
        if value is None:
            if attribute.required:
                raise _required(design, attribute)
            continue
        stored = attribute.options.check(value, attribute.subject)
        if isinstance(attribute.options, LinkOptions):
            _check_links(attribute, attribute.options, stored, lookup)
        if attribute.unique:
            _check_unique(design, attribute, stored, item_id, lookup)
        checked[code] = stored
    return checked


def _required(design: Design, attribute: DesignAttribute) -> AlloyError:
    return bad_request(
        f"{attribute.subject.describe()} is required on items of design {design.code}: give it a value",
        Category.DODI_ATTRIBUTE_REQUIRED_VIOLATED,
        {"attributeCode": attribute.code},
    )


def _check_links(
    attribute: DesignAttribute, options: LinkOptions, ids: list[str], lookup: ItemLookup
) -> None:
    for linked in ids:
        linked_design = lookup.design_of(linked)
        if linked_design is None:
            raise bad_request(
                f"{attribute.subject.describe()} links item {linked}, which does not exist",
                Category.DODI_ATTRIBUTE_LINK_ITEM_NOT_FOUND,
                {"attributeCode": attribute.code, "itemId": linked},
            )
        if options.code.startswith("designs_") and linked_design != options.code:
            raise attribute.subject.constraint_violated(
                f"item {linked} is of design {linked_design}; this attribute links items of {options.code}"
            )


def _check_unique(
    design: Design, attribute: DesignAttribute, value: Any, item_id: str | None, lookup: ItemLookup
) -> None:
    for holder, held in lookup.values_of(design.code, attribute.code):
        if held == value and holder != item_id:
            raise bad_request(
                f"{attribute.subject.describe()} is unique: item {holder} already holds "
                f"{describe_json(value)}",
                Category.DODI_ATTRIBUTE_UNIQUE_VIOLATED,
                {"attributeCode": attribute.code, "itemId": holder},
            )


def _check_collection(design: Design, collection: str) -> None:
    if collection not in design.allowed_collections:
        raise bad_request(
            f"items of design {design.code} can be created in the collections "
            f"{', '.join(design.allowed_collections)}, not {collection!r}",
            Category.ITEM_COLLECTION_CONSTRAINT_VIOLATED,
            {"designCode": design.code, "collection": collection},
        )


def _check_geometry(design: Design, attributes: Mapping[str, Any]) -> None:
    geometry = attributes.get(GEOMETRY_CODE)
    if geometry is None:
        if design.geometry_required:
            raise bad_request(
                f"items of design {design.code} need a geometry: set {GEOMETRY_CODE}",
                Category.ITEM_GEOMETRY_CONSTRAINT_VIOLATED,
                {"attributeCode": GEOMETRY_CODE},
            )
        return
    if geometry.get("type") not in design.allowed_geometries:
        raise bad_request(
            f"items of design {design.code} allow the geometries {', '.join(design.allowed_geometries)}, "
            f"not {geometry.get('type')}",
            Category.ITEM_GEOMETRY_CONSTRAINT_VIOLATED,
            {"attributeCode": GEOMETRY_CODE},
        )

"""Items are checked against their design: unknown designs and attributes, types, limits, required,
readonly and unique attributes, links, geometry, collections; and titles rendered from templates."""

from __future__ import annotations

from typing import Any

import pytest

from tests.emulator.aqs_nodes import JOBS, attribute_values
from tests.support.emulator import EmulatorProcess

STRING = "DodiAttributeOptionsStringWebModel"
NUMBER = "DodiAttributeOptionsNumberWebModel"


def _attributes(values: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"attributeCode": code, "value": value} for code, value in values.items()]


def _create(emu: EmulatorProcess, design: str, values: dict[str, Any], **fields: Any) -> tuple[int, Any]:
    return emu.request(
        "POST", "/api/item", {"designCode": design, "attributes": _attributes(values), **fields}
    )


def _edit(emu: EmulatorProcess, item: dict[str, Any], values: dict[str, Any]) -> tuple[int, Any]:
    current = emu.get_item(item["itemId"])
    body = {"signature": current["signature"], "attributes": _attributes(values)}
    return emu.request("PUT", f"/api/item/{item['itemId']}", body)


def _refused(answer: tuple[int, Any], category: str, *fragments: str) -> dict[str, Any]:
    status, body = answer
    assert (status, body["category"], body["httpStatusCode"]) == (400, category, 400), body
    for fragment in fragments:
        assert fragment in body["message"], body["message"]
    payload: dict[str, Any] = body
    return payload


class Parts:
    """A design made through Alloy's API, with an attribute of every kind the checks cover."""

    def __init__(self, emu: EmulatorProcess) -> None:
        self.design = emu.create_design("Parts")["code"]
        add = emu.add_attribute
        self.code = add(
            self.design, "Code", {"min": 2, "max": 8, "regex": "^[A-Z]+$", "discriminator": STRING}
        )
        self.count = add(
            self.design, "Count", {"decimalPlaces": 0, "min": 0, "max": 100, "discriminator": NUMBER}
        )
        self.price = add(self.design, "Price", {"decimalPlaces": 2, "discriminator": NUMBER})
        self.serial = add(self.design, "Serial", {"discriminator": STRING}, readonly=True, unique=True)
        self.kind = add(
            self.design, "Kind", {"defaultValue": "spare", "discriminator": STRING}, required=True
        )
        self.checked = add(
            self.design,
            "Checked",
            {"precision": "Minutes", "discriminator": "DodiAttributeOptionsDateTimeWebModel"},
        )
        self.made = add(self.design, "Made", {"discriminator": "DodiAttributeOptionsDateWebModel"})
        link = {
            "code": self.design,
            "graph": "Lookup",
            "weakReference": True,
            "max": 1,
            "discriminator": "DodiAttributeOptionsLinkWebModel",
        }
        self.parent = add(self.design, "Parent", link)


@pytest.fixture
def parts(emu: EmulatorProcess) -> Parts:
    return Parts(emu)


def test_an_item_of_an_unknown_design_is_refused(emu: EmulatorProcess) -> None:
    body = _refused(_create(emu, "designs_nowhere", {}), "DesignNotFound", "designs_nowhere")
    assert body["errorData"] == {"designCode": "designs_nowhere"}
    status, body = emu.request("POST", "/_emulator/items", {"items": [{"designCode": "designs_nowhere"}]})
    assert (status, body["category"]) == (400, "DesignNotFound")


def test_an_attribute_the_design_lacks_is_refused_on_create_and_edit(emu: EmulatorProcess) -> None:
    body = _refused(
        _create(emu, JOBS, {"attributes_itemsTitle": "t", "attributes_alloysyncJobsColour": "red"}),
        "DodiAttributeNotInDesign",
        "attributes_alloysyncJobsColour",
        JOBS,
    )
    assert body["errorData"]["attributeCode"] == "attributes_alloysyncJobsColour"
    item = emu.create_item(JOBS, {"attributes_itemsTitle": "t"})
    _refused(_edit(emu, item, {"attributes_nope": 1}), "DodiAttributeNotInDesign", "attributes_nope")
    assert attribute_values(emu.get_item(item["itemId"])) == {"attributes_itemsTitle": "t"}


def test_a_string_longer_than_its_max_is_refused_naming_the_attribute(emu: EmulatorProcess) -> None:
    body = _refused(
        _create(emu, JOBS, {"attributes_alloysyncJobsStatus": "S" * 21}),
        "DodiAttributeOptionConstraintViolated",
        "attributes_alloysyncJobsStatus (Status)",
        "at most 20",
    )
    assert body["errorData"] == {"attributeCode": "attributes_alloysyncJobsStatus"}
    assert emu.create_item(JOBS, {"attributes_alloysyncJobsStatus": "S" * 20})


@pytest.mark.parametrize(
    ("code", "value"),
    [
        ("attributes_alloysyncJobsOverlap", 3),
        ("attributes_alloysyncJobsCancelRequested", "yes"),
        ("attributes_alloysyncJobsConsecutiveFailures", "2"),
        ("attributes_alloysyncJobsLastSucceeded", "2024-07-02"),
        ("attributes_alloysyncJobsNotify", ["a@example.org"]),
    ],
)
def test_every_job_attribute_is_typed(emu: EmulatorProcess, code: str, value: Any) -> None:
    _refused(_create(emu, JOBS, {code: value}), "DodiAttributeTypeViolated", code)


@pytest.mark.parametrize(
    ("field", "value", "category", "fragment"),
    [
        ("code", 5, "DodiAttributeTypeViolated", "must be a string"),
        ("code", "A", "DodiAttributeOptionConstraintViolated", "at least 2"),
        ("code", "ABCDEFGHI", "DodiAttributeOptionConstraintViolated", "at most 8"),
        ("code", "abc", "DodiAttributeOptionConstraintViolated", "pattern"),
        ("count", "3", "DodiAttributeTypeViolated", "must be a number"),
        ("count", -1, "DodiAttributeOptionConstraintViolated", "below the minimum"),
        ("count", 101, "DodiAttributeOptionConstraintViolated", "above the maximum"),
        ("count", 1.5, "DodiAttributeOptionConstraintViolated", "decimal places"),
        ("price", 1.005, "DodiAttributeOptionConstraintViolated", "more than 2 decimal places"),
        ("checked", "yesterday", "DodiAttributeTypeViolated", "ISO-8601"),
        ("made", "2024-02-30", "DodiAttributeTypeViolated", "a date"),
        ("parent", "0123456789abcdef01234567", "DodiAttributeTypeViolated", "array of item ids"),
        ("parent", ["0123456789abcdef01234567"], "DodiAttributeLinkItemNotFound", "does not exist"),
        ("kind", None, "DodiAttributeRequiredViolated", "required"),
    ],
)
def test_values_are_checked_against_the_options(
    emu: EmulatorProcess, parts: Parts, field: str, value: Any, category: str, fragment: str
) -> None:
    code = getattr(parts, field)
    body = _refused(_create(emu, parts.design, {code: value}), category, code, fragment)
    assert body["errorData"]["attributeCode"] == code


def test_good_values_are_stored_normalised_with_defaults(emu: EmulatorProcess, parts: Parts) -> None:
    parent = emu.create_item(parts.design, {parts.code: "BASE"})
    item = emu.create_item(
        parts.design,
        {
            "attributes_itemsTitle": "bolt",
            parts.code: "BLT",
            parts.count: 7,
            parts.price: 0.25,
            parts.checked: "2024-07-02T10:11:12.345+01:00",
            parts.made: "2024-07-02",
            parts.parent: [parent["itemId"]],
        },
    )
    values = attribute_values(item)
    assert values[parts.checked] == "2024-07-02T09:11:00.000Z"  # precision Minutes
    assert values[parts.kind] == "spare"  # the default value
    assert values[parts.parent] == [parent["itemId"]]


def test_without_templates_the_title_is_the_title_attribute(emu: EmulatorProcess, parts: Parts) -> None:
    item = emu.create_item(parts.design, {"attributes_itemsTitle": "bolt", parts.code: "BLT"})
    assert (item["title"], item["subtitle"]) == ("bolt", "")


def test_titles_and_subtitles_are_rendered_from_the_templates(emu: EmulatorProcess) -> None:
    design = emu.create_design("Lamp posts", title="LP {{attributes_itemsTitle}}", subtitle="lamp post")
    post = emu.create_item(design["code"], {"attributes_itemsTitle": "7"})
    assert (post["title"], post["subtitle"]) == ("LP 7", "lamp post")
    counters = emu.define_design(
        "designs_counters",
        {"attributes_count": "Number", "attributes_where": "String", "attributes_open": "Boolean"},
        title="C-{{attributes_count}}",
        subtitle="{{ attributes_where }} / {{attributes_missing}} / {{attributes_open}}",
    )
    item = emu.create_item(
        counters["code"], {"attributes_count": 7, "attributes_where": "yard", "attributes_open": True}
    )
    assert (item["title"], item["subtitle"]) == ("C-7", "yard /  / true")
    edited = emu.edit_item(item["itemId"], {"attributes_count": 8, "attributes_where": None})
    assert (edited["title"], edited["subtitle"]) == ("C-8", " /  / true")


def test_readonly_attributes_are_set_once(emu: EmulatorProcess, parts: Parts) -> None:
    item = emu.create_item(parts.design, {parts.serial: "S-1"})
    _refused(_edit(emu, item, {parts.serial: "S-2"}), "DodiAttributeReadonlyViolated", parts.serial)
    assert _edit(emu, item, {parts.serial: "S-1", parts.count: 1})[0] == 200  # unchanged: allowed


def test_unique_attributes_hold_values_no_other_item_holds(emu: EmulatorProcess, parts: Parts) -> None:
    first = emu.create_item(parts.design, {parts.serial: "S-1"})
    body = _refused(
        _create(emu, parts.design, {parts.serial: "S-1"}), "DodiAttributeUniqueViolated", parts.serial
    )
    assert body["errorData"]["itemId"] == first["itemId"]
    assert emu.create_item(parts.design, {parts.serial: "S-2"})


def test_required_attributes_cannot_be_cleared(emu: EmulatorProcess, parts: Parts) -> None:
    item = emu.create_item(parts.design, {parts.kind: "tool"})
    _refused(_edit(emu, item, {parts.kind: None}), "DodiAttributeRequiredViolated", parts.kind)


def test_links_must_point_at_items_of_the_linked_design(emu: EmulatorProcess, parts: Parts) -> None:
    job = emu.create_item(JOBS, {"attributes_itemsTitle": "a job"})
    _refused(
        _create(emu, parts.design, {parts.parent: [job["itemId"]]}),
        "DodiAttributeOptionConstraintViolated",
        parts.parent,
        JOBS,
    )
    one = emu.create_item(parts.design, {})
    two = emu.create_item(parts.design, {})
    _refused(
        _create(emu, parts.design, {parts.parent: [one["itemId"], two["itemId"]]}),
        "DodiAttributeOptionConstraintViolated",
        "at most 1",
    )


def test_geometry_is_the_items_geometry_attribute(emu: EmulatorProcess) -> None:
    point = {"type": "Point", "coordinates": [-1.5, 52.1]}
    item = emu.create_item(JOBS, {"attributes_itemsGeometry": point})
    assert item["geometry"] == point
    assert emu.create_item(JOBS, {})["geometry"] is None
    _refused(
        _create(emu, JOBS, {"attributes_itemsGeometry": {"type": "Circle", "radius": 3}}),
        "DodiAttributeTypeViolated",
        "attributes_itemsGeometry",
        "GeoJSON",
    )


def test_a_design_can_require_and_restrict_geometry(emu: EmulatorProcess) -> None:
    design = emu.create_design("Posts", geometryRequired=True, geometryAllows=["Point"])
    _refused(_create(emu, design["code"], {}), "ItemGeometryConstraintViolated", "attributes_itemsGeometry")
    line = {"type": "LineString", "coordinates": [[0, 0], [1, 1]]}
    _refused(
        _create(emu, design["code"], {"attributes_itemsGeometry": line}),
        "ItemGeometryConstraintViolated",
        "LineString",
    )
    assert emu.create_item(
        design["code"], {"attributes_itemsGeometry": {"type": "Point", "coordinates": [0, 0]}}
    )


def test_items_go_into_the_designs_collections(emu: EmulatorProcess) -> None:
    _refused(_create(emu, JOBS, {}, collection="Inventory"), "ItemCollectionConstraintViolated", "Inventory")
    assert emu.create_item(JOBS, {}, collection="Archive")["collection"] == "Archive"


def test_bulk_create_checks_every_item_and_creates_none_on_a_refusal(emu: EmulatorProcess) -> None:
    good = {"designCode": JOBS, "attributes": _attributes({"attributes_itemsTitle": "fine"})}
    bad = {"designCode": JOBS, "attributes": _attributes({"attributes_alloysyncJobsEnabled": "yes"})}
    status, body = emu.request("POST", "/_emulator/items", {"items": [good, bad]})
    assert (status, body["category"]) == (400, "DodiAttributeTypeViolated")
    assert "attributes_alloysyncJobsEnabled" in body["message"]
    assert emu.admin("GET", "items") == {"items": []}

"""Designs over HTTP: create, read, list, add attributes with typed options, generated codes, signatures."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.support.emulator import EmulatorProcess

HEX24 = r"[0-9a-f]{24}"
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
STRING = "DodiAttributeOptionsStringWebModel"
INTERFACE_ATTRIBUTES = {
    "attributes_itemsTitle": ("Title", "String"),
    "attributes_itemsSubtitle": ("Subtitle", "String"),
    "attributes_itemsGeometry": ("Geometry", "GeoJson"),
}


def _attribute_body(name: str, options: dict[str, Any], signature: str, **fields: Any) -> dict[str, Any]:
    return {
        "name": name,
        "required": False,
        "readonly": False,
        "unique": False,
        "tags": [],
        "options": options,
        "signature": signature,
        **fields,
    }


def _add(emu: EmulatorProcess, code: str, body: dict[str, Any]) -> tuple[int, Any]:
    return emu.request("POST", f"/api/design/{code}/attribute", body)


def test_a_created_design_has_a_generated_code_the_items_interface_and_a_signature(
    emu: EmulatorProcess,
) -> None:
    status, body = emu.request(
        "POST", "/api/design", {"name": "Customer Report Defect", "colour": "#f9bc13", "icon": "icon-x"}
    )
    assert status == 200
    assert set(body) == {"design", "operationsSummary"}
    design = body["design"]
    assert re.fullmatch(rf"designs_customerReportDefect_{HEX24}", design["code"])
    assert (design["name"], design["context"], design["discriminator"]) == (
        "Customer Report Defect",
        "Customer",
        "DesignWebModel",
    )
    assert design["implements"] == [
        {"code": "designInterfaces_items", "parent": design["code"], "context": "Customer"}
    ]
    metadata = design["metadata"]
    assert re.fullmatch(HEX24, metadata["signature"])
    assert TIMESTAMP.match(metadata["createdDate"]) and TIMESTAMP.match(metadata["lastEditDate"])
    assert metadata["createdUserUsername"] and metadata["lastEditUserUsername"]
    assert design["dodiColour"] == {"value": "#f9bc13", "parent": design["code"]}
    assert design["dodiIcon"] == {"value": "icon-x", "parent": design["code"]}
    assert design["geometryRequired"]["value"] is False
    assert "Point" in design["geometryAllows"]["values"]
    assert {a["code"]: (a["name"], a["type"]) for a in design["attributes"]} == INTERFACE_ATTRIBUTES
    for attribute in design["attributes"]:
        assert (attribute["parent"], attribute["context"]) == ("designInterfaces_items", "Core")
        assert attribute["options"]["discriminator"].startswith("DodiAttributeOptions")
    summary = body["operationsSummary"]
    assert summary["canCreateItems"] and summary["canEditItems"]
    assert {entry["attributeCode"] for entry in summary["attributeOperationsSummary"]} == set(
        INTERFACE_ATTRIBUTES
    )
    assert emu.get_design(design["code"]) == design


@pytest.mark.parametrize(
    ("design_name", "attribute_name", "design_part", "attribute_part"),
    [
        (
            "Customer Report Defect",
            "CRM Reference",
            "customerReportDefect",
            "customerReportDefectCRMReference",
        ),
        ("NCC_Lighting_Unit", "Lighting_Unit_Number", "nCCLightingUnit", "nCCLightingUnitLightingUnitNumber"),
        ("alloysync jobs", "Last run started", "alloysyncJobs", "alloysyncJobsLastRunStarted"),
        (
            "Inspection - Enquiry",
            "Comments (Internal)",
            "inspectionEnquiry",
            "inspectionEnquiryCommentsInternal",
        ),
    ],
)
def test_codes_are_made_from_the_names_with_a_24_hex_suffix(
    emu: EmulatorProcess, design_name: str, attribute_name: str, design_part: str, attribute_part: str
) -> None:
    design = emu.create_design(design_name)
    assert re.fullmatch(rf"designs_{design_part}_{HEX24}", design["code"])
    code = emu.add_attribute(design["code"], attribute_name, {"discriminator": STRING})
    assert re.fullmatch(rf"attributes_{attribute_part}_{HEX24}", code)


def test_two_designs_of_the_same_name_get_different_codes(emu: EmulatorProcess) -> None:
    assert emu.create_design("Twins")["code"] != emu.create_design("Twins")["code"]


TYPED_OPTIONS: list[tuple[str, dict[str, Any]]] = [
    ("String", {"min": 0, "max": 4000, "regex": "^[A-Z]", "discriminator": STRING}),
    (
        "Number",
        {"decimalPlaces": 0, "min": 0, "max": 1e6, "discriminator": "DodiAttributeOptionsNumberWebModel"},
    ),
    ("Boolean", {"defaultValue": False, "discriminator": "DodiAttributeOptionsBooleanWebModel"}),
    ("DateTime", {"precision": "Milliseconds", "discriminator": "DodiAttributeOptionsDateTimeWebModel"}),
    ("Date", {"min": "2020-01-01", "discriminator": "DodiAttributeOptionsDateWebModel"}),
    ("Json", {"discriminator": "DodiAttributeOptionsJsonWebModel"}),
    ("GeoJson", {"allows": ["Point", "Polygon"], "discriminator": "DodiAttributeOptionsGeoJsonWebModel"}),
]


@pytest.mark.parametrize(("kind", "options"), TYPED_OPTIONS, ids=[kind for kind, _ in TYPED_OPTIONS])
def test_adding_an_attribute_takes_typed_options_and_gives_the_design_a_new_signature(
    emu: EmulatorProcess, kind: str, options: dict[str, Any]
) -> None:
    design = emu.create_design("Typed things")
    signature = design["metadata"]["signature"]
    status, body = _add(
        emu, design["code"], _attribute_body(f"A {kind}", options, signature, tags=["Tagged"])
    )
    assert status == 200, body
    assert set(body) == {"attributeCode", "designWithOperationsSummary"}
    assert set(body["designWithOperationsSummary"]) == {"design", "operationsSummary"}
    changed = body["designWithOperationsSummary"]["design"]
    assert changed["metadata"]["signature"] != signature
    attribute = next(a for a in changed["attributes"] if a["code"] == body["attributeCode"])
    assert attribute == {
        "name": f"A {kind}",
        "code": body["attributeCode"],
        "parent": design["code"],
        "context": "Customer",
        "type": kind,
        "required": False,
        "readonly": False,
        "unique": False,
        "tags": ["Tagged"],
        "options": options,
    }
    assert changed["attributes"][0] == attribute  # own attributes first, then the interface's
    assert emu.get_design(design["code"]) == changed


def test_a_link_attribute_names_an_existing_design(emu: EmulatorProcess) -> None:
    target = emu.create_design("Fault type")
    design = emu.create_design("Lighting defect")
    link = {
        "code": target["code"],
        "graph": "Lookup",
        "weakReference": True,
        "max": 1,
        "discriminator": "DodiAttributeOptionsLinkWebModel",
    }
    code = emu.add_attribute(design["code"], "Fault type", link)
    attribute = next(a for a in emu.get_design(design["code"])["attributes"] if a["code"] == code)
    assert (attribute["type"], attribute["options"]) == ("Link", link)
    signature = emu.get_design(design["code"])["metadata"]["signature"]
    status, body = _add(
        emu, design["code"], _attribute_body("Source", {**link, "code": "designs_nowhere"}, signature)
    )
    assert (status, body["category"]) == (400, "DodiAttributeOptionInvalid")
    assert "designs_nowhere" in body["message"]


def test_a_stale_design_signature_is_refused_like_an_item_signature(emu: EmulatorProcess) -> None:
    design = emu.create_design("Contested")
    stale = design["metadata"]["signature"]
    emu.add_attribute(design["code"], "First", {"discriminator": STRING})
    status, body = _add(emu, design["code"], _attribute_body("Second", {"discriminator": STRING}, stale))
    assert (status, body["category"], body["httpStatusCode"]) == (409, "DesignSignatureMismatch", 409)
    assert "Second" not in {a["name"] for a in emu.get_design(design["code"])["attributes"]}


def test_every_change_gives_a_new_signature(emu: EmulatorProcess) -> None:
    design = emu.create_design("Busy")
    signatures = {design["metadata"]["signature"]}
    for name in ("One", "Two", "Three"):
        emu.add_attribute(design["code"], name, {"discriminator": STRING})
        signatures.add(emu.get_design(design["code"])["metadata"]["signature"])
    assert len(signatures) == 4


def test_an_unknown_design_is_a_404_design_not_found(emu: EmulatorProcess) -> None:
    missing = f"designs_missing_{'0' * 24}"
    status, body = emu.request("GET", f"/api/design/{missing}")
    assert (status, body["category"]) == (404, "DesignNotFound")
    assert missing in body["message"]
    status, body = _add(emu, missing, _attribute_body("X", {"discriminator": STRING}, "0" * 24))
    assert (status, body["category"]) == (404, "DesignNotFound")


@pytest.mark.parametrize(
    ("body", "category", "fragment"),
    [
        ({}, "BadRequest", "name is required"),
        ({"name": "  "}, "BadRequest", "name is required"),
        ({"name": "---"}, "BadRequest", "letter or digit"),
        ({"name": "X", "code": "designs_mine"}, "BadRequest", "has no field code"),
        ({"name": "X", "colour": "red"}, "BadRequest", "#rrggbb"),
        ({"name": "X", "geometryAllows": ["Circle"]}, "BadRequest", "geometryAllows"),
        ({"name": "X", "collections": ["Attic"]}, "BadRequest", "collections"),
    ],
)
def test_bad_design_create_requests_say_what_is_wrong(
    emu: EmulatorProcess, body: dict[str, Any], category: str, fragment: str
) -> None:
    status, payload = emu.request("POST", "/api/design", body)
    assert (status, payload["category"]) == (400, category)
    assert fragment in payload["message"], payload["message"]


@pytest.mark.parametrize(
    ("change", "category", "fragment"),
    [
        ({"signature": None}, "BadRequest", "signature is required"),
        ({"options": None}, "DodiAttributeOptionsMalformed", "options must be an object"),
        ({"type": "String"}, "BadRequest", "has no field type"),
        ({"name": ""}, "BadRequest", "name is required"),
        ({"required": "no"}, "BadRequest", "required must be true or false"),
        ({"options": {"discriminator": "String"}}, "DodiAttributeOptionsMalformed", "discriminator"),
        (
            {"options": {"discriminator": "DodiAttributeOptionsTimeWebModel"}},
            "DodiAttributeOptionsMalformed",
            "does not support Time",
        ),
        ({"options": {"max": "long", "discriminator": STRING}}, "DodiAttributeOptionsMalformed", "max"),
        ({"options": {"length": 5, "discriminator": STRING}}, "DodiAttributeOptionsMalformed", "length"),
        (
            {"options": {"min": 5, "max": 1, "discriminator": STRING}},
            "DodiAttributeOptionInvalid",
            "above max",
        ),
        ({"options": {"regex": "(", "discriminator": STRING}}, "DodiAttributeOptionInvalid", "regex"),
        (
            {"options": {"max": 3, "defaultValue": "toolong", "discriminator": STRING}},
            "DodiAttributeOptionInvalid",
            "defaultValue",
        ),
        (
            {"options": {"discriminator": "DodiAttributeOptionsNumberWebModel"}},
            "DodiAttributeOptionsMalformed",
            "decimalPlaces is required",
        ),
        (
            {"options": {"precision": "Hours", "discriminator": "DodiAttributeOptionsDateTimeWebModel"}},
            "DodiAttributeOptionsMalformed",
            "precision",
        ),
        (
            {"options": {"graph": "Lookup", "discriminator": "DodiAttributeOptionsLinkWebModel"}},
            "DodiAttributeOptionsMalformed",
            "code is required",
        ),
    ],
)
def test_bad_attribute_requests_say_what_is_wrong(
    emu: EmulatorProcess, change: dict[str, Any], category: str, fragment: str
) -> None:
    design = emu.create_design("Strict")
    body = _attribute_body("Field", {"discriminator": STRING}, design["metadata"]["signature"])
    body.update(change)
    body = {key: value for key, value in body.items() if value is not None or key == "options"}
    status, payload = _add(emu, design["code"], body)
    assert (status, payload["category"]) == (400, category), payload
    assert fragment in payload["message"], payload["message"]
    assert emu.get_design(design["code"])["metadata"]["signature"] == design["metadata"]["signature"]


def test_attribute_names_are_unique_within_a_design(emu: EmulatorProcess) -> None:
    design = emu.create_design("Named")
    emu.add_attribute(design["code"], "Status", {"discriminator": STRING})
    signature = emu.get_design(design["code"])["metadata"]["signature"]
    status, body = _add(emu, design["code"], _attribute_body("status ", {"discriminator": STRING}, signature))
    assert (status, body["category"]) == (400, "BadRequest")
    assert "already has an attribute named 'Status'" in body["message"]


def test_designs_can_be_listed_and_found_by_name(emu: EmulatorProcess) -> None:
    first = emu.create_design("Street lights")
    emu.create_design("Gullies")
    status, body = emu.request("GET", "/api/design?query=street")
    assert status == 200
    assert [result["design"]["code"] for result in body["results"]] == [first["code"]]
    assert (body["page"], body["totalResults"], body["totalPages"]) == (1, 1, 1)
    status, body = emu.request("GET", "/api/design?Page=1&PageSize=2")
    assert (status, len(body["results"]), body["totalResults"]) == (200, 2, 3)  # with the jobs design


def test_the_admin_api_defines_designs_with_codes_of_its_own(emu: EmulatorProcess) -> None:
    design = emu.define_design("designs_widgets", {"attributes_n": "Number", "attributes_colour": "String"})
    assert design["code"] == "designs_widgets"
    assert {a["code"] for a in design["attributes"]} >= {"attributes_n", "attributes_colour"}
    assert emu.get_design("designs_widgets") == design
    status, body = emu.request("POST", "/_emulator/designs", {"code": "designs_widgets", "name": "again"})
    assert status == 400 and "already a design" in body["message"]
    generated = emu.admin(
        "POST", "designs", {"name": "Generated", "attributes": [{"name": "A b", "type": "Json"}]}
    )
    assert re.fullmatch(rf"designs_generated_{HEX24}", generated["design"]["code"])
    assert re.fullmatch(rf"attributes_generatedAB_{HEX24}", generated["design"]["attributes"][0]["code"])

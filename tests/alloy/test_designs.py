"""The design models: Alloy's design documents (shapes as recorded from real tenants), parsed leniently."""

from __future__ import annotations

from typing import Any

import pytest

from alloysync.alloy.designs import Design, NewAttribute, attribute_options, normalise_name

SIGNATURE = "65a1c0ffee65a1c0ffee65a1"
DESIGN_CODE = "designs_streetLightFault_65a1b2c3d4e5f60718293a4b"


def _attribute(
    name: str, code: str, attribute_type: str, options: dict[str, Any], **more: Any
) -> dict[str, Any]:
    return {
        "name": name,
        "code": code,
        "parent": more.pop("parent", DESIGN_CODE),
        "context": more.pop("context", "Customer"),
        "type": attribute_type,
        "required": False,
        "readonly": False,
        "unique": False,
        "tags": [],
        "options": options,
        **more,
    }


# The shape of `GET /api/design/{code}` as real Alloy sends it: the design wrapped with its
# operations summary, generated codes with a 24-hex suffix, interface attributes with plain codes.
RESPONSE: dict[str, Any] = {
    "design": {
        "name": "Street Light Fault",
        "code": DESIGN_CODE,
        "context": "Customer",
        "implements": [{"code": "designInterfaces_items", "parent": DESIGN_CODE}],
        "attributes": [
            _attribute(
                "Reported At",
                "attributes_streetLightFaultReportedAt_65a1b2c3d4e5f60718293a4c",
                "DateTime",
                {"precision": "Minutes", "discriminator": "DodiAttributeOptionsDateTimeWebModel"},
            ),
            _attribute(
                "Caller Notes",
                "attributes_streetLightFaultCallerNotes_65a1b2c3d4e5f60718293a4d",
                "String",
                {"min": 0, "max": 999, "discriminator": "DodiAttributeOptionsStringWebModel"},
            ),
            _attribute(
                "Column",
                "attributes_streetLightFaultColumn_65a1b2c3d4e5f60718293a4e",
                "Link",
                {
                    "code": "designs_columns_65a1b2c3d4e5f60718293a4f",
                    "graph": "Lookup",
                    "weakReference": True,
                    "max": 1,
                    "defaultValue": [],
                    "discriminator": "DodiAttributeOptionsLinkWebModel",
                },
                required=True,
            ),
            _attribute(
                "Visits",
                "attributes_streetLightFaultVisits_65a1b2c3d4e5f60718293a50",
                "Number",
                {"decimalPlaces": 0, "min": 0.0, "discriminator": "DodiAttributeOptionsNumberWebModel"},
            ),
            _attribute(
                "Title",
                "attributes_itemsTitle",
                "String",
                {"discriminator": "DodiAttributeOptionsStringWebModel"},
                parent="designInterfaces_items",
                context="Core",
                tags=["Computed"],
            ),
            # Odd but seen in lenient parsing: nulls where lists and objects are expected.
            {"name": "Legacy", "code": "attributes_legacy", "type": "String", "tags": None, "options": None},
        ],
        "metadata": {
            "createdDate": "2024-01-12T09:15:00.123Z",
            "createdUserUsername": "someone",
            "lastEditDate": "2024-03-01T10:00:00.000Z",
            "lastEditUserUsername": "someone.else",
            "signature": SIGNATURE,
        },
        "geometryRequired": {"value": False, "parent": "engine_defaultedProperties"},
        "discriminator": "DesignWebModel",
    },
    "operationsSummary": {"canWrite": True, "attributes": []},
}


def test_a_recorded_shape_design_parses_with_everything_kept() -> None:
    design = Design.model_validate(RESPONSE["design"])

    assert design.code == DESIGN_CODE and design.name == "Street Light Fault"
    assert design.signature == SIGNATURE
    assert [implemented.code for implemented in design.implements] == ["designInterfaces_items"]
    assert len(design.attributes) == 6
    notes = design.attributes_named("  caller   NOTES ")
    assert [attribute.code for attribute in notes] == [
        "attributes_streetLightFaultCallerNotes_65a1b2c3d4e5f60718293a4d"
    ]
    assert notes[0].max_length == 999
    title = design.attribute("attributes_itemsTitle")
    assert title is not None and title.tags == ["Computed"] and title.max_length is None
    column = design.attributes_named("Column")[0]
    assert column.required and column.max_length is None  # a Link's max is a count of items, not a length
    assert column.options.model_extra == {
        "code": "designs_columns_65a1b2c3d4e5f60718293a4f",
        "graph": "Lookup",
        "weakReference": True,
    }
    legacy = design.attribute("attributes_legacy")
    assert legacy is not None and legacy.tags == [] and legacy.options.discriminator is None
    assert design.model_extra is not None and "geometryRequired" in design.model_extra


def test_a_minimal_design_gets_defaults() -> None:
    design = Design.model_validate({"code": "designs_x"})
    assert design.attributes == [] and design.signature is None and design.attribute("anything") is None


def test_names_compare_trimmed_and_without_case() -> None:
    assert normalise_name("  Run   requested ") == normalise_name("RUN REQUESTED") == "run requested"
    assert normalise_name("Run requested") != normalise_name("Runrequested")


@pytest.mark.parametrize(
    ("attribute_type", "max_length", "expected"),
    [
        ("String", 4000, {"discriminator": "DodiAttributeOptionsStringWebModel", "max": 4000}),
        ("String", None, {"discriminator": "DodiAttributeOptionsStringWebModel"}),
        (
            "Number",
            None,
            {"discriminator": "DodiAttributeOptionsNumberWebModel", "decimalPlaces": 0, "min": 0},
        ),
        ("Boolean", None, {"discriminator": "DodiAttributeOptionsBooleanWebModel"}),
        (
            "DateTime",
            None,
            {"discriminator": "DodiAttributeOptionsDateTimeWebModel", "precision": "Milliseconds"},
        ),
        ("Json", None, {"discriminator": "DodiAttributeOptionsJsonWebModel"}),
    ],
)
def test_attribute_options_follow_alloys_options_models(
    attribute_type: str, max_length: int | None, expected: dict[str, Any]
) -> None:
    assert attribute_options(attribute_type, max_length=max_length) == expected


def test_unknown_attribute_types_have_no_options() -> None:
    with pytest.raises(ValueError, match="Seasonal"):
        attribute_options("Seasonal")


def test_a_new_attribute_request_is_alloys_create_model() -> None:
    """`DodiAttributeCreateWebRequestModel`: no type field (the options' discriminator says it)."""
    new = NewAttribute("Status", "String", attribute_options("String", max_length=20))
    assert new.wire("sig-1") == {
        "name": "Status",
        "required": False,
        "readonly": False,
        "unique": False,
        "tags": [],
        "options": {"discriminator": "DodiAttributeOptionsStringWebModel", "max": 20},
        "signature": "sig-1",
    }

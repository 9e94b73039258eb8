"""AQS builders produce Alloy's node shape."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from alloysync.alloy import aqs


def test_query_with_one_filter() -> None:
    node = aqs.query(
        "designs_alloysyncJobs",
        aqs.equals(aqs.attribute("attributes_alloysyncJobsEnabled"), aqs.boolean(True)),
    )
    assert node == {
        "type": "Query",
        "properties": {
            "dodiCode": "designs_alloysyncJobs",
            "collectionCode": ["Live"],
            "attributes": ["All"],
        },
        "children": [
            {
                "type": "Equals",
                "properties": {},
                "children": [
                    {"type": "Attribute", "properties": {"attributeCode": "attributes_alloysyncJobsEnabled"}},
                    {"type": "Boolean", "properties": {"value": [True]}},
                ],
            }
        ],
    }


def test_query_combines_filters_with_and_and_sorts() -> None:
    since = datetime(2024, 7, 2, tzinfo=UTC)
    first = aqs.greater_than(aqs.item_property("lastEditDate"), aqs.datetime_value(since))
    second = aqs.or_(
        aqs.equals(aqs.attribute("a"), aqs.string("x", "y")),
        aqs.less_than(aqs.attribute("n"), aqs.number(3)),
    )
    node = aqs.query(
        "d", first, second, collection="Archive", attributes=["a", "n"], sort_by_last_edit="desc"
    )

    assert node["properties"] == {
        "dodiCode": "d",
        "collectionCode": ["Archive"],
        "attributes": ["a", "n"],
        "sortInfo": {"itemPropertyName": "lastEditDate", "sortOrder": "Descending"},
    }
    (root,) = node["children"]
    assert root["type"] == "And"
    assert root["children"] == [first, second]
    assert first["children"][1] == {"type": "DateTime", "properties": {"value": ["2024-07-02T00:00:00.000Z"]}}
    assert first["children"][0] == {
        "type": "ItemProperty",
        "properties": {"itemPropertyName": "lastEditDate"},
    }
    assert second["type"] == "Or" and len(second["children"]) == 2


def test_query_without_filters_has_no_children() -> None:
    assert "children" not in aqs.query("d")
    assert aqs.query("d", sort_by_last_edit="asc")["properties"]["sortInfo"]["sortOrder"] == "Ascending"


def test_single_condition_groups_collapse() -> None:
    condition = aqs.equals(aqs.attribute("a"), aqs.string("x"))
    assert aqs.and_(condition) is condition
    assert aqs.or_(condition) is condition
    with pytest.raises(ValueError, match="at least one"):
        aqs.and_()

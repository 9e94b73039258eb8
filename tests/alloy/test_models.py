"""Item model and date-time helpers: examples plus property tests over arbitrary wire data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alloysync.alloy.models import Attribute, Item, format_alloy_datetime, parse_alloy_datetime
from tests.alloy.strategies import alloy_datetimes, raw_items

LINKED = ["5f3a9c1e2b4d6e8f0a1b2c3e", "5f3a9c1e2b4d6e8f0a1b2c3f"]
REAL_ITEM: dict[str, Any] = {
    "itemId": "5f3a9c1e2b4d6e8f0a1b2c3d",
    "designCode": "designs_alloysyncJobs",
    "collection": "Live",
    "icon": "icon-cog",
    "colour": "#1a2b3c",
    "context": "Customer",
    "start": None,
    "end": None,
    "geometry": {"type": "Point", "coordinates": [-0.1, 51.5]},
    "locked": False,
    "createdDate": "2024-07-01T09:00:00.000Z",
    "lastEditDate": "2024-07-02T10:11:12.345Z",
    "signature": "sig-1",
    "someFutureField": {"nested": [1, 2, 3]},
    "attributes": [
        {"attributeCode": "attributes_itemsTitle", "value": "Nightly prices"},
        {"attributeCode": "attributes_alloysyncJobsEnabled", "value": True},
        {"attributeCode": "attributes_alloysyncJobsParams", "value": {"currency": "GBP"}},
        {"attributeCode": "attributes_alloysyncJobsRunCount", "value": 3},
        {
            "attributeCode": "attributes_assignedTo",
            "value": ["5f3a9c1e2b4d6e8f0a1b2c3e", "5f3a9c1e2b4d6e8f0a1b2c3f"],
        },
        {"attributeCode": "attributes_alloysyncJobsMessage", "value": None},
    ],
}


def test_real_item_with_extra_fields_parses_and_keeps_them() -> None:
    item = Item.model_validate(REAL_ITEM)

    assert item.itemId == REAL_ITEM["itemId"]
    assert item.lastEditDate == datetime(2024, 7, 2, 10, 11, 12, 345000, tzinfo=UTC)
    assert item.model_extra is not None
    assert item.model_extra["geometry"] == REAL_ITEM["geometry"]
    assert item.model_extra["someFutureField"] == {"nested": [1, 2, 3]}
    assert item.value("attributes_assignedTo") == LINKED
    assert item.value("attributes_alloysyncJobsParams") == {"currency": "GBP"}
    assert item.model_dump(mode="json") == REAL_ITEM


def test_value_values_and_has() -> None:
    item = Item(
        itemId="i1",
        designCode="d",
        attributes=[
            Attribute(attributeCode="a", value=1),
            Attribute(attributeCode="b", value=None),
            Attribute(attributeCode="a", value=2),
        ],
    )

    assert item.values() == {"a": 2, "b": None}
    assert item.value("a") == 2
    assert item.value("b", default="fallback") is None  # present with a null value
    assert item.value("missing", default="fallback") == "fallback"
    assert item.has("b")
    assert not item.has("missing")
    assert item.collection == "Live"
    assert item.signature is None and item.lastEditDate is None


def test_minimal_item_and_attribute_without_value() -> None:
    item = Item.model_validate({"itemId": "x", "designCode": "d", "attributes": [{"attributeCode": "a"}]})
    assert item.values() == {"a": None}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-07-02T00:00:00.000Z", datetime(2024, 7, 2, tzinfo=UTC)),
        ("2024-07-02T00:00:00Z", datetime(2024, 7, 2, tzinfo=UTC)),
        ("2024-07-02T00:00:00z", datetime(2024, 7, 2, tzinfo=UTC)),
        ("2024-07-02T02:00:00+02:00", datetime(2024, 7, 2, tzinfo=UTC)),
        ("2024-07-01T19:00:00.5-05:00", datetime(2024, 7, 2, 0, 0, 0, 500000, tzinfo=UTC)),
        ("2024-07-02T00:00:00.1234567Z", datetime(2024, 7, 2, 0, 0, 0, 123456, tzinfo=UTC)),
        ("2024-07-02T00:00:00", datetime(2024, 7, 2, tzinfo=UTC)),
        (" 2024-07-02T00:00:00.000Z ", datetime(2024, 7, 2, tzinfo=UTC)),
    ],
)
def test_parse_alloy_datetime(text: str, expected: datetime) -> None:
    parsed = parse_alloy_datetime(text)
    assert parsed == expected
    assert parsed.tzinfo is UTC


@pytest.mark.parametrize("text", ["", "yesterday", "2024-13-01T00:00:00Z", "2024-07-02T25:00:00Z"])
def test_parse_alloy_datetime_rejects_garbage(text: str) -> None:
    with pytest.raises(ValueError, match="ISO-8601"):
        parse_alloy_datetime(text)


def test_format_alloy_datetime() -> None:
    assert format_alloy_datetime(datetime(2024, 7, 2, tzinfo=UTC)) == "2024-07-02T00:00:00.000Z"
    assert format_alloy_datetime(
        datetime(2024, 7, 2, 2, 0, 0, 987654, tzinfo=timezone(timedelta(hours=2)))
    ) == ("2024-07-02T00:00:00.987Z")
    assert format_alloy_datetime(datetime(2024, 7, 2, 0, 0, 1)) == "2024-07-02T00:00:01.000Z"  # naive = UTC


@given(alloy_datetimes)
def test_datetime_round_trip(moment: datetime) -> None:
    text = format_alloy_datetime(moment)
    assert len(text) == 24 and text.endswith("Z")
    assert parse_alloy_datetime(text) == moment


@given(raw_items())
def test_any_valid_item_parses(raw: dict[str, Any]) -> None:
    item = Item.model_validate(raw)

    assert item.itemId == raw["itemId"]
    assert len(item.attributes) == len(raw["attributes"])
    for key, value in raw.items():
        if key not in Item.model_fields:
            assert item.model_extra is not None and item.model_extra[key] == value
    if "lastEditDate" in raw:
        assert item.lastEditDate is not None and item.lastEditDate.tzinfo is UTC


@given(raw_items())
def test_values_agree_with_the_attribute_list(raw: dict[str, Any]) -> None:
    item = Item.model_validate(raw)
    values = item.values()

    codes = [entry["attributeCode"] for entry in raw["attributes"]]
    assert set(values) == set(codes)
    for code in set(codes):
        last = [entry["value"] for entry in raw["attributes"] if entry["attributeCode"] == code][-1]
        assert values[code] == last
        assert item.value(code) == last
        assert item.has(code)
    assert not item.has("\x00not-a-code")
    assert item.value("\x00not-a-code", default=42) == 42


@given(raw_items())
def test_dump_and_parse_round_trip(raw: dict[str, Any]) -> None:
    item = Item.model_validate(raw)
    dumped = item.model_dump(mode="json")

    again = Item.model_validate(dumped)
    assert again == item
    assert again.model_dump(mode="json") == dumped
    if "lastEditDate" in raw:
        assert dumped["lastEditDate"] == format_alloy_datetime(parse_alloy_datetime(raw["lastEditDate"]))


@given(st.lists(st.tuples(st.text(max_size=5), st.integers()), max_size=10))
def test_values_last_wins(pairs: list[tuple[str, int]]) -> None:
    item = Item(
        itemId="i", designCode="d", attributes=[Attribute(attributeCode=c, value=v) for c, v in pairs]
    )
    assert item.values() == dict(pairs)

"""AQS queries: filters, attribute selection, sorting, paging, malformed queries, and queries held
against the designs. Items carry no dates (as from real Alloy), yet the `lastEditDate` and
`createdDate` item properties filter and sort."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.emulator.aqs_nodes import (
    JOBS,
    all_of,
    any_of,
    attribute,
    attribute_values,
    equals,
    greater_than,
    item_property,
    less_than,
    literal,
    node,
    query,
)
from tests.emulator.designs import OTHER, define_other
from tests.support.emulator import EmulatorProcess

TITLE = "attributes_itemsTitle"
ENABLED = "attributes_alloysyncJobsEnabled"
COUNT = "attributes_alloysyncJobsRunCount"
NEXT_RUN = "attributes_alloysyncJobsNextRun"


def _titles(emu: EmulatorProcess, aqs: dict[str, Any], **paging: int) -> list[str]:
    status, body = emu.query(aqs, **paging)
    assert status == 200, body
    return [str(attribute_values(item)[TITLE]) for item in body["results"]]


@pytest.fixture
def jobs(emu: EmulatorProcess) -> list[dict[str, Any]]:
    """Four job records and one item of another design."""
    define_other(emu)
    rows = [
        ("alpha", True, 3, "2024-07-01T00:00:00.000Z"),
        ("bravo", False, 1, "2024-07-02T00:00:00.000Z"),
        ("charlie", True, 2, "2024-07-03T00:00:00.000Z"),
        ("delta", True, None, None),
    ]
    items = []
    for title, enabled, count, next_run in rows:
        values: dict[str, Any] = {TITLE: title, ENABLED: enabled}
        if count is not None:
            values[COUNT] = count
            values[NEXT_RUN] = next_run
        items.append(
            {"designCode": JOBS, "attributes": [{"attributeCode": c, "value": v} for c, v in values.items()]}
        )
    items.append({"designCode": OTHER, "attributes": [{"attributeCode": TITLE, "value": "other"}]})
    return emu.bulk_create(items)


def test_the_design_selects_the_items(emu: EmulatorProcess, jobs: list[dict[str, Any]]) -> None:
    assert sorted(_titles(emu, query(JOBS))) == ["alpha", "bravo", "charlie", "delta"]
    assert _titles(emu, query(OTHER)) == ["other"]


def test_equals_on_strings_booleans_and_numbers(emu: EmulatorProcess, jobs: list[dict[str, Any]]) -> None:
    assert _titles(emu, query(JOBS, equals(attribute(TITLE), literal("String", "bravo")))) == ["bravo"]
    assert sorted(
        _titles(emu, query(JOBS, equals(attribute(TITLE), literal("String", "alpha", "delta", "x"))))
    ) == [
        "alpha",
        "delta",
    ]
    assert sorted(_titles(emu, query(JOBS, equals(attribute(ENABLED), literal("Boolean", True))))) == [
        "alpha",
        "charlie",
        "delta",
    ]
    assert _titles(emu, query(JOBS, equals(attribute(COUNT), literal("Number", 2)))) == ["charlie"]


def test_an_item_lacking_the_attribute_does_not_match(
    emu: EmulatorProcess, jobs: list[dict[str, Any]]
) -> None:
    titles = _titles(emu, query(JOBS, less_than(attribute(COUNT), literal("Number", 100))))
    assert sorted(titles) == ["alpha", "bravo", "charlie"]
    assert _titles(emu, query(JOBS, equals(attribute(COUNT), literal("String", "3")))) == []  # type differs


def test_greater_and_less_than_on_numbers_and_datetimes(
    emu: EmulatorProcess, jobs: list[dict[str, Any]]
) -> None:
    assert sorted(_titles(emu, query(JOBS, greater_than(attribute(COUNT), literal("Number", 1))))) == [
        "alpha",
        "charlie",
    ]
    after = greater_than(attribute(NEXT_RUN), literal("DateTime", "2024-07-01T00:00:00.000Z"))
    assert sorted(_titles(emu, query(JOBS, after))) == ["bravo", "charlie"]
    before = less_than(attribute(NEXT_RUN), literal("DateTime", "2024-07-02T00:00:00.000Z"))
    assert _titles(emu, query(JOBS, before)) == ["alpha"]


def test_and_or(emu: EmulatorProcess, jobs: list[dict[str, Any]]) -> None:
    enabled = equals(attribute(ENABLED), literal("Boolean", True))
    counted = greater_than(attribute(COUNT), literal("Number", 2))
    assert _titles(emu, query(JOBS, all_of(enabled, counted))) == ["alpha"]
    either = any_of(equals(attribute(TITLE), literal("String", "bravo")), counted)
    assert sorted(_titles(emu, query(JOBS, either))) == ["alpha", "bravo"]
    nested = all_of(enabled, any_of(counted, equals(attribute(TITLE), literal("String", "delta"))))
    assert sorted(_titles(emu, query(JOBS, nested))) == ["alpha", "delta"]


def _now_text() -> str:
    """The current time in Alloy's format, a little after everything done so far."""
    time.sleep(0.01)
    moment = datetime.now(UTC)
    time.sleep(0.01)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def test_last_edit_date_filter_finds_edited_items(emu: EmulatorProcess, jobs: list[dict[str, Any]]) -> None:
    assert all("lastEditDate" not in item for item in jobs)
    cursor = _now_text()  # a client's own clock: the items carry no dates
    newer = greater_than(item_property("lastEditDate"), literal("DateTime", cursor))
    assert _titles(emu, query(JOBS, newer)) == []
    emu.edit_item(jobs[1]["itemId"], {COUNT: 10})
    assert _titles(emu, query(JOBS, newer)) == ["bravo"]
    older = less_than(item_property("lastEditDate"), literal("DateTime", cursor))
    assert sorted(_titles(emu, query(JOBS, older))) == [
        "alpha",
        "charlie",
        "delta",
    ]  # cursor: the other design


def test_attribute_selection(emu: EmulatorProcess, jobs: list[dict[str, Any]]) -> None:
    status, body = emu.query(
        query(JOBS, equals(attribute(TITLE), literal("String", "alpha")), attributes=[COUNT])
    )
    assert status == 200
    assert attribute_values(body["results"][0]) == {COUNT: 3}


def test_sorting_by_attribute_and_property(emu: EmulatorProcess, jobs: list[dict[str, Any]]) -> None:
    ascending = {"attributeCode": COUNT, "sortOrder": "Ascending"}
    assert _titles(emu, query(JOBS, sort=ascending)) == ["bravo", "charlie", "alpha", "delta"]  # missing last
    descending = {"attributeCode": TITLE, "sortOrder": "Descending"}
    assert _titles(emu, query(JOBS, sort=descending)) == ["delta", "charlie", "bravo", "alpha"]
    emu.edit_item(jobs[0]["itemId"], {COUNT: 4})
    by_edit = {"itemPropertyName": "lastEditDate", "sortOrder": "Descending"}
    assert _titles(emu, query(JOBS, sort=by_edit)) == ["alpha", "delta", "charlie", "bravo"]
    by_created = {"itemPropertyName": "createdDate", "sortOrder": "Ascending"}
    assert _titles(emu, query(JOBS, sort=by_created)) == ["alpha", "bravo", "charlie", "delta"]


def test_paging_is_stable_and_ends_with_an_empty_page(emu: EmulatorProcess) -> None:
    same = [{"attributeCode": TITLE, "value": "same"}]
    created = emu.bulk_create([{"designCode": JOBS, "attributes": same} for _ in range(25)])
    sort = {"attributeCode": TITLE, "sortOrder": "Ascending"}  # every value ties: the item id decides
    seen: list[str] = []
    page = 1
    while True:
        status, body = emu.query(query(JOBS, sort=sort), page=page, page_size=10)
        assert status == 200
        assert set(body) == {"page", "pageSize", "results"}  # no totals
        assert (body["page"], body["pageSize"]) == (page, 10)
        if not body["results"]:
            break
        seen += [item["itemId"] for item in body["results"]]
        page += 1
    assert page == 4
    assert seen == sorted(item["itemId"] for item in created)
    status, body = emu.query(query(JOBS), page=50, page_size=10)
    assert (status, body["results"]) == (200, [])


def test_page_defaults(emu: EmulatorProcess) -> None:
    emu.bulk_create([{"designCode": JOBS, "attributes": []} for _ in range(25)])
    status, body = emu.query(query(JOBS))
    assert (status, body["page"], body["pageSize"], len(body["results"])) == (200, 1, 20, 20)


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ("pageSize=101", "pageSize must be at most 100"),
        ("page=0", "page must be 1 or more"),
        ("page=x", "page"),
    ],
)
def test_bad_paging_parameters_are_a_400(emu: EmulatorProcess, params: str, fragment: str) -> None:
    status, body = emu.request("POST", f"/api/aqs/query?{params}", {"aqs": query(JOBS)})
    assert status == 400
    assert fragment in body["message"]


def test_page_size_100_is_allowed(emu: EmulatorProcess) -> None:
    status, body = emu.query(query(JOBS), page_size=100)
    assert (status, body["pageSize"]) == (200, 100)


MALFORMED: list[tuple[Any, str]] = [
    ({"query": {}}, '{"aqs"'),
    ({"aqs": "Query"}, "aqs must be a node object"),
    ({"aqs": node("Join", {"dodiCode": JOBS})}, 'root node must be of type "Query"'),
    ({"aqs": node("Query", {})}, "dodiCode"),
    (
        {"aqs": query(JOBS, node("Contains", children=[attribute(TITLE), literal("String", "a")]))},
        "unknown node type",
    ),
    ({"aqs": query(JOBS, node("Equals", children=[attribute(TITLE)]))}, "exactly two children"),
    ({"aqs": query(JOBS, all_of(equals(attribute(TITLE), literal("String", "a"))))}, "at least two"),
    (
        {"aqs": query(JOBS, equals(literal("String", "a"), attribute(TITLE)))},
        "must be Attribute or ItemProperty",
    ),
    ({"aqs": query(JOBS, equals(attribute(TITLE), literal("String")))}, "non-empty list"),
    ({"aqs": query(JOBS, equals(attribute(TITLE), literal("Number", "x")))}, "is not a Number value"),
    ({"aqs": query(JOBS, greater_than(attribute(COUNT), literal("Number", 1, 2)))}, "exactly one value"),
    ({"aqs": query(JOBS, equals(attribute(TITLE), literal("DateTime", "soon")))}, "not an ISO-8601"),
    ({"aqs": query(JOBS, equals(item_property("lastEditDate"), literal("String", "x")))}, "DateTime"),
    ({"aqs": query(JOBS, equals(item_property("colour"), literal("String", "x")))}, "itemPropertyName"),
    ({"aqs": query(JOBS, sort={"attributeCode": TITLE, "sortOrder": "Up"})}, "sortOrder"),
    ({"aqs": query(JOBS, attribute(TITLE))}, "is an operand"),
]


@pytest.mark.parametrize(("body", "fragment"), MALFORMED)
def test_malformed_aqs_is_a_400_with_a_clear_message(emu: EmulatorProcess, body: Any, fragment: str) -> None:
    status, payload = emu.request("POST", "/api/aqs/query", body)
    assert status == 400, payload
    assert payload["httpStatusCode"] == 400
    assert payload["category"] == "AqsInvalidQuery"
    assert fragment in payload["message"], payload["message"]


def test_the_dated_emulator_filters_by_the_dates_it_sends(emu_dated: EmulatorProcess) -> None:
    created = emu_dated.bulk_create(
        [{"designCode": JOBS, "attributes": [{"attributeCode": TITLE, "value": t}]} for t in ("a", "b")]
    )
    cursor = max(item["lastEditDate"] for item in created)
    newer = greater_than(item_property("lastEditDate"), literal("DateTime", cursor))
    assert _titles(emu_dated, query(JOBS, newer)) == []
    edited = emu_dated.edit_item(created[0]["itemId"], {COUNT: 1})
    assert edited["lastEditDate"] > cursor
    assert _titles(emu_dated, query(JOBS, newer)) == ["a"]


def test_results_carry_signature_collection_title_and_no_dates(
    emu: EmulatorProcess, jobs: list[dict[str, Any]]
) -> None:
    status, body = emu.query(query(JOBS, equals(attribute(TITLE), literal("String", "alpha"))))
    assert status == 200
    (item,) = body["results"]
    assert item["signature"] == jobs[0]["signature"]
    assert item["collection"] == "Live"
    assert item["title"] == "alpha"
    assert "lastEditDate" not in item and "createdDate" not in item


def test_a_query_of_an_unknown_design_is_refused(emu: EmulatorProcess) -> None:
    status, body = emu.query(query("designs_unknown"))
    assert (status, body["category"]) == (400, "DodiNotFound")
    assert "designs_unknown" in body["message"]


@pytest.mark.parametrize(
    "aqs",
    [
        query(JOBS, equals(attribute("attributes_nope"), literal("String", "x"))),
        query(JOBS, sort={"attributeCode": "attributes_nope", "sortOrder": "Ascending"}),
        query(JOBS, attributes=[TITLE, "attributes_nope"]),
    ],
    ids=["filter", "sort", "selection"],
)
def test_a_query_naming_an_attribute_the_design_lacks_is_refused(
    emu: EmulatorProcess, aqs: dict[str, Any]
) -> None:
    status, body = emu.query(aqs)
    assert (status, body["category"]) == (400, "AqsInvalidQuery")
    assert "attributes_nope" in body["message"]


def test_interface_attributes_can_be_queried_on_every_design(emu: EmulatorProcess) -> None:
    define_other(emu)
    status, body = emu.query(
        query(OTHER, equals(attribute("attributes_itemsSubtitle"), literal("String", "x")))
    )
    assert (status, body["results"]) == (200, [])


def test_pages_read_after_an_edit_see_the_edit(emu: EmulatorProcess) -> None:
    """The emulator computes a query's result once per store generation (query_cache.py): a page
    read after any create, edit or delete answers from the store as it is then."""
    enabled = [{"attributeCode": TITLE, "value": "on"}, {"attributeCode": ENABLED, "value": True}]
    created = emu.bulk_create([{"designCode": JOBS, "attributes": enabled} for _ in range(6)])
    only_enabled = query(JOBS, equals(attribute(ENABLED), literal("Boolean", True)))
    ids = sorted(item["itemId"] for item in created)
    status, first = emu.query(only_enabled, page=1, page_size=3)
    assert status == 200
    assert [item["itemId"] for item in first["results"]] == ids[:3]
    emu.edit_item(ids[4], {ENABLED: False})  # on page 2
    emu.bulk_create([{"designCode": JOBS, "attributes": enabled}])
    status, second = emu.query(only_enabled, page=2, page_size=3)
    assert status == 200
    later = [item["itemId"] for item in second["results"]]
    assert ids[4] not in later
    assert later[:2] == [ids[3], ids[5]] and len(later) == 3  # and the new item took the freed place

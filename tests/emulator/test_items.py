"""Items: create, read, partial edit, signatures, delete, attribute types and error bodies.

Items validated against their design are in `test_item_validation`; designs in `test_designs`.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from typing import Any

import pytest

from tests.emulator.aqs_nodes import JOBS, attribute_values
from tests.emulator.designs import ANY, OTHER, define_other
from tests.support.emulator import EmulatorProcess

HEX24 = re.compile(r"^[0-9a-f]{24}$")
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
ERROR_KEYS = {"category", "errorCode", "message", "httpStatusCode", "errorData"}
END_OF_TIME = "9999-12-31T23:59:59.999Z"


def _attributes(values: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"attributeCode": code, "value": value} for code, value in values.items()]


def _put(emu: EmulatorProcess, item_id: str, body: dict[str, Any]) -> tuple[int, Any]:
    return emu.request("PUT", f"/api/item/{item_id}", body)


def test_create_returns_the_item_in_the_recorded_shape_without_dates(emu: EmulatorProcess) -> None:
    item = emu.create_item(
        JOBS,
        {
            "attributes_itemsTitle": "hello",
            "attributes_alloysyncJobsEnabled": True,
            "attributes_alloysyncJobsStatus": "Queued",
        },
    )
    assert HEX24.match(item["itemId"])
    assert HEX24.match(item["signature"])
    assert item["designCode"] == JOBS
    assert item["collection"] == "Live"
    assert "lastEditDate" not in item and "createdDate" not in item  # as from real Alloy
    assert item["title"] == "hello"  # the jobs design's title template is the Title
    assert item["subtitle"] == "Queued"  # ... and its subtitle template the Status
    assert TIMESTAMP.match(item["start"])
    assert item["end"] == END_OF_TIME
    assert item["geometry"] is None
    assert item["locked"] is False
    assert item["context"] == "Customer"
    assert item["icon"].startswith("icon-") and re.fullmatch(r"#[0-9a-f]{6}", item["colour"])
    assert attribute_values(item) == {
        "attributes_itemsTitle": "hello",
        "attributes_alloysyncJobsEnabled": True,
        "attributes_alloysyncJobsStatus": "Queued",
    }
    assert emu.get_item(item["itemId"]) == item
    edited = emu.edit_item(item["itemId"], {"attributes_alloysyncJobsStatus": "Running"})
    assert (edited["title"], edited["subtitle"]) == ("hello", "Running")
    assert edited["start"] == item["start"]
    assert "lastEditDate" not in edited


def test_item_dates_are_sent_with_item_dates(emu_dated: EmulatorProcess) -> None:
    item = emu_dated.create_item(
        JOBS, {"attributes_itemsTitle": "hello", "attributes_alloysyncJobsEnabled": True}
    )
    assert TIMESTAMP.match(item["lastEditDate"])
    assert item["createdDate"] == item["lastEditDate"] == item["start"]
    for extra in ("start", "end", "icon", "colour", "locked", "context", "title", "subtitle", "geometry"):
        assert extra in item
    assert attribute_values(item) == {
        "attributes_itemsTitle": "hello",
        "attributes_alloysyncJobsEnabled": True,
    }
    assert emu_dated.get_item(item["itemId"]) == item


def test_a_single_item_comes_wrapped(emu: EmulatorProcess) -> None:
    define_other(emu)
    item = emu.create_item(OTHER, {ANY: 1})
    status, body = emu.request("GET", f"/api/item/{item['itemId']}")
    assert status == 200
    assert set(body) == {"item"}


def test_edit_is_partial_and_changes_signature_and_last_edit_date(emu_dated: EmulatorProcess) -> None:
    emu = emu_dated
    item = emu.create_item(JOBS, {"attributes_itemsTitle": "job", "attributes_alloysyncJobsTask": "a.b"})
    signatures = {item["signature"]}
    edit_dates = [item["lastEditDate"]]
    current = item
    for count in range(1, 4):
        status, body = _put(
            emu,
            item["itemId"],
            {
                "signature": current["signature"],
                "attributes": _attributes({"attributes_alloysyncJobsRunCount": count}),
            },
        )
        assert status == 200
        current = body["item"]
        signatures.add(current["signature"])
        edit_dates.append(current["lastEditDate"])
    assert len(signatures) == 4  # a new signature on every edit
    assert edit_dates == sorted(edit_dates) and len(set(edit_dates)) == 4
    assert current["createdDate"] == item["createdDate"]
    assert attribute_values(emu.get_item(item["itemId"])) == {
        "attributes_itemsTitle": "job",
        "attributes_alloysyncJobsTask": "a.b",
        "attributes_alloysyncJobsRunCount": 3,
    }


def test_an_edit_with_the_same_values_still_gets_a_new_signature(emu: EmulatorProcess) -> None:
    define_other(emu)
    item = emu.create_item(OTHER, {ANY: "same"})
    edited = emu.edit_item(item["itemId"], {ANY: "same"})
    assert edited["signature"] != item["signature"]


def test_a_stale_signature_is_a_409_item_signature_mismatch(emu: EmulatorProcess) -> None:
    item = emu.create_item(JOBS, {"attributes_itemsTitle": "job"})
    emu.edit_item(item["itemId"], {"attributes_itemsTitle": "edited by a user"})
    status, body = _put(
        emu,
        item["itemId"],
        {"signature": item["signature"], "attributes": _attributes({"attributes_itemsTitle": "x"})},
    )
    assert status == 409
    assert body["category"] == "ItemSignatureMismatch"
    assert body["errorCode"] == "ItemSignatureMismatch"
    assert body["httpStatusCode"] == 409
    assert set(body) == ERROR_KEYS
    assert emu.attributes(item["itemId"])["attributes_itemsTitle"] == "edited by a user"


def test_an_edit_without_a_signature_is_a_400(emu: EmulatorProcess) -> None:
    item = emu.create_item(JOBS, {"attributes_itemsTitle": "job"})
    status, body = _put(emu, item["itemId"], {"attributes": _attributes({"attributes_itemsTitle": "x"})})
    assert status == 400
    assert body["category"] == "BadRequest"
    assert "signature" in body["message"]


def test_null_clears_an_attribute(emu: EmulatorProcess) -> None:
    item = emu.create_item(JOBS, {"attributes_itemsTitle": "job", "attributes_alloysyncJobsMessage": "old"})
    emu.edit_item(item["itemId"], {"attributes_alloysyncJobsMessage": None})
    assert emu.attributes(item["itemId"]) == {"attributes_itemsTitle": "job"}


def test_unknown_items_are_404_with_an_alloy_error_body(emu: EmulatorProcess) -> None:
    missing = "0123456789abcdef01234567"
    for method, body in (("GET", None), ("PUT", {"signature": "x", "attributes": []}), ("DELETE", None)):
        status, payload = emu.request(method, f"/api/item/{missing}", body)
        assert status == 404, method
        assert set(payload) == ERROR_KEYS
        assert payload["category"] == payload["errorCode"] == "ItemNotFound"
        assert payload["httpStatusCode"] == 404
        assert missing in payload["message"]


def test_delete_with_and_without_signature(emu: EmulatorProcess) -> None:
    define_other(emu)
    first = emu.create_item(OTHER, {ANY: 1})
    second = emu.create_item(OTHER, {ANY: 2})
    status, body = emu.request("DELETE", f"/api/item/{first['itemId']}", {"signature": "f" * 24})
    assert (status, body["category"]) == (409, "ItemSignatureMismatch")
    assert emu.request("DELETE", f"/api/item/{first['itemId']}", {"signature": first["signature"]})[0] == 200
    assert emu.request("DELETE", f"/api/item/{second['itemId']}")[0] == 200
    assert emu.request("GET", f"/api/item/{first['itemId']}")[0] == 404
    assert emu.request("GET", f"/api/item/{second['itemId']}")[0] == 404


@pytest.mark.parametrize(
    ("code", "value"),
    [
        ("attributes_itemsTitle", 5),
        ("attributes_alloysyncJobsEnabled", "true"),
        ("attributes_alloysyncJobsRunRequested", 1),
        ("attributes_alloysyncJobsRunCount", "3"),
        ("attributes_alloysyncJobsRunCount", True),
        ("attributes_alloysyncJobsLastRunStarted", "yesterday"),
        ("attributes_alloysyncJobsNextRun", "2024-07-02T00:00:00"),  # no zone
        ("attributes_alloysyncJobsStatus", ["Running"]),
    ],
)
def test_wrongly_typed_job_attributes_are_a_400(emu: EmulatorProcess, code: str, value: Any) -> None:
    status, body = emu.request(
        "POST", "/api/item", {"designCode": JOBS, "attributes": _attributes({code: value})}
    )
    assert status == 400
    assert body["category"] == "DodiAttributeTypeViolated"
    assert code in body["message"]
    assert body["errorData"]["attributeCode"] == code
    item = emu.create_item(JOBS, {"attributes_itemsTitle": "ok"})
    status, body = _put(
        emu, item["itemId"], {"signature": item["signature"], "attributes": _attributes({code: value})}
    )
    assert status == 400
    assert body["category"] == "DodiAttributeTypeViolated"
    assert code in body["message"]


def test_typed_values_are_accepted_and_datetimes_normalised(emu: EmulatorProcess) -> None:
    values = {
        "attributes_alloysyncJobsParams": [1, 2],  # Json accepts any JSON value
        "attributes_alloysyncJobsResult": {"usd": 64000.5},
        "attributes_alloysyncJobsRunCount": 2,
        "attributes_alloysyncJobsLastRunStarted": "2024-07-02T01:00:00+01:00",
        "attributes_alloysyncJobsNextRun": "2024-07-02T00:00:00.123456Z",
        "attributes_alloysyncJobsStatus": "Running",
    }
    item = emu.create_item(JOBS, values)
    stored = attribute_values(item)
    assert stored["attributes_alloysyncJobsParams"] == [1, 2]
    assert stored["attributes_alloysyncJobsLastRunStarted"] == "2024-07-02T00:00:00.000Z"
    assert stored["attributes_alloysyncJobsNextRun"] == "2024-07-02T00:00:00.123Z"


def test_a_json_attribute_takes_any_json_value(emu: EmulatorProcess) -> None:
    define_other(emu)
    for value in (5, "text", [1, "two"], {"nested": {"a": None}}, True):
        assert attribute_values(emu.create_item(OTHER, {ANY: value})) == {ANY: value}


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"{not json", "not valid JSON"),
        (b"", "needs a JSON body"),
        (b"[1, 2]", "must be a JSON object"),
        (b'{"designCode": 5}', "designCode"),
        (b'{"designCode": "d", "attributes": {"a": 1}}', "attributes must be a list"),
        (b'{"designCode": "d", "attributes": [{"value": 1}]}', "attributeCode"),
        (b'{"designCode": "d", "attributes": [{"attributeCode": "a", "value": NaN}]}', "not valid JSON"),
    ],
)
def test_malformed_create_requests_are_a_400_saying_what_is_wrong(
    emu: EmulatorProcess, body: bytes, fragment: str
) -> None:
    request = urllib.request.Request(f"{emu.url}/api/item", data=body, method="POST")  # noqa: S310
    request.add_header("Authorization", f"Bearer {emu.token}")
    request.add_header("Content-Type", "application/json")
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(request, timeout=10)  # noqa: S310
    payload = json.loads(raised.value.read())
    assert raised.value.code == 400
    assert payload["category"] == "BadRequest"
    assert fragment in payload["message"]
    assert raised.value.headers["Content-Type"].startswith("application/json")


def test_unknown_endpoints_answer_with_an_alloy_error_body(emu: EmulatorProcess) -> None:
    status, body = emu.request("GET", "/api/nothing-here")
    assert status == 404
    assert set(body) == ERROR_KEYS
    assert body["category"] == "BadRequest"
    status, body = emu.request("PATCH", f"/api/item/{'0' * 24}", {})
    assert status == 405
    assert set(body) == ERROR_KEYS
    assert body["category"] == "BadRequest"


def test_edit_dates_increase_even_within_one_millisecond(emu_dated: EmulatorProcess) -> None:
    emu = emu_dated
    created = emu.bulk_create([{"designCode": JOBS, "attributes": []} for _ in range(50)])
    dates = [item["lastEditDate"] for item in created]
    assert dates == sorted(dates)
    assert len(set(dates)) == len(dates)

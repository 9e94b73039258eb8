"""Fault knobs: latency, injected 500s and HTML 502s, the down modes (503 and connection reset), and
the status and errorCode of stale-signature errors."""

from __future__ import annotations

import time

import aiohttp
import pytest

from tests.emulator.aqs_nodes import JOBS, query
from tests.support.emulator import EmulatorProcess


def test_latency_is_added_to_api_requests_but_not_to_admin(emu: EmulatorProcess) -> None:
    emu.set_faults(latency_ms=300)
    started = time.monotonic()
    assert emu.query(query(JOBS))[0] == 200
    assert time.monotonic() - started >= 0.3
    started = time.monotonic()
    emu.stats()
    assert time.monotonic() - started < 0.25


def test_error_rate_one_answers_500_with_an_alloy_body(emu: EmulatorProcess) -> None:
    emu.set_faults(error_rate=1.0, html_error_share=0.0)
    for _ in range(3):
        status, body = emu.query(query(JOBS))
        assert status == 500
        assert body["httpStatusCode"] == 500
        assert body["category"] == "InternalError"
        assert body["errorCode"]
    assert emu.stats()["query"] == {"500": 3}


def test_some_injected_errors_are_html_502_pages(emu: EmulatorProcess) -> None:
    emu.set_faults(error_rate=1.0, html_error_share=1.0)
    status, body = emu.request("GET", f"/api/item/{'0' * 24}")
    assert status == 502
    assert isinstance(body, str) and "<html>" in body  # not JSON


def test_a_partial_error_rate_fails_some_requests(emu: EmulatorProcess) -> None:
    emu.set_faults(error_rate=0.5)
    statuses = [emu.query(query(JOBS))[0] for _ in range(60)]
    failures = sum(status >= 500 for status in statuses)
    assert 5 < failures < 55
    assert set(statuses) <= {200, 500, 502}


def test_down_503(emu: EmulatorProcess) -> None:
    emu.set_faults(down=True)
    status, body = emu.query(query(JOBS))
    assert (status, body["category"], body["httpStatusCode"]) == (503, "SystemUnderMaintenance", 503)
    assert emu.request("GET", "/v1/bpi/currentprice.json", auth=False)[0] == 503
    assert emu.admin("GET", "faults")["down"] is True  # admin is never down
    assert emu.request("GET", "/_emulator/health", auth=False)[0] == 200
    emu.set_faults(down=False)
    assert emu.query(query(JOBS))[0] == 200


async def test_down_reset_closes_the_connection_without_an_answer(emu: EmulatorProcess) -> None:
    emu.set_faults(down=True, down_mode="reset")
    headers = {"Authorization": f"Bearer {emu.token}"}
    async with aiohttp.ClientSession(emu.url, headers=headers) as session:
        with pytest.raises(aiohttp.ClientError):
            async with session.post("/api/aqs/query", json={"aqs": query(JOBS)}) as response:
                await response.read()
    assert emu.stats()["query"].get("reset", 0) >= 1
    assert emu.request("GET", "/_emulator/health", auth=False)[0] == 200


def test_bad_fault_settings_are_refused(emu: EmulatorProcess) -> None:
    for body in (
        {"error_rate": 2},
        {"latency_ms": -1},
        {"down": "yes"},
        {"down_mode": "off"},
        {"chaos": 1},
        {"signature_mismatch_status": 200},
        {"signature_mismatch_status": "400"},
        {"signature_mismatch_error_code": 5},
    ):
        status, payload = emu.request("PUT", "/_emulator/faults", body)
        assert status == 400, body
        assert payload["message"]


def test_feed_latency_slows_only_the_price_feed(emu: EmulatorProcess) -> None:
    emu.set_faults(feed_latency_ms=400)
    started = time.monotonic()
    feed_status, _ = emu.request("GET", "/v1/bpi/currentprice.json", auth=False)
    feed_took = time.monotonic() - started
    started = time.monotonic()
    api_status, _ = emu.request("POST", "/api/aqs/query?page=1&pageSize=1", {"aqs": query(JOBS)})
    api_took = time.monotonic() - started
    assert (feed_status, api_status) == (200, 200)
    assert feed_took >= 0.4 and api_took < 0.3, (feed_took, api_took)


def test_faults_read_back(emu: EmulatorProcess) -> None:
    config = emu.set_faults(latency_ms=5, down_mode="reset")
    assert config == {
        "latency_ms": 5.0,
        "feed_latency_ms": 0.0,
        "error_rate": 0.0,
        "html_error_share": 0.2,
        "down": False,
        "down_mode": "reset",
        "signature_mismatch_status": 409,
        "signature_mismatch_error_code": None,
    }


def _stale_edit(emu: EmulatorProcess) -> tuple[int, dict[str, object]]:
    item = emu.create_item(JOBS, {"attributes_itemsTitle": "job"})
    emu.edit_item(item["itemId"], {"attributes_itemsTitle": "edited by a user"})
    body = {
        "signature": item["signature"],
        "attributes": [{"attributeCode": "attributes_itemsTitle", "value": "ours"}],
    }
    status, payload = emu.request("PUT", f"/api/item/{item['itemId']}", body)
    assert isinstance(payload, dict)
    return status, payload


def test_a_stale_signature_can_be_answered_with_another_status(emu: EmulatorProcess) -> None:
    assert _stale_edit(emu)[0] == 409  # the default
    emu.set_faults(signature_mismatch_status=400)
    status, body = _stale_edit(emu)
    assert (status, body["httpStatusCode"]) == (400, 400)
    assert body["category"] == body["errorCode"] == "ItemSignatureMismatch"


def test_a_stale_signature_can_carry_only_its_category(emu: EmulatorProcess) -> None:
    emu.set_faults(signature_mismatch_status=400, signature_mismatch_error_code="E1001")
    status, body = _stale_edit(emu)
    assert (status, body["category"], body["errorCode"]) == (400, "ItemSignatureMismatch", "E1001")
    design = emu.create_design("Faulty")
    stale = design["metadata"]["signature"]
    emu.add_attribute(design["code"], "First", {"discriminator": "DodiAttributeOptionsBooleanWebModel"})
    status, body = emu.request(
        "POST",
        f"/api/design/{design['code']}/attribute",
        {
            "name": "Second",
            "options": {"discriminator": "DodiAttributeOptionsJsonWebModel"},
            "signature": stale,
        },
    )
    assert (status, body["category"], body["errorCode"]) == (400, "DesignSignatureMismatch", "E1001")
    emu.set_faults(signature_mismatch_status=409, signature_mismatch_error_code=None)
    status, body = _stale_edit(emu)
    assert (status, body["errorCode"]) == (409, "ItemSignatureMismatch")


def test_other_errors_keep_their_status_under_the_signature_knobs(emu: EmulatorProcess) -> None:
    emu.set_faults(signature_mismatch_status=400, signature_mismatch_error_code="E1001")
    status, body = emu.request("GET", f"/api/item/{'0' * 24}")
    assert (status, body["category"], body["errorCode"]) == (404, "ItemNotFound", "ItemNotFound")

"""Rate limits: per family, fixed windows, Alloy's X-Rate-Limit-Remaining/-Reset headers (and no other),
429 with an Alloy error body."""

from __future__ import annotations

import asyncio
import math
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from tests.emulator.aqs_nodes import JOBS, query
from tests.support.emulator import EmulatorProcess

Answer = tuple[int, dict[str, str], Any]
DOCUMENTED_HEADERS = {"x-rate-limit-remaining", "x-rate-limit-reset"}


def _limit_headers(headers: dict[str, str]) -> set[str]:
    """The rate-limit related headers of a response (lower case)."""
    return {name.lower() for name in headers if "rate" in name.lower() or name.lower() == "retry-after"}


async def _send_in_one_window(
    emu: EmulatorProcess, session: aiohttp.ClientSession, calls: list[tuple[str, str, Any]], window: float
) -> list[Answer]:
    """Send `calls` back to back right after a window boundary, with fresh windows.

    On a slow machine the calls may still straddle two windows (their `X-Rate-Limit-Reset` headers
    differ); then all is tried again in the next window.
    """
    for _attempt in range(3):
        emu.set_rate_limits()  # any change of the limits starts the windows afresh
        now = time.time()
        await asyncio.sleep((math.floor(now / window) + 1) * window - now + 0.02)
        answers = []
        for method, path, body in calls:
            async with session.request(method, path, json=body) as response:
                answers.append((response.status, dict(response.headers), await response.json()))
        if len({headers["X-Rate-Limit-Reset"] for _, headers, _ in answers}) == 1:
            return answers
    raise AssertionError("the calls never fitted into one rate-limit window")


async def test_over_the_limit_is_a_429_until_the_window_resets(emu: EmulatorProcess) -> None:
    emu.set_rate_limits(window_seconds=1.0, query=3, read=5, write=2)
    aqs = {"aqs": query(JOBS)}
    calls = [("POST", "/api/aqs/query", aqs)] * 4 + [("GET", f"/api/item/{'0' * 24}", None)]
    async with aiohttp.ClientSession(emu.url, headers={"Authorization": f"Bearer {emu.token}"}) as session:
        answers = await _send_in_one_window(emu, session, calls, 1.0)
        assert [status for status, _, _ in answers] == [200, 200, 200, 429, 404]
        for _, headers, _ in answers:
            assert _limit_headers(headers) == DOCUMENTED_HEADERS  # on 200s, the 429 and the 404 alike
        assert [headers["X-Rate-Limit-Remaining"] for _, headers, _ in answers[:4]] == ["2", "1", "0", "0"]
        reset = answers[0][1]["X-Rate-Limit-Reset"]
        reset_at = datetime.strptime(reset, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
        assert 0 < reset_at.timestamp() - time.time() <= 1.0

        _, headers, body = answers[3]
        assert headers["Content-Type"].startswith("application/json")
        assert body["category"] == "RateLimited"
        assert body["httpStatusCode"] == 429
        assert "Retry-After" not in headers
        assert headers["X-Rate-Limit-Reset"] == reset

        # Reads have a budget of their own.
        _, headers, _ = answers[4]
        assert headers["X-Rate-Limit-Remaining"] == "4"

        await asyncio.sleep(max(0.0, reset_at.timestamp() - time.time()) + 0.02)
        async with session.post("/api/aqs/query", json=aqs) as response:
            assert response.status == 200
            assert response.headers["X-Rate-Limit-Remaining"] == "2"
    stats = emu.stats()
    assert stats["query"]["429"] >= 1
    assert stats["read"]["404"] >= 1


async def test_creates_edits_and_deletes_share_the_write_budget(emu: EmulatorProcess) -> None:
    emu.set_rate_limits(window_seconds=1.0, write=2)
    item = emu.bulk_create([{"designCode": JOBS, "attributes": []}])[0]
    calls = [
        ("POST", "/api/item", {"designCode": JOBS, "attributes": []}),
        ("PUT", f"/api/item/{item['itemId']}", {"signature": item["signature"], "attributes": []}),
        ("DELETE", f"/api/item/{item['itemId']}", None),
    ]
    async with aiohttp.ClientSession(emu.url, headers={"Authorization": f"Bearer {emu.token}"}) as session:
        answers = await _send_in_one_window(emu, session, calls, 1.0)
    assert answers[2][0] == 429
    assert answers[2][2]["category"] == "RateLimited"


def test_admin_bulk_create_and_the_price_feed_are_not_limited(emu: EmulatorProcess) -> None:
    emu.set_rate_limits(window_seconds=30.0, query=0, read=0, write=0)
    assert len(emu.bulk_create([{"designCode": JOBS, "attributes": []}] * 3)) == 3
    for _ in range(3):
        assert emu.request("GET", "/v1/bpi/currentprice.json", auth=False)[0] == 200
    assert emu.request("GET", f"/api/item/{'0' * 24}")[0] == 429


def test_limits_can_be_switched_off_and_read_back(emu: EmulatorProcess) -> None:
    config = emu.set_rate_limits(enabled=False, write=1)
    assert config == {"enabled": False, "window_seconds": 60.0, "query": 120, "read": 300, "write": 1}
    assert emu.admin("GET", "rate-limits") == config
    for _ in range(3):
        emu.create_item(JOBS, {})
    status, _ = emu.request("POST", "/api/item", {"designCode": JOBS, "attributes": []})
    assert status == 200


def test_bad_rate_limit_settings_are_refused(emu: EmulatorProcess) -> None:
    for body in ({"window_seconds": 0}, {"query": -1}, {"read": "many"}, {"burst": 3}, {"enabled": "yes"}):
        status, payload = emu.request("PUT", "/_emulator/rate-limits", body)
        assert status == 400, body
        assert payload["message"]


def test_no_rate_limits_flag(tmp_path: Path) -> None:
    process = EmulatorProcess(tmp_path, rate_limits=False)
    process.start()
    try:
        assert process.admin("GET", "rate-limits")["enabled"] is False
        for _ in range(3):
            assert process.query(query(JOBS))[0] == 200
    finally:
        process.stop()


async def test_design_reads_count_as_reads_and_design_changes_as_writes(emu: EmulatorProcess) -> None:
    emu.set_rate_limits(window_seconds=1.0, read=1, write=1)
    new_design = {"name": "Limited"}
    calls = [
        ("GET", f"/api/design/{JOBS}", None),
        ("GET", "/api/design", None),
        ("POST", "/api/design", new_design),
        ("POST", "/api/design", new_design),
    ]
    async with aiohttp.ClientSession(emu.url, headers={"Authorization": f"Bearer {emu.token}"}) as session:
        answers = await _send_in_one_window(emu, session, calls, 1.0)
    assert [status for status, _, _ in answers] == [200, 429, 200, 429]
    for _, headers, _ in answers:
        assert _limit_headers(headers) == DOCUMENTED_HEADERS
    stats = emu.stats()  # counted by family (a retried window may have added a few more)
    assert stats["read"]["200"] >= 1 and stats["read"]["429"] >= 1
    assert stats["write"]["200"] >= 1 and stats["write"]["429"] >= 1

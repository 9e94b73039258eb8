"""The webhook call-out: POSTs on create and update, in the background, with the configured headers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from alloysync.local.redis_server import free_port
from tests.emulator.aqs_nodes import JOBS
from tests.emulator.designs import OTHER, define_other
from tests.support.emulator import EmulatorProcess


class Receiver:
    """A tiny HTTP server standing in for `alloysync serve`'s webhook endpoint."""

    def __init__(self, status: int = 200, delay: float = 0.0) -> None:
        self.calls: list[tuple[dict[str, str], Any]] = []
        self.status = status
        self.delay = delay
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/webhooks/alloy"
        self.arrived = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        await asyncio.sleep(self.delay)
        self.calls.append((dict(request.headers), await request.json()))
        self.arrived.set()
        return web.Response(status=self.status)

    async def wait_for(self, count: int, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.calls) < count:
            assert time.monotonic() < deadline, f"only {len(self.calls)} of {count} call-outs arrived"
            await asyncio.sleep(0.02)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    receiver = Receiver()
    app = web.Application()
    app.router.add_post("/webhooks/alloy", receiver.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", receiver.port).start()
    yield receiver
    await runner.cleanup()


async def _api(emu: EmulatorProcess, method: str, path: str, body: Any) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {emu.token}"}
    async with (
        aiohttp.ClientSession(emu.url, headers=headers) as session,
        session.request(method, path, json=body) as response,
    ):
        return response.status, await response.json()


async def test_create_and_update_call_out_with_the_configured_headers(
    emu: EmulatorProcess, receiver: Receiver
) -> None:
    emu.set_webhook(receiver.url, {"X-Alloysync-Secret": "s3cret"})
    assert emu.admin("GET", "webhook") == {
        "url": receiver.url,
        "header_names": ["X-Alloysync-Secret"],
        "design_codes": None,
    }
    attributes = [{"attributeCode": "attributes_itemsTitle", "value": "job"}]
    status, created = await _api(emu, "POST", "/api/item", {"designCode": JOBS, "attributes": attributes})
    assert status == 200
    item = created["item"]
    body = {
        "signature": item["signature"],
        "attributes": [{"attributeCode": "attributes_itemsTitle", "value": "v2"}],
    }
    status, _ = await _api(emu, "PUT", f"/api/item/{item['itemId']}", body)
    assert status == 200
    await receiver.wait_for(2)
    (first_headers, first), (_, second) = receiver.calls
    assert first == {"itemId": item["itemId"], "designCode": JOBS, "event": "create"}
    assert second == {"itemId": item["itemId"], "designCode": JOBS, "event": "update"}
    assert first_headers["X-Alloysync-Secret"] == "s3cret"
    assert first_headers["Content-Type"].startswith("application/json")
    stats = emu.admin("GET", "stats")
    assert stats["callouts"]["sent"] == 2


async def test_only_matching_designs_call_out(emu: EmulatorProcess, receiver: Receiver) -> None:
    emu.set_webhook(receiver.url, design_codes=[JOBS])
    define_other(emu)
    await _api(emu, "POST", "/api/item", {"designCode": OTHER, "attributes": []})
    await _api(emu, "POST", "/api/item", {"designCode": JOBS, "attributes": []})
    await receiver.wait_for(1)
    await asyncio.sleep(0.2)
    assert [call[1]["designCode"] for call in receiver.calls] == [JOBS]


async def test_bulk_created_items_call_out_too(emu: EmulatorProcess, receiver: Receiver) -> None:
    emu.set_webhook(receiver.url)
    created = await asyncio.to_thread(emu.bulk_create, [{"designCode": JOBS, "attributes": []}] * 3)
    await receiver.wait_for(3)
    assert [call[1]["itemId"] for call in receiver.calls] == [item["itemId"] for item in created]


async def test_a_failing_or_slow_receiver_never_fails_or_blocks_the_api(
    emu: EmulatorProcess, receiver: Receiver
) -> None:
    receiver.status = 500
    receiver.delay = 1.0
    emu.set_webhook(receiver.url)
    started = time.monotonic()
    status, _ = await _api(emu, "POST", "/api/item", {"designCode": JOBS, "attributes": []})
    assert status == 200
    assert time.monotonic() - started < 0.5
    await receiver.wait_for(1)
    for _ in range(50):
        if emu.admin("GET", "stats")["callouts"]["failed"] == 1:
            break
        await asyncio.sleep(0.05)
    assert emu.admin("GET", "stats")["callouts"]["failed"] == 1


async def test_an_unreachable_receiver_is_logged_not_fatal(emu: EmulatorProcess) -> None:
    emu.set_webhook(f"http://127.0.0.1:{free_port()}/nowhere", {"X-Alloysync-Secret": "do-not-log-me"})
    status, _ = await _api(emu, "POST", "/api/item", {"designCode": JOBS, "attributes": []})
    assert status == 200
    for _ in range(100):
        if emu.admin("GET", "stats")["callouts"]["failed"] >= 1:
            break
        await asyncio.sleep(0.05)
    assert emu.admin("GET", "stats")["callouts"]["failed"] == 1
    log = emu.read_log()
    assert "webhook call-out failed" in log
    assert "do-not-log-me" not in log


def test_bad_webhook_settings_are_refused(emu: EmulatorProcess) -> None:
    for body in ({"url": "ftp://x"}, {"url": 5}, {"url": None, "headers": {"a": 1}}, {"design_codes": "x"}):
        status, payload = emu.request("PUT", "/_emulator/webhook", body)
        assert status == 400, body
        assert payload["message"]

"""`AlloyClient` against a tiny scripted Alloy on loopback, for answers real Alloy may give in ways
the emulator does not choose: a reason carried only by its category, at whatever HTTP status, and
a `Date` header that is not our clock.

The server is a real aiohttp server on 127.0.0.1; the client talks HTTP to it like to any Alloy.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web

from alloysync.alloy import aqs
from alloysync.alloy.client import AlloyClient, parse_http_date
from alloysync.alloy.errors import AlloyError
from alloysync.local.redis_server import free_port
from tests.alloy.support import generous_limits

ITEM = "0123456789abcdef01234567"
STATUS = "attributes_alloysyncJobsStatus"
OTHER = "attributes_someoneElses"


@dataclass
class ScriptedAlloy:
    """One item with a signature that changes on every edit; errors carry only `category`."""

    mismatch_status: int = 409
    rate_limited_creates: int = 0  # refuse this many creates with only the RateLimited category
    page_dates: list[str] = field(default_factory=list)  # the Date header of each query page
    results: int = 0  # items the query matches
    busy: bool = False  # someone edits the item right after every read
    signature_number: int = 1
    values: dict[str, Any] = field(default_factory=lambda: {STATUS: "Queued", OTHER: "theirs"})
    calls: Counter[str] = field(default_factory=Counter)
    signatures_sent: list[str] = field(default_factory=list)

    @property
    def signature(self) -> str:
        return f"{self.signature_number:024x}"

    def item(self) -> dict[str, Any]:
        attributes = [{"attributeCode": code, "value": value} for code, value in self.values.items()]
        return {
            "itemId": ITEM,
            "designCode": "designs_x",
            "attributes": attributes,
            "signature": self.signature,
        }

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/api/item/{item_id}", self.get_item)
        app.router.add_put("/api/item/{item_id}", self.edit_item)
        app.router.add_post("/api/item", self.create_item)
        app.router.add_post("/api/aqs/query", self.query)
        return app

    async def get_item(self, request: web.Request) -> web.Response:
        self.calls["GET item"] += 1
        response = web.json_response({"item": self.item()})
        if self.busy:
            self.signature_number += 1
        return response

    async def edit_item(self, request: web.Request) -> web.Response:
        self.calls["PUT item"] += 1
        body = await request.json()
        self.signatures_sent.append(body["signature"])
        if body["signature"] != self.signature:
            return web.json_response({"category": "ItemSignatureMismatch"}, status=self.mismatch_status)
        for attribute in body["attributes"]:
            self.values[attribute["attributeCode"]] = attribute["value"]
        self.signature_number += 1
        return web.json_response({"item": self.item()})

    async def create_item(self, request: web.Request) -> web.Response:
        self.calls["POST item"] += 1
        if self.rate_limited_creates > 0:
            self.rate_limited_creates -= 1
            return web.json_response({"category": "RateLimited"}, status=400, headers={"Retry-After": "0"})
        return web.json_response({"item": self.item()})

    async def query(self, request: web.Request) -> web.Response:
        page = int(request.query["page"])
        size = int(request.query["pageSize"])
        self.calls["query"] += 1
        start = (page - 1) * size
        ids = [f"{n:024x}" for n in range(start, min(start + size, self.results))]
        results = [{"itemId": item_id, "designCode": "designs_x", "attributes": []} for item_id in ids]
        headers = {"Date": self.page_dates[page - 1]} if page <= len(self.page_dates) else {}
        return web.json_response({"page": page, "pageSize": size, "results": results}, headers=headers)


@pytest.fixture
def scripted() -> ScriptedAlloy:
    return ScriptedAlloy()


@pytest.fixture
async def alloy(scripted: ScriptedAlloy) -> AsyncIterator[AlloyClient]:
    runner = web.AppRunner(scripted.app())
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    client = AlloyClient(
        f"http://127.0.0.1:{port}",
        "scripted-token",
        timeout=5.0,
        max_retries=3,
        limits=generous_limits(),
        backoff_base=0.01,
        backoff_max=0.05,
    )
    async with client:
        yield client
    await runner.cleanup()


@pytest.mark.parametrize("status", [409, 400, 412, 500])
async def test_a_stale_signature_known_only_by_its_category_is_resolved_like_a_409(
    scripted: ScriptedAlloy, alloy: AlloyClient, status: int
) -> None:
    scripted.mismatch_status = status
    stale = scripted.signature
    scripted.values[OTHER] = "edited by a user"  # someone edits after we read: our signature is stale
    scripted.signature_number += 1

    item = await alloy.update_owned(ITEM, {STATUS: "Running"}, signature=stale)

    assert item.value(STATUS) == "Running"
    assert item.value(OTHER) == "edited by a user"  # their edit survives: only our attribute was sent
    # One stale edit, one re-read, one edit with the fresh signature: a stale-signature answer is not
    # retried as it stands, even when it comes as a 500.
    assert scripted.signatures_sent == [stale, f"{2:024x}"]
    assert scripted.calls == Counter({"PUT item": 2, "GET item": 1})


async def test_update_owned_gives_up_after_max_conflicts(scripted: ScriptedAlloy, alloy: AlloyClient) -> None:
    scripted.mismatch_status = 400
    scripted.busy = True

    with pytest.raises(AlloyError) as failure:
        await alloy.update_owned(ITEM, {STATUS: "Running"}, signature="0" * 24, max_conflicts=2)

    assert failure.value.is_signature_mismatch and failure.value.status == 400
    assert scripted.calls == Counter({"PUT item": 3, "GET item": 2})
    assert scripted.values[STATUS] == "Queued"


async def test_a_rate_limit_known_only_by_its_category_is_waited_out_even_for_a_create(
    scripted: ScriptedAlloy, alloy: AlloyClient
) -> None:
    scripted.rate_limited_creates = 2

    item = await alloy.create_item("designs_x", {STATUS: "Queued"})

    assert item.itemId == ITEM
    assert scripted.calls["POST item"] == 3  # refused twice before any work was done, so repeated


async def test_query_pages_carry_alloys_clock(scripted: ScriptedAlloy, alloy: AlloyClient) -> None:
    scripted.results = 5
    scripted.page_dates = [
        "Tue, 02 Jul 2024 10:00:00 GMT",
        "Tue, 02 Jul 2024 10:00:01 GMT",
        "Tue, 02 Jul 2024 10:00:03 GMT",
    ]

    pages = [page async for page in alloy.query_pages(aqs.query("designs_x"), page_size=2)]

    assert [page.number for page in pages] == [1, 2, 3]
    assert [len(page.items) for page in pages] == [2, 2, 1]
    assert pages[0].server_time == datetime(2024, 7, 2, 10, 0, 0, tzinfo=UTC)  # not our clock
    assert pages[2].server_time == datetime(2024, 7, 2, 10, 0, 3, tzinfo=UTC)
    assert alloy.last_server_time == pages[2].server_time
    assert scripted.calls["query"] == 3  # the short third page ends paging


async def test_an_idle_query_costs_one_request(scripted: ScriptedAlloy, alloy: AlloyClient) -> None:
    scripted.page_dates = ["Wed, 03 Jul 2024 08:30:00 GMT"]

    pages = [page async for page in alloy.query_pages(aqs.query("designs_x"))]
    items = [item async for item in alloy.query(aqs.query("designs_x"))]

    assert len(pages) == 1 and pages[0].items == [] and items == []
    assert pages[0].server_time == datetime(2024, 7, 3, 8, 30, tzinfo=UTC)
    assert scripted.calls["query"] == 2  # one for each of the two queries


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Tue, 02 Jul 2024 10:00:00 GMT", datetime(2024, 7, 2, 10, 0, tzinfo=UTC)),
        ("Tue, 02 Jul 2024 12:00:00 +0200", datetime(2024, 7, 2, 10, 0, tzinfo=UTC)),
        ("Tue, 02 Jul 2024 10:00:00 -0000", datetime(2024, 7, 2, 10, 0, tzinfo=UTC)),
        ("yesterday", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_http_date(header: str | None, expected: datetime | None) -> None:
    assert parse_http_date(header) == expected

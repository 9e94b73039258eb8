"""`AlloyClient` against `alloysync emulator` over real HTTP: paging, edits, conflicts, limits, faults,
designs and Alloy's clock.

The emulator sends items as real Alloy does, without `lastEditDate`; the tests that compare item
dates start one with `--item-dates`.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY
from pydantic import SecretStr

from alloysync.alloy import aqs
from alloysync.alloy.client import AlloyClient
from alloysync.alloy.designs import NewAttribute, attribute_options
from alloysync.alloy.errors import AlloyError
from alloysync.alloy.models import Item, parse_alloy_datetime
from alloysync.alloy.ratelimit import RateLimits, TokenBucket
from alloysync.local.redis_server import free_port
from alloysync.settings import Settings
from tests.alloy.support import generous_limits
from tests.support.emulator import EmulatorProcess

JOBS = "designs_alloysyncJobs"
TITLE = "attributes_itemsTitle"
STATUS = "attributes_alloysyncJobsStatus"
MESSAGE = "attributes_alloysyncJobsMessage"
STARTED = "attributes_alloysyncJobsLastRunStarted"
RUN_COUNT = "attributes_alloysyncJobsRunCount"
WIDGETS = "designs_widgets"


def _draft(design: str, **values: Any) -> dict[str, Any]:
    return {"designCode": design, "attributes": [{"attributeCode": c, "value": v} for c, v in values.items()]}


def _count(stats: dict[str, dict[str, int]], family: str, status: str | None = None) -> int:
    counts = stats.get(family, {})
    return sum(counts.values()) if status is None else counts.get(status, 0)


def _metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _define_widgets(emulator: EmulatorProcess) -> None:
    """The designs the paging tests fill (items are validated against their design)."""
    emulator.define_design(WIDGETS, {"attributes_n": "Number", "attributes_colour": "String"})
    emulator.define_design("designs_other", {"attributes_n": "Number"})


@pytest.fixture
def widgets(emulator: EmulatorProcess) -> EmulatorProcess:
    _define_widgets(emulator)
    return emulator


@pytest.fixture
def dated_emulator(tmp_path: Path) -> Iterator[EmulatorProcess]:
    """An emulator whose items carry `lastEditDate` (`--item-dates`), with the widget designs."""
    process = EmulatorProcess(tmp_path / "dated-emulator", item_dates=True)
    process.start()
    _define_widgets(process)
    yield process
    process.stop()


@pytest.fixture
async def dated_alloy(dated_emulator: EmulatorProcess) -> AsyncIterator[AlloyClient]:
    async with AlloyClient(
        dated_emulator.url, dated_emulator.token, timeout=5.0, limits=generous_limits(), backoff_base=0.02
    ) as client:
        yield client


# --- paging ----------------------------------------------------------------------------------


@pytest.mark.parametrize("page_size", [100, 37])
async def test_paging_yields_each_item_exactly_once(
    dated_emulator: EmulatorProcess, dated_alloy: AlloyClient, page_size: int
) -> None:
    emulator, alloy = dated_emulator, dated_alloy
    early = emulator.bulk_create([_draft(WIDGETS, attributes_n=i) for i in range(120)])
    boundary = max(parse_alloy_datetime(item["lastEditDate"]) for item in early)
    await asyncio.sleep(0.01)
    later = emulator.bulk_create([_draft(WIDGETS, attributes_n=i) for i in range(1050)])
    emulator.bulk_create([_draft("designs_other", attributes_n=1) for _ in range(30)])
    assert min(parse_alloy_datetime(item["lastEditDate"]) for item in later) > boundary
    queries_before = _count(emulator.stats(), "query")

    since = aqs.greater_than(aqs.item_property("lastEditDate"), aqs.datetime_value(boundary))
    seen = [item.itemId async for item in alloy.query(aqs.query(WIDGETS, since), page_size=page_size)]

    assert len(seen) == len(set(seen)) == 1050
    assert set(seen) == {item["itemId"] for item in later}
    pages = -(-1050 // page_size)  # the last page is short, so no extra empty page is needed
    assert _count(emulator.stats(), "query") - queries_before == pages

    everything = [item async for item in alloy.query(aqs.query(WIDGETS))]
    assert len({item.itemId for item in everything}) == len(everything) == 1170


async def test_paging_stops_at_an_empty_page_and_is_lazy(
    widgets: EmulatorProcess, alloy: AlloyClient
) -> None:
    emulator = widgets
    emulator.bulk_create([_draft(WIDGETS, attributes_n=i) for i in range(50)])
    before = _count(emulator.stats(), "query")

    ids = [item.itemId async for item in alloy.query(aqs.query(WIDGETS), page_size=25)]
    assert len(set(ids)) == 50
    # Two full pages, then an empty third page ends the iteration.
    assert _count(emulator.stats(), "query") - before == 3

    before = _count(emulator.stats(), "query")
    async for _item in alloy.query(aqs.query(WIDGETS), page_size=10):
        break
    assert _count(emulator.stats(), "query") - before == 1

    empty = [item async for item in alloy.query(aqs.query("designs_other"))]  # a design with no items
    assert empty == []


async def test_items_moving_between_pages_are_not_yielded_twice(
    widgets: EmulatorProcess, alloy: AlloyClient
) -> None:
    emulator = widgets
    emulator.bulk_create([_draft(WIDGETS, attributes_n=i) for i in range(250)])
    ordered = aqs.query(WIDGETS, sort_by_last_edit="asc")

    seen: list[str] = []
    async for item in alloy.query(ordered, page_size=100):
        seen.append(item.itemId)
        if len(seen) == 100:
            # Edits during paging move items to the end of the lastEditDate order, into later pages.
            for moved in seen[:5]:
                await asyncio.to_thread(emulator.edit_item, moved, {"attributes_n": -1})

    assert len(seen) == len(set(seen))
    assert len(seen) >= 245  # items shifted into pages already read are missed by design (poller overlap)


async def test_query_filters_on_attributes(widgets: EmulatorProcess, alloy: AlloyClient) -> None:
    emulator = widgets
    emulator.bulk_create(
        [_draft(WIDGETS, attributes_colour=colour, attributes_n=i) for i, colour in enumerate("rgbrgbrgb")]
    )
    red_or_green = aqs.or_(
        aqs.equals(aqs.attribute("attributes_colour"), aqs.string("r")),
        aqs.equals(aqs.attribute("attributes_colour"), aqs.string("g")),
    )
    small = aqs.less_than(aqs.attribute("attributes_n"), aqs.number(6))
    found = [item.values() async for item in alloy.query(aqs.query(WIDGETS, red_or_green, small))]
    assert sorted((values["attributes_colour"], values["attributes_n"]) for values in found) == [
        ("g", 1),
        ("g", 4),
        ("r", 0),
        ("r", 3),
    ]


# --- reading and writing items ---------------------------------------------------------------


async def test_create_read_edit_and_delete(emulator: EmulatorProcess, alloy: AlloyClient) -> None:
    started = datetime(2024, 7, 2, 8, 30, 15, 123456, tzinfo=UTC)
    created = await alloy.create_item(JOBS, {TITLE: "Nightly", STATUS: "Scheduled"})
    assert created.designCode == JOBS and created.collection == "Live"
    assert created.values() == {TITLE: "Nightly", STATUS: "Scheduled"}
    assert created.signature and created.lastEditDate is None  # real Alloy sends no item dates

    read = await alloy.get_item(created.itemId)
    assert read.signature == created.signature

    edited = await alloy.edit_item(created.itemId, {STATUS: "Running", STARTED: started}, read.signature)
    assert edited.signature != read.signature
    assert edited.value(TITLE) == "Nightly"  # partial edit: untouched attributes keep their value
    assert edited.value(STARTED) == "2024-07-02T08:30:15.123Z"
    assert emulator.attributes(created.itemId)[STATUS] == "Running"

    await alloy.delete_item(created.itemId)
    with pytest.raises(AlloyError) as missing:
        await alloy.get_item(created.itemId)
    assert missing.value.is_not_found and missing.value.status == 404
    assert missing.value.request == f"GET /api/item/{created.itemId}"


async def test_item_dates_are_read_where_alloy_sends_them(
    dated_emulator: EmulatorProcess, dated_alloy: AlloyClient
) -> None:
    created = await dated_alloy.create_item(WIDGETS, {"attributes_n": 1})
    await asyncio.sleep(0.01)
    edited = await dated_alloy.edit_item(created.itemId, {"attributes_n": 2}, created.signature)
    assert created.lastEditDate is not None and edited.lastEditDate is not None
    assert edited.lastEditDate > created.lastEditDate


async def test_rejected_values_fail_without_retries(emulator: EmulatorProcess, alloy: AlloyClient) -> None:
    item = await alloy.create_item(JOBS, {TITLE: "typed"})
    writes = _count(emulator.stats(), "write")

    with pytest.raises(AlloyError) as rejected:
        await alloy.edit_item(item.itemId, {RUN_COUNT: "not a number"}, item.signature)

    assert rejected.value.status == 400 and not rejected.value.is_retryable
    assert _count(emulator.stats(), "write") - writes == 1


async def test_signature_conflict_keeps_the_users_edit(emulator: EmulatorProcess, alloy: AlloyClient) -> None:
    item = await alloy.create_item(JOBS, {TITLE: "Original title", STATUS: "Queued", MESSAGE: "waiting"})
    ours = await alloy.get_item(item.itemId)

    # A user edits the title between our read and our write.
    await asyncio.to_thread(emulator.edit_item, item.itemId, {TITLE: "Title the user typed"})

    updated = await alloy.update_owned(
        item.itemId, {STATUS: "Running", MESSAGE: None}, signature=ours.signature
    )

    assert updated.value(TITLE) == "Title the user typed"
    assert updated.value(STATUS) == "Running"
    stored = emulator.attributes(item.itemId)
    assert stored[TITLE] == "Title the user typed"
    assert stored[STATUS] == "Running"
    assert stored.get(MESSAGE) is None
    assert _count(emulator.stats(), "write", "409") == 1


@pytest.mark.parametrize("status", [400, 412])
async def test_a_stale_signature_known_only_by_its_category_is_resolved_like_a_409(
    emulator: EmulatorProcess, alloy: AlloyClient, status: int
) -> None:
    """Alloy does not document the status of a stale signature: the category alone must be enough."""
    item = await alloy.create_item(JOBS, {TITLE: "Original title", STATUS: "Queued"})
    ours = await alloy.get_item(item.itemId)
    await asyncio.to_thread(emulator.edit_item, item.itemId, {TITLE: "Title the user typed"})
    # The error then carries the category ItemSignatureMismatch, an unrelated error code, that status.
    emulator.set_faults(signature_mismatch_status=status, signature_mismatch_error_code="E1042")

    updated = await alloy.update_owned(item.itemId, {STATUS: "Running"}, signature=ours.signature)

    assert updated.value(TITLE) == "Title the user typed" and updated.value(STATUS) == "Running"
    stats = emulator.stats()
    assert _count(stats, "write", str(status)) == 1  # the stale edit, not retried as it stood
    assert _count(stats, "write", "409") == 0


async def test_update_owned_reads_first_and_gives_up_after_max_conflicts(
    emulator: EmulatorProcess, alloy: AlloyClient
) -> None:
    item = await alloy.create_item(JOBS, {TITLE: "t"})
    updated = await alloy.update_owned(item.itemId, {STATUS: "Queued"})
    assert updated.value(STATUS) == "Queued"

    await asyncio.to_thread(emulator.edit_item, item.itemId, {TITLE: "changed"})
    with pytest.raises(AlloyError) as conflict:
        await alloy.update_owned(item.itemId, {STATUS: "Running"}, signature=item.signature, max_conflicts=0)
    assert conflict.value.is_signature_mismatch
    assert emulator.attributes(item.itemId)[STATUS] == "Queued"


async def test_concurrent_owned_updates_and_user_edits_converge(
    emulator: EmulatorProcess, alloy: AlloyClient
) -> None:
    item = await alloy.create_item(JOBS, {TITLE: "t0", STATUS: "Queued"})
    stale = item.signature

    def user_edit(title: str) -> None:
        # The user's own read-then-write can lose against ours too; a person would simply save again.
        for _ in range(50):
            try:
                emulator.edit_item(item.itemId, {TITLE: title})
                return
            except RuntimeError as conflict:
                assert "409" in str(conflict)
        raise AssertionError("the user's edit never got through")

    async def user_edits() -> None:
        for n in range(1, 6):
            await asyncio.to_thread(user_edit, f"t{n}")

    async def our_updates() -> None:
        for n in range(1, 6):
            await alloy.update_owned(item.itemId, {RUN_COUNT: n}, signature=stale, max_conflicts=20)

    await asyncio.gather(user_edits(), our_updates())
    stored = emulator.attributes(item.itemId)
    assert stored[TITLE] == "t5"
    assert stored[RUN_COUNT] == 5
    assert stored[STATUS] == "Queued"


# --- designs ---------------------------------------------------------------------------------

HEX24 = re.compile(r"_[0-9a-f]{24}$")


async def test_create_a_design_and_add_attributes_with_each_returned_signature(
    emulator: EmulatorProcess, alloy: AlloyClient
) -> None:
    design = await alloy.create_design("Pump stations")
    assert design.code.startswith("designs_pumpStations_") and HEX24.search(design.code)
    assert design.name == "Pump stations" and design.signature
    assert design.attribute(TITLE) is not None  # every design carries Alloy's items interface

    status = NewAttribute("Status", "String", attribute_options("String", max_length=20))
    added = await alloy.add_design_attribute(design.code, status, design.signature)
    assert HEX24.search(added.attribute_code) and added.attribute_code.startswith("attributes_pumpStations")
    assert added.design is not None and added.design.signature != design.signature
    runs = NewAttribute("Run count", "Number", attribute_options("Number"))
    second = await alloy.add_design_attribute(design.code, runs, added.design.signature)

    read = await alloy.get_design(design.code)
    assert second.design is not None and read.signature == second.design.signature
    status_attribute = read.attribute(added.attribute_code)
    assert status_attribute is not None
    assert (status_attribute.name, status_attribute.type, status_attribute.max_length) == (
        "Status",
        "String",
        20,
    )
    run_count = read.attribute(second.attribute_code)
    assert run_count is not None and run_count.type == "Number" and run_count.options.decimalPlaces == 0

    listed = await alloy.list_designs("pump STATIONS")
    assert [found.code for found in listed] == [design.code]
    assert await alloy.list_designs("no design has this name") == []


@pytest.mark.parametrize("status", [409, 400])
async def test_a_stale_design_signature_is_refused_and_known_by_its_category(
    emulator: EmulatorProcess, alloy: AlloyClient, status: int
) -> None:
    emulator.set_faults(signature_mismatch_status=status, signature_mismatch_error_code="E77")
    design = await alloy.create_design("Culverts")
    first = NewAttribute("Depth", "Number", attribute_options("Number"))
    await alloy.add_design_attribute(design.code, first, design.signature)

    second = NewAttribute("Notes", "String", attribute_options("String", max_length=100))
    with pytest.raises(AlloyError) as stale:
        await alloy.add_design_attribute(design.code, second, design.signature)  # the old signature
    assert stale.value.is_design_signature_mismatch and stale.value.status == status
    assert not stale.value.is_retryable and not stale.value.is_signature_mismatch
    assert "design was edited" in str(stale.value)
    assert _count(emulator.stats(), "write", str(status)) == 1  # refused once, never repeated


async def test_a_missing_design_is_not_found(emulator: EmulatorProcess, alloy: AlloyClient) -> None:
    with pytest.raises(AlloyError) as missing:
        await alloy.get_design("designs_noSuchThing_65a1b2c3d4e5f60718293a4b")
    assert missing.value.is_not_found and "no such design" in str(missing.value)


async def test_query_pages_carry_the_emulators_clock(emulator: EmulatorProcess, alloy: AlloyClient) -> None:
    emulator.bulk_create([_draft(JOBS, **{TITLE: f"job {n}"}) for n in range(5)])
    before = datetime.now(UTC).replace(microsecond=0)
    pages = [page async for page in alloy.query_pages(aqs.query(JOBS), page_size=2)]
    after = datetime.now(UTC)

    assert [len(page.items) for page in pages] == [2, 2, 1]
    for page in pages:
        assert page.server_time is not None and page.server_time.tzinfo is not None
        assert before - timedelta(seconds=1) <= page.server_time <= after  # the Date header: whole seconds
    assert alloy.last_server_time == pages[-1].server_time


# --- rate limits -----------------------------------------------------------------------------


async def _concurrent_edits(client: AlloyClient, items: list[dict[str, Any]], label: str) -> list[Item]:
    return await asyncio.gather(
        *(
            client.edit_item(item["itemId"], {MESSAGE: f"{label} {n}"}, item["signature"])
            for n, item in enumerate(items)
        )
    )


async def test_429s_are_waited_out(emulator: EmulatorProcess) -> None:
    items = emulator.bulk_create([_draft(JOBS, **{TITLE: f"job {n}"}) for n in range(15)])
    emulator.set_rate_limits(window_seconds=0.5, write=5)
    wait_before = _metric("alloysync_alloy_rate_limit_wait_seconds_total", endpoint="write")
    # This client does not know the server's budget: it runs into 429s and must wait them out.
    async with AlloyClient(emulator.url, emulator.token, max_retries=10, limits=generous_limits()) as client:
        edited = await _concurrent_edits(client, items, "edit")

    assert [item.value(MESSAGE) for item in edited] == [f"edit {n}" for n in range(15)]
    for n, item in enumerate(items):
        assert emulator.attributes(item["itemId"])[MESSAGE] == f"edit {n}"
    stats = emulator.stats()
    assert _count(stats, "write", "200") == 15
    assert _count(stats, "write", "429") >= 1
    assert _metric("alloysync_alloy_rate_limit_wait_seconds_total", endpoint="write") > wait_before


async def test_client_budget_prevents_429s(emulator: EmulatorProcess) -> None:
    items = emulator.bulk_create([_draft(JOBS, **{TITLE: f"job {n}"}) for n in range(20)])
    emulator.set_rate_limits(window_seconds=0.5, write=5)
    limits = RateLimits(TokenBucket(100), TokenBucket(100), TokenBucket(5, window=0.5))
    started = time.monotonic()
    async with AlloyClient(emulator.url, emulator.token, max_retries=10, limits=limits) as client:
        edited = await _concurrent_edits(client, items, "paced")

    assert len(edited) == 20
    for n, item in enumerate(items):
        assert emulator.attributes(item["itemId"])[MESSAGE] == f"paced {n}"
    stats = emulator.stats()
    assert _count(stats, "write", "200") == 20
    assert _count(stats, "write", "429") <= 3  # in-flight timing may cost one now and then, not more
    assert time.monotonic() - started >= 1.5  # 20 edits at 5 per 0.5 s: paced, not by luck


async def test_server_headers_pause_the_family(emulator: EmulatorProcess, alloy: AlloyClient) -> None:
    item = await alloy.create_item(JOBS, {TITLE: "read me"})
    emulator.set_rate_limits(window_seconds=1.0, read=3)

    # Our own read budget is huge; only the server's X-Rate-Limit-* headers can stop us in time.
    reads = 0
    while alloy.limits["read"].blocked_for == 0:
        await alloy.get_item(item.itemId)
        reads += 1
        assert reads <= 6, "a response saying 0 remaining should have paused the read family"
    blocked = alloy.limits["read"].blocked_for
    assert 0 < blocked <= 1.0
    assert alloy.limits["write"].blocked_for == 0

    started = time.monotonic()
    await alloy.get_item(item.itemId)
    assert time.monotonic() - started >= blocked - 0.05
    stats = emulator.stats()
    assert _count(stats, "read", "429") == 0
    assert _count(stats, "read", "200") == reads + 1


# --- failures --------------------------------------------------------------------------------


async def test_wrong_token_fails_fast_with_a_clear_message(
    emulator: EmulatorProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    wrong = "wrong-token-1234567890"
    started = time.monotonic()
    async with AlloyClient(emulator.url, wrong, limits=generous_limits()) as client:
        with pytest.raises(AlloyError) as rejected:
            await client.get_item("5f3a9c1e2b4d6e8f0a1b2c3d")
        assert wrong not in repr(client)

    assert time.monotonic() - started < 2
    error = rejected.value
    assert error.is_unauthorized and not error.is_retryable
    assert "ALLOYSYNC_ALLOY_TOKEN" in str(error)
    assert _count(emulator.stats(), "read") == 1  # no retries
    output = capsys.readouterr()
    for text in (str(error), repr(error), output.out, output.err):
        assert wrong not in text
        assert emulator.token not in text


async def test_unreachable_host_fails_quickly_with_a_clear_message() -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    started = time.monotonic()
    async with AlloyClient(url, "t", max_retries=2, backoff_base=0.05, limits=generous_limits()) as client:
        with pytest.raises(AlloyError) as unreachable:
            await client.query(aqs.query(JOBS)).__anext__()

    assert time.monotonic() - started < 3
    error = unreachable.value
    assert error.status is None and error.is_retryable
    assert url in str(error) and "ALLOYSYNC_ALLOY_URL" in str(error)


async def test_timeouts_are_retried_then_reported(emulator: EmulatorProcess) -> None:
    emulator.set_faults(latency_ms=1000)
    async with AlloyClient(
        emulator.url, emulator.token, timeout=0.2, max_retries=1, backoff_base=0.01, limits=generous_limits()
    ) as client:
        with pytest.raises(AlloyError) as slow:
            await client.get_item("5f3a9c1e2b4d6e8f0a1b2c3d")
    assert slow.value.code == "Timeout" and slow.value.status is None
    assert "0.2 s" in str(slow.value)


async def test_create_is_not_retried_when_it_may_have_been_processed(emulator: EmulatorProcess) -> None:
    emulator.set_faults(down=True, down_mode="reset")
    async with AlloyClient(
        emulator.url, emulator.token, max_retries=3, backoff_base=0.01, limits=generous_limits()
    ) as client:
        with pytest.raises(AlloyError) as reset:
            await client.create_item(JOBS, {TITLE: "once"})
        assert reset.value.status is None
        assert _count(emulator.stats(), "write") == 1  # a reset connection may have created it: no retry

        with pytest.raises(AlloyError):
            await client.get_item("5f3a9c1e2b4d6e8f0a1b2c3d")
        # Reads are safe to repeat: 4 attempts (aiohttp itself may retry an idempotent request once more
        # when a pooled keep-alive connection turns out closed).
        assert _count(emulator.stats(), "read") >= 4

        emulator.set_faults(down_mode="503")
        with pytest.raises(AlloyError) as unavailable:
            await client.create_item(JOBS, {TITLE: "refused"})
        assert unavailable.value.status == 503
        assert _count(emulator.stats(), "write", "503") == 4  # refused outright: safe to retry


async def test_injected_errors_and_html_pages_are_retried_through(
    emulator: EmulatorProcess, alloy: AlloyClient
) -> None:
    items = emulator.bulk_create([_draft(JOBS, **{TITLE: f"job {n}"}) for n in range(60)])
    emulator.set_faults(error_rate=0.3, html_error_share=0.5)
    alloy.max_retries = 12

    reads = await asyncio.gather(*(alloy.get_item(item["itemId"]) for item in items[:30]))
    assert [item.itemId for item in reads] == [item["itemId"] for item in items[:30]]
    found = [item.itemId async for item in alloy.query(aqs.query(JOBS), page_size=7)]
    assert sorted(found) == sorted(item["itemId"] for item in items)
    for item in items[:10]:
        await alloy.update_owned(item["itemId"], {STATUS: "Succeeded"}, signature=item["signature"])

    emulator.set_faults(error_rate=0)
    for item in items[:10]:
        assert emulator.attributes(item["itemId"])[STATUS] == "Succeeded"
    stats = emulator.stats()
    failures = sum(_count(stats, family, "500") + _count(stats, family, "502") for family in stats)
    html_pages = sum(_count(stats, family, "502") for family in stats)
    assert failures >= 5 and html_pages >= 1


# --- construction and metrics ----------------------------------------------------------------


async def test_from_settings_and_metrics(emulator: EmulatorProcess) -> None:
    settings = Settings(
        alloy_url=emulator.url + "/", alloy_token=SecretStr(emulator.token), alloy_max_retries=2
    )
    client = AlloyClient.from_settings(settings)
    assert client.base_url == emulator.url and client.max_retries == 2
    assert client.limits["write"].per_window == 150
    assert emulator.token not in repr(client)

    ok_before = _metric("alloysync_alloy_requests_total", endpoint="write", status="200")
    missing_before = _metric("alloysync_alloy_requests_total", endpoint="read", status="404")
    durations_before = _metric("alloysync_alloy_request_duration_seconds_count", endpoint="read")
    async with client:
        await client.create_item(JOBS, {TITLE: "metrics"})
        with pytest.raises(AlloyError):
            await client.get_item("5f3a9c1e2b4d6e8f0a1b2c3d")
    assert _metric("alloysync_alloy_requests_total", endpoint="write", status="200") == ok_before + 1
    assert _metric("alloysync_alloy_requests_total", endpoint="read", status="404") == missing_before + 1
    assert _metric("alloysync_alloy_request_duration_seconds_count", endpoint="read") == durations_before + 1


async def test_network_errors_are_counted(emulator: EmulatorProcess) -> None:
    before = _metric("alloysync_alloy_requests_total", endpoint="read", status="error")
    emulator.set_faults(down=True, down_mode="reset")
    async with AlloyClient(emulator.url, emulator.token, max_retries=1, backoff_base=0.01) as client:
        with pytest.raises(AlloyError):
            await client.get_item("5f3a9c1e2b4d6e8f0a1b2c3d")
    assert _metric("alloysync_alloy_requests_total", endpoint="read", status="error") == before + 2

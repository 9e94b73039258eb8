"""The reporter against real Redis and the emulator: coalescing, pacing, outages and takeover."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis
import structlog
from pydantic import ValidationError

from alloysync.alloy.client import AlloyClient
from alloysync.alloy.ratelimit import TokenBucket
from alloysync.local.redis_server import RedisServer
from alloysync.model.events import Event, Status
from alloysync.serve.reporter import Reporter, sample_outbox
from alloysync.settings import JobAttributeCodes, Settings, describe_validation_error
from alloysync.state import keys
from alloysync.state.connections import connect_async
from alloysync.state.outbox import Outbox
from tests.support.emulator import EmulatorProcess

CODES = JobAttributeCodes()


@pytest.fixture
async def client(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    connection = connect_async(redis_server.url)
    yield connection
    await connection.aclose()


@pytest.fixture
async def alloy(emulator: EmulatorProcess) -> AsyncIterator[AlloyClient]:
    async with AlloyClient(
        emulator.url, emulator.token, backoff_base=0.05, backoff_max=0.2, max_retries=1
    ) as c:
        yield c


def jobs(emulator: EmulatorProcess, count: int) -> list[str]:
    items = [
        {
            "designCode": "designs_alloysyncJobs",
            "attributes": [{"attributeCode": CODES.title, "value": f"j{n}"}],
        }
        for n in range(count)
    ]
    return [item["itemId"] for item in emulator.bulk_create(items)]


async def emit(client: aioredis.Redis, item_id: str, kind: str, **attributes: Any) -> None:
    await client.xadd(keys.OUTBOX, Event(item_id, kind, attributes).fields())  # type: ignore[arg-type]


async def lifecycle(client: aioredis.Redis, item_id: str, n: int) -> None:
    await emit(client, item_id, "queued", status=Status.QUEUED, message="Queued")
    await emit(client, item_id, "started", status=Status.RUNNING, last_run_started="2026-11-21T10:00:00.000Z")
    await emit(client, item_id, "succeeded", status=Status.SUCCEEDED, message=f"done {n}", result={"n": n})


@contextlib.asynccontextmanager
async def running(reporter: Reporter) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(reporter.run())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def until(check: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


def writes(emulator: EmulatorProcess) -> int:
    return sum(emulator.stats().get("write", {}).values())


async def test_events_are_coalesced_to_one_edit_per_item(
    client: aioredis.Redis, alloy: AlloyClient, emulator: EmulatorProcess
) -> None:
    items = jobs(emulator, 20)
    for n, item_id in enumerate(items):
        await lifecycle(client, item_id, n)
    reporter = Reporter(Settings(), alloy, client, consumer="r1")
    async with running(reporter):
        await until(lambda: _drained(client), 20)
    assert writes(emulator) == 20  # 60 events, 20 edits
    for n, item_id in enumerate(items):
        values = emulator.attributes(item_id)
        assert values[CODES.status] == "Succeeded" and values[CODES.message] == f"done {n}"
        assert values[CODES.result] == {"n": n} and values[CODES.title] == f"j{n}"
        assert values[CODES.last_run_started] == "2026-11-21T10:00:00.000Z"


async def test_writes_are_paced_under_the_budget(
    client: aioredis.Redis, alloy: AlloyClient, emulator: EmulatorProcess
) -> None:
    items = jobs(emulator, 12)
    for item_id in items:
        await emit(client, item_id, "queued", status=Status.QUEUED)
    budget = TokenBucket(per_window=5, window=2.0, burst=1)  # at most 5 edits in any 2 s
    reporter = Reporter(Settings(), alloy, client, consumer="r1", budget=budget)
    started = time.monotonic()
    async with running(reporter):
        await until(lambda: _drained(client), 30)
    elapsed = time.monotonic() - started
    assert writes(emulator) == 12
    assert elapsed >= (12 - 1) / (4 / 2.0) - 0.5, elapsed  # one burst token, then 4 per 2 s


async def test_events_wait_out_an_outage_and_land_after_it(
    client: aioredis.Redis, alloy: AlloyClient, emulator: EmulatorProcess
) -> None:
    items = jobs(emulator, 5)
    emulator.set_faults(down=True, down_mode="reset")
    for n, item_id in enumerate(items):
        await lifecycle(client, item_id, n)
    reporter = Reporter(Settings(), alloy, client, consumer="r1")
    async with running(reporter):
        await asyncio.sleep(3)
        assert await client.xlen(keys.OUTBOX) == 15
        pending = await client.xpending(keys.OUTBOX, keys.OUTBOX_GROUP)
        assert pending["pending"] == 15  # read, not acknowledged
        depth, age = await sample_outbox(client)
        assert depth == 15 and age >= 3
        emulator.set_faults(down=False)
        await until(lambda: _drained(client), 60)
    assert all(emulator.attributes(item_id)[CODES.status] == "Succeeded" for item_id in items)


async def test_a_dead_reporters_events_are_taken_over_and_never_written_over_newer_ones(
    client: aioredis.Redis, alloy: AlloyClient, emulator: EmulatorProcess
) -> None:
    [item_id] = jobs(emulator, 1)
    survivor = Reporter(Settings(), alloy, client, consumer="replica-b", claim_idle_ms=1500, claim_every=0.3)
    await survivor.ensure_group()
    await emit(client, item_id, "queued", status=Status.QUEUED, message="Queued")
    await emit(client, item_id, "started", status=Status.RUNNING, message="Running")
    # What a reporter that died leaves behind: events it read and never acknowledged.
    await client.xreadgroup(keys.OUTBOX_GROUP, "replica-a", {keys.OUTBOX: ">"})
    async with running(survivor):  # already running when replica-a dies; it takes over later
        await emit(client, item_id, "succeeded", status=Status.SUCCEEDED, message="done")
        await until(lambda: _drained(client), 30)
    values = emulator.attributes(item_id)
    assert (values[CODES.status], values[CODES.message]) == ("Succeeded", "done")  # not the older Running
    assert writes(emulator) == 1  # the taken-over events were older than what was written: no write


async def test_reported_marks_kept_by_an_older_version_still_hold_after_the_upgrade(
    client: aioredis.Redis, alloy: AlloyClient, emulator: EmulatorProcess
) -> None:
    """A store written before the marks joined the job hashes keeps them in `alloysync:reported`:
    the reporter moves them before it reads, so an older event is still never written over them."""
    [item_id] = jobs(emulator, 1)
    await emit(client, item_id, "started", status=Status.RUNNING, message="Running")
    await client.hset(keys.LEGACY_REPORTED, item_id, "9999999999999-0")  # a newer event was written
    reporter = Reporter(Settings(), alloy, client, consumer="r1")
    async with running(reporter):
        await until(lambda: _drained(client), 10)
    assert writes(emulator) == 0  # older than the moved mark: acknowledged, not written
    assert not await client.exists(keys.LEGACY_REPORTED)
    assert await client.hget(keys.job(item_id), "reported") == "9999999999999-0"


async def test_moving_the_old_marks_never_puts_a_newer_mark_back(
    client: aioredis.Redis, alloy: AlloyClient, emulator: EmulatorProcess
) -> None:
    """In a rolling upgrade a reporter of this version may have written a mark in the job hash
    while one of the older version still kept its own: the older mark does not replace it."""
    [item_id, other] = jobs(emulator, 2)
    await client.hset(keys.job(item_id), "reported", "2000000000000-5")  # written by this version
    await client.hset(keys.LEGACY_REPORTED, mapping={item_id: "1999999999999-0", other: "1999999999999-1"})
    assert await Outbox(client).move_reported_marks() == 2
    assert await client.hget(keys.job(item_id), "reported") == "2000000000000-5"
    assert await client.hget(keys.job(other), "reported") == "1999999999999-1"
    assert not await client.exists(keys.LEGACY_REPORTED)


async def test_idle_writers_do_not_spend_the_budget(
    client: aioredis.Redis, alloy: AlloyClient, emulator: EmulatorProcess
) -> None:
    [item_id] = jobs(emulator, 1)
    budget = TokenBucket(per_window=10, window=600.0, burst=10)  # ten tokens, hardly any refill
    reporter = Reporter(Settings(), alloy, client, consumer="r1", budget=budget, concurrency=4)
    async with running(reporter):
        await asyncio.sleep(0.3)
        await emit(client, item_id, "queued", status=Status.QUEUED)
        await until(lambda: _drained(client), 10)
        await asyncio.sleep(0.5)
    assert budget.tokens < 9.2 and budget.tokens > 8.5  # one write, one token


async def test_deleted_items_are_dropped_and_run_requested_is_reset(
    client: aioredis.Redis, alloy: AlloyClient, emulator: EmulatorProcess
) -> None:
    [kept] = jobs(emulator, 1)
    await client.sadd(keys.JOBS, kept)
    await client.hset(keys.job(kept), mapping={"request_pending": "1", "request_seq": "1"})
    await emit(client, "0123456789abcdef01234567", "queued", status=Status.QUEUED)  # no such item
    await emit(client, kept, "request_reset", run_requested=False)
    reporter = Reporter(Settings(), alloy, client, consumer="r1")
    async with running(reporter):
        await until(lambda: _drained(client), 20)
    assert emulator.attributes(kept)[CODES.run_requested] is False
    job = await client.hgetall(keys.job(kept))
    # Views requested before the reset landed (by Redis's clock, in ms) can no longer start a run.
    assert job["request_pending"] == "0" and abs(int(job["request_after"]) / 1000 - time.time()) < 30


async def _drained(client: aioredis.Redis) -> bool:
    return bool(await client.xlen(keys.OUTBOX) == 0)


async def test_after_an_outage_a_reporter_does_not_take_over_its_own_events(
    client: aioredis.Redis, alloy: AlloyClient, emulator: EmulatorProcess
) -> None:
    [item_id] = jobs(emulator, 1)
    emulator.set_faults(down=True, down_mode="reset")
    reporter = Reporter(Settings(), alloy, client, consumer="r1", claim_idle_ms=300, claim_every=0.1)
    with structlog.testing.capture_logs() as logged:
        async with running(reporter):
            await emit(client, item_id, "queued", status=Status.QUEUED, message="Queued")
            await asyncio.sleep(1.5)  # its own entry waits (write backing off) far longer than 300 ms
            assert await reporter.take_over_idle() == 0
            pending = await client.xpending_range(keys.OUTBOX, keys.OUTBOX_GROUP, "-", "+", 10)
            assert [(entry["consumer"], entry["times_delivered"]) for entry in pending] == [("r1", 1)]
            emulator.set_faults(down=False)
            await until(lambda: _drained(client), 30)
    assert not [line for line in logged if line["event"] == "took over status events of another reporter"]
    assert emulator.attributes(item_id)[CODES.status] == "Queued"


# --- coalescing in every regime (ALLOYSYNC_REPORT_COALESCE) ---------------------------------------


async def test_a_run_shorter_than_the_window_costs_one_edit_with_an_ample_budget(
    client: aioredis.Redis, alloy: AlloyClient, emulator: EmulatorProcess
) -> None:
    items = jobs(emulator, 5)
    reporter = Reporter(Settings(report_coalesce=1.0), alloy, client, consumer="r1")
    async with running(reporter):
        await asyncio.sleep(0.3)  # idle writers, an ample budget: nothing else delays a write
        for n, item_id in enumerate(items):  # each run: Queued → Running → Succeeded within 0.4 s
            await emit(client, item_id, "queued", status=Status.QUEUED, message="Queued")
            await asyncio.sleep(0.2)
            await emit(client, item_id, "started", status=Status.RUNNING, message="Running")
            await asyncio.sleep(0.2)
            await emit(client, item_id, "succeeded", status=Status.SUCCEEDED, message=f"done {n}")
        await until(lambda: _drained(client), 20)
    assert writes(emulator) == 5  # one edit per run, not three
    for n, item_id in enumerate(items):
        assert emulator.attributes(item_id)[CODES.message] == f"done {n}"
    job = {str(name): value for name, value in (await client.hgetall(keys.job(items[0]))).items()}
    assert job["signature"] and not [name for name in job if name.startswith("view_")]  # not a known job


async def test_a_run_longer_than_the_window_shows_running_before_succeeded(
    client: aioredis.Redis, alloy: AlloyClient, emulator: EmulatorProcess
) -> None:
    [item_id] = jobs(emulator, 1)
    await client.sadd(keys.JOBS, item_id)
    reporter = Reporter(Settings(report_coalesce=0.6), alloy, client, consumer="r1")
    async with running(reporter):
        await emit(client, item_id, "queued", status=Status.QUEUED, message="Queued")
        await emit(client, item_id, "started", status=Status.RUNNING, message="Running")
        await asyncio.sleep(0.3)
        assert writes(emulator) == 0  # held in its window
        assert (await client.hgetall(keys.job(item_id)))["view_status"] == "Running"  # the page knows
        await until(lambda: _drained(client), 10)
        assert writes(emulator) == 1 and emulator.attributes(item_id)[CODES.status] == "Running"
        await emit(client, item_id, "succeeded", status=Status.SUCCEEDED, message="done")
        await asyncio.sleep(0.3)  # the next event after a write starts a new window
        assert emulator.attributes(item_id)[CODES.status] == "Running"
        await until(lambda: _drained(client), 10)
    assert writes(emulator) == 2
    values = emulator.attributes(item_id)
    assert (values[CODES.status], values[CODES.message]) == ("Succeeded", "done")
    job = await client.hgetall(keys.job(item_id))
    assert job["view_status"] == "Succeeded" and job["signature"]
    assert await client.hget(keys.job(item_id), "reported")


async def test_a_whole_run_folded_in_its_window_is_written_without_waiting_out_the_window(
    client: aioredis.Redis, alloy: AlloyClient, emulator: EmulatorProcess
) -> None:
    [whole, ended_only] = jobs(emulator, 2)
    reporter = Reporter(Settings(report_coalesce=30.0), alloy, client, consumer="r1")
    async with running(reporter):
        run = f"now:{whole}:v1"
        for kind, status in (
            ("queued", Status.QUEUED),
            ("started", Status.RUNNING),
            ("succeeded", Status.SUCCEEDED),
        ):
            await client.xadd(keys.OUTBOX, Event(whole, kind, {"status": status}, run_id=run).fields())  # type: ignore[arg-type]
        # The end of a run whose start is not held here (written before): its window holds.
        other = Event(ended_only, "succeeded", {"status": Status.SUCCEEDED}, run_id=f"now:{ended_only}:v1")
        await client.xadd(keys.OUTBOX, other.fields())  # type: ignore[arg-type]

        async def whole_written() -> bool:
            return bool(emulator.attributes(whole).get(CODES.status) == "Succeeded")

        await until(whole_written, 10)  # well inside the 30 s window
        assert writes(emulator) == 1  # one edit for the whole run; the lone end still waits
        assert CODES.status not in emulator.attributes(ended_only)


async def test_events_held_in_the_window_survive_the_reporter_stopping(
    client: aioredis.Redis, alloy: AlloyClient, emulator: EmulatorProcess
) -> None:
    [item_id] = jobs(emulator, 1)
    held = Reporter(Settings(report_coalesce=30.0), alloy, client, consumer="r1")
    async with running(held):
        await lifecycle(client, item_id, 7)

        async def read() -> bool:
            return bool((await client.xpending(keys.OUTBOX, keys.OUTBOX_GROUP))["pending"] == 3)

        await until(read, 10)
    assert writes(emulator) == 0 and await client.xlen(keys.OUTBOX) == 3  # stopped mid-window: kept
    restarted = Reporter(Settings(report_coalesce=0.2), alloy, client, consumer="r1")
    async with running(restarted):  # the same consumer reads its backlog again
        await until(lambda: _drained(client), 10)
    assert writes(emulator) == 1
    assert emulator.attributes(item_id)[CODES.message] == "done 7"


async def test_a_large_backlog_is_folded_without_holding_the_event_loop(
    client: aioredis.Redis, alloy: AlloyClient, emulator: EmulatorProcess
) -> None:
    [item_id] = jobs(emulator, 1)
    async with client.pipeline(transaction=False) as pipe:
        for n in range(6000):
            event = Event(f"{n:024x}", "queued", {"status": Status.QUEUED, "message": "Queued"})
            pipe.xadd(keys.OUTBOX, event.fields())  # type: ignore[arg-type]
        await pipe.execute()
    reporter = Reporter(Settings(report_coalesce=60.0), alloy, client, consumer="r1")
    await reporter.ensure_group()
    await client.xreadgroup(keys.OUTBOX_GROUP, "r1", {keys.OUTBOX: ">"})  # read before a restart
    gaps: list[float] = []

    async def ticker() -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    tick = asyncio.create_task(ticker())
    async with running(reporter):
        await until(lambda: _async(len(reporter.pending) == 6000), 30)
    tick.cancel()
    print(f"longest turn {max(gaps) * 1000:.1f} ms")
    assert max(gaps) < 0.25, max(gaps)  # FOLD_CHUNK events per turn, the backlog in pages
    assert writes(emulator) == 0 and item_id not in reporter.pending


async def _async(value: bool) -> bool:
    return value


def test_the_coalescing_window_is_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().report_coalesce == 1.0
    monkeypatch.setenv("ALLOYSYNC_REPORT_COALESCE", "0")
    assert Settings().report_coalesce == 0.0  # write every status at once
    for bad in ("-1", "61", "soon"):
        monkeypatch.setenv("ALLOYSYNC_REPORT_COALESCE", bad)
        with pytest.raises(ValidationError) as raised:
            Settings()
        [line] = describe_validation_error(raised.value)
        assert line.startswith("ALLOYSYNC_REPORT_COALESCE: ")


async def test_a_backlog_beyond_the_cap_waits_unread_in_the_stream_and_is_all_written(
    client: aioredis.Redis, alloy: AlloyClient, emulator: EmulatorProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reporter holds at most MAX_PENDING_ITEMS items in memory (plus one read batch): a first
    sync of 100k records must not hold 100k pending writes. The rest waits in the stream."""
    monkeypatch.setattr("alloysync.serve.reporter.MAX_PENDING_ITEMS", 5)
    monkeypatch.setattr("alloysync.serve.reporter.READ_BATCH", 3)
    monkeypatch.setattr("alloysync.state.outbox.READ_BATCH", 3)
    items = jobs(emulator, 30)
    for item_id in items:
        await emit(client, item_id, "queued", status=Status.QUEUED)
    budget = TokenBucket(per_window=10, window=1.0, burst=1)
    reporter = Reporter(Settings(), alloy, client, consumer="r1", budget=budget)
    most_held = 0
    async with running(reporter):

        async def drained_watching() -> bool:
            nonlocal most_held
            most_held = max(most_held, len(reporter.pending))
            return await _drained(client)

        await until(drained_watching, 30)
    assert 0 < most_held <= 5 + 3
    assert writes(emulator) == 30
    assert all(emulator.attributes(item_id)[CODES.status] == "Queued" for item_id in items)


async def test_a_writer_cancelled_just_as_it_is_woken_stops(
    client: aioredis.Redis, alloy: AlloyClient
) -> None:
    """The wake and the cancel in the same turn of the loop: the writer must end cancelled (with
    Python 3.11's `asyncio.wait_for` it went back to waiting, and stopping the reporter hung)."""
    reporter = Reporter(Settings(), alloy, client, consumer="r1")
    writer = asyncio.create_task(reporter._reserve())
    await asyncio.sleep(0.05)  # waiting for a ready item
    reporter._wake.set()
    writer.cancel()
    with pytest.raises(asyncio.CancelledError):
        async with asyncio.timeout(5):
            await writer

"""The reporter's book (serve/report_book.py) against a real Redis: edits recorded together, views
with their edit or alone, and nothing acknowledged when Redis refuses the call."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from alloysync.local.redis_server import RedisServer
from alloysync.model.events import Event
from alloysync.serve.report_book import ReportBook
from alloysync.state import keys
from alloysync.state.connections import connect_async
from alloysync.state.outbox import Outbox, Written


@pytest.fixture
async def client(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    connection = connect_async(redis_server.url)
    yield connection
    await connection.aclose()


async def read_events(client: aioredis.Redis, item_ids: list[str]) -> dict[str, list[str]]:
    """Append one event per item and read them as the reporter's consumer: item -> entry ids."""
    outbox = Outbox(client)
    await outbox.ensure_group()
    for item_id in item_ids:
        await client.xadd(keys.OUTBOX, Event(item_id, "queued", {"status": "Queued"}).fields())  # type: ignore[arg-type]
    entries = await outbox.read_new("r1", block_ms=100)
    read: dict[str, list[str]] = {}
    for entry_id, event in entries:
        read.setdefault(event.item_id, []).append(entry_id)
    return read


def edit_of(item_id: str, entry_ids: list[str], signature: str = "") -> Written:
    return Written(item_id, entry_ids, entry_ids[-1], signature, [])


@contextlib.asynccontextmanager
async def running(book: ReportBook) -> AsyncIterator[None]:
    task = asyncio.create_task(book.run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_edits_that_finish_together_are_recorded_in_one_call(client: aioredis.Redis) -> None:
    items = [f"item{n}" for n in range(5)]
    await client.sadd(keys.JOBS, *items)
    read = await read_events(client, items)
    book = ReportBook(Outbox(client))
    await book.outbox.report([], {"warm-up": {"status": "Queued"}})  # the script is loaded
    for item_id in items:
        book.note_view(item_id, {"status": "Succeeded"}, time.monotonic())
    calls_before = await script_calls(client)
    async with running(book):
        await asyncio.gather(
            *(book.record(edit_of(item_id, read[item_id], signature=f"sig-{item_id}")) for item_id in items)
        )
    assert await script_calls(client) - calls_before == 1
    for item_id in items:
        job = await client.hgetall(keys.job(item_id))
        assert job["reported"] == read[item_id][-1] and job["signature"] == f"sig-{item_id}"
        assert job["view_status"] == "Succeeded"  # the view went with the edit
    assert await client.xlen(keys.OUTBOX) == 0  # acknowledged and deleted
    assert not book.views


async def test_a_view_whose_edit_does_not_come_is_written_alone_known_jobs_only(
    client: aioredis.Redis,
) -> None:
    await client.sadd(keys.JOBS, "known")
    book = ReportBook(Outbox(client), view_delay=0.1)
    async with running(book):
        book.note_view("known", {"status": "Running"}, time.monotonic())
        book.note_view("stranger", {"status": "Running"}, time.monotonic())
        await asyncio.sleep(0.05)
        assert await client.hget(keys.job("known"), "view_status") is None  # waits for an edit
        book.note_view("known", {"message": "step 2"}, 0.0)  # folds into the held view
        await asyncio.sleep(0.25)
    assert await client.hgetall(keys.job("known")) == {"view_status": "Running", "view_message": "step 2"}
    assert not await client.exists(keys.job("stranger"))  # not a known job: no hash made


async def test_an_edit_redis_refuses_is_not_acknowledged_and_its_view_is_kept(
    client: aioredis.Redis, redis_server: RedisServer
) -> None:
    await client.sadd(keys.JOBS, "item1")
    read = await read_events(client, ["item1"])
    book = ReportBook(Outbox(client))
    book.note_view("item1", {"status": "Succeeded"}, 0.0)
    async with running(book):
        redis_server.stop()
        with pytest.raises(RedisError):
            await book.record(edit_of("item1", read["item1"]))
        assert "item1" in book.views  # kept for the next call
        redis_server.start()
        await book.record(edit_of("item1", read["item1"]))  # the writer's next try
    job = await client.hgetall(keys.job("item1"))
    assert job["reported"] == read["item1"][-1] and job["view_status"] == "Succeeded"


async def script_calls(client: aioredis.Redis) -> int:
    stats = await client.info("commandstats")
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0)) + int(
        stats.get("cmdstat_eval", {}).get("calls", 0)
    )


async def test_a_view_whose_edit_is_ready_waits_for_it_up_to_the_longest_wait(
    client: aioredis.Redis,
) -> None:
    items = ["waits", "gives-up"]
    await client.sadd(keys.JOBS, *items)
    read = await read_events(client, ["waits"])
    book = ReportBook(Outbox(client), lambda _item_id: True, view_delay=0.05, view_max_wait=0.6)
    async with running(book):
        for item_id in items:
            book.note_view(item_id, {"status": "Succeeded"}, time.monotonic())
        await asyncio.sleep(0.25)  # past the delay: held, since their edits are ready
        assert set(book.held) == set(items)
        assert not await client.exists(keys.job("waits"), keys.job("gives-up"))
        await book.record(edit_of("waits", read["waits"]))
        assert await client.hgetall(keys.job("waits")) == {
            "reported": read["waits"][-1],
            "view_status": "Succeeded",
        }  # one write of the job hash for the mark and the view
        await asyncio.sleep(0.5)  # no edit comes for the other: its view goes alone
    assert await client.hgetall(keys.job("gives-up")) == {"view_status": "Succeeded"}

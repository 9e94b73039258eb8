"""The poller lease: one holder, takeover after the TTL, and fenced writes from an ex-leader refused."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
import redis

from alloysync.broker import build_broker
from alloysync.enqueue import RunQueue
from alloysync.local.redis_server import RedisServer
from alloysync.model.events import Event, Status
from alloysync.model.registry import load_task_modules
from alloysync.model.runs import RunKind, RunRequest
from alloysync.settings import Settings
from alloysync.state import keys
from alloysync.state.connections import connect_async
from alloysync.state.jobs import Acted, JobStore, Sighting
from alloysync.state.lease import LeaseLost, PollerLease
from alloysync.state.records import JobDecision, JobPhase
from alloysync.state.sync import SyncState


async def test_one_holder_takeover_and_fencing(redis_server: RedisServer) -> None:
    client = connect_async(redis_server.url)
    first = PollerLease(client, ttl=1.0, replica="a")
    second = PollerLease(client, ttl=1.0, replica="b")
    assert await first.refresh() is True
    assert await second.refresh() is False
    await asyncio.sleep(0.6)
    assert await first.refresh() is True  # renewed: still ours after more than half the TTL
    await asyncio.sleep(0.6)
    assert await second.refresh() is False
    stale = first.value
    assert stale is not None and stale.startswith("a:")

    await asyncio.sleep(1.1)  # `first` stopped renewing (paused, partitioned, dead)
    assert await second.refresh() is True
    assert second.value is not None and second.value.startswith("b:") and second.value != stale
    store = SyncState(client)
    with pytest.raises(LeaseLost):
        await store.set_cursor(stale, datetime.now(UTC))  # the ex-leader's decision is refused
    await store.set_cursor(second.value, datetime.now(UTC))
    assert await first.refresh() is False  # and it notices

    await second.release()
    assert await first.refresh() is True
    await client.aclose()


async def test_an_ex_leaders_batched_page_writes_are_refused_whole(
    redis_server: RedisServer, settings: Settings
) -> None:
    """The poller's page scripts (definitions, acted marks with their events, run creation) check
    the lease once per batch: an ex-leader's page writes nothing at all, in any batch."""
    client = connect_async(redis_server.url)
    await client.set(keys.LEASE, "b:2")  # another replica holds the lease
    stale = "a:1"
    store = JobStore(client)
    decision = JobDecision("j", JobPhase.VALID, "tests.noop", "", "UTC", "")
    sightings = [Sighting(f"item{n}", "fp", decision, "", None, 0) for n in range(150)]  # two script calls
    with pytest.raises(LeaseLost):
        await store.apply_definitions(stale, sightings)
    queued = Event("item1", "queued", {"status": Status.QUEUED})
    with pytest.raises(LeaseLost):
        await store.record_acted(
            stale, [Acted(f"item{n}", 1, "digest", decision, [queued]) for n in range(150)]
        )
    sync_client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    broker = build_broker(settings)
    queue = RunQueue(sync_client, broker, load_task_modules(settings.task_modules), settings)
    requests = [
        RunRequest(
            run_id=f"now:item{n}:v1",
            item_id=f"item{n}",
            kind=RunKind.NOW,
            steps=("tests.noop",),
            params={},
            source="poller",
            reason="Queued: test",
        )
        for n in range(150)
    ]
    with pytest.raises(LeaseLost):
        queue.submit_many(requests, stale)
    assert sorted(await client.keys("alloysync:*")) == [keys.LEASE]  # nothing written
    assert [stand.version for stand in await store.apply_definitions("b:2", sightings[:2])] == [1, 1]
    broker.close()
    sync_client.close()
    await client.aclose()

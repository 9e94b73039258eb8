"""The notification queue and the freshness check against a real Redis: the consumer group, take-over
of a dead notifier's entries (never its own), the per-target delivery marks, acknowledgement, and
marking overdue jobs (fenced, once, only as NotifyOn asks, never over a fresh success)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio as aioredis

from alloysync.local.redis_server import RedisServer
from alloysync.model.events import Event, Status
from alloysync.model.times import format_alloy_datetime
from alloysync.serve.freshness import FreshnessCheck
from alloysync.settings import Settings
from alloysync.state import keys
from alloysync.state.connections import connect_async
from alloysync.state.jobs import Acted, JobStore
from alloysync.state.lease import LeaseLost, PollerLease
from alloysync.state.notifications import NotificationQueue
from alloysync.state.records import JobDecision, JobPhase


@pytest.fixture
async def client(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    connection = connect_async(redis_server.url)
    yield connection
    await connection.aclose()


@pytest.fixture
async def lease(client: aioredis.Redis) -> PollerLease:
    held = PollerLease(client, ttl=30, replica="serve-a")
    assert await held.refresh()
    return held


async def pending_of(client: aioredis.Redis) -> dict[str, str]:
    """entry id -> the consumer holding it."""
    rows = await client.xpending_range(keys.NOTIFY, keys.NOTIFY_GROUP, min="-", max="+", count=100)
    return {str(row["message_id"]): str(row["consumer"]) for row in rows}


# --- the queue ----------------------------------------------------------------------------------------


async def test_entries_are_read_once_by_the_group_and_read_again_by_their_consumer(
    client: aioredis.Redis,
) -> None:
    queue = NotificationQueue(client)
    await queue.ensure_group()
    await queue.ensure_group()  # idempotent
    first = await queue.append("item-1", "failed", "2026-11-21T10:00:00.000Z", "boom", run_id="now:item-1:v1")
    second = await queue.append("item-2", "overdue", "2026-11-21T10:00:01.000Z", "late", failures=3)

    read = await queue.read_new("notifier-a", block_ms=100)
    assert [entry.entry_id for entry in read] == [first, second]
    assert (read[0].item_id, read[0].run_id, read[0].kind, read[0].message) == (
        "item-1",
        "now:item-1:v1",
        "failed",
        "boom",
    )
    assert (read[1].run_id, read[1].failures) == ("", 3)
    assert read[0].queued_ms == int(first.split("-")[0])
    assert await queue.read_new("notifier-b", block_ms=50) == []  # a group: nobody reads them twice
    backlog = await queue.read_backlog("notifier-a")  # after a restart under the same name
    assert [entry.entry_id for entry in backlog] == [first, second]
    assert await queue.read_backlog("notifier-b") == []


async def test_a_dead_notifiers_entries_are_taken_over_but_never_a_notifiers_own(
    client: aioredis.Redis,
) -> None:
    queue = NotificationQueue(client)
    await queue.ensure_group()
    dead = await queue.append("item-1", "failed", "t", "boom")
    await queue.read_new("notifier-dead", block_ms=100)
    own = await queue.append("item-2", "failed", "t", "boom")
    await queue.read_new("notifier-alive", block_ms=100)

    assert await queue.take_over_idle("notifier-alive", min_idle_ms=60_000) == []  # not idle long enough
    await asyncio.sleep(0.3)
    taken = await queue.take_over_idle("notifier-alive", min_idle_ms=200)
    assert [entry.entry_id for entry in taken] == [dead]
    assert await pending_of(client) == {dead: "notifier-alive", own: "notifier-alive"}
    await asyncio.sleep(0.3)
    assert await queue.take_over_idle("notifier-alive", min_idle_ms=200) == []  # its own stay put

    await queue.forget_consumers("notifier-alive", idle_ms=0)
    names = {row["name"] for row in await client.xinfo_consumers(keys.NOTIFY, keys.NOTIFY_GROUP)}
    assert names == {"notifier-alive"}  # the dead one held nothing any more


async def test_delivery_marks_survive_until_the_entry_is_acknowledged(client: aioredis.Redis) -> None:
    queue = NotificationQueue(client)
    await queue.ensure_group()
    entry_id = await queue.append("item-1", "failed", "t", "boom")
    await queue.read_new("notifier-a", block_ms=100)
    assert await queue.delivered(entry_id) == {}
    await queue.mark_delivered(entry_id, "ops@example.org", "sent")
    await queue.mark_delivered(entry_id, "http://127.0.0.1:9/hook", "refused")
    # Another queue object (another process after a crash) sees the same marks.
    assert await NotificationQueue(client).delivered(entry_id) == {
        "ops@example.org": "sent",
        "http://127.0.0.1:9/hook": "refused",
    }
    assert 0 < await client.ttl(keys.notify_delivered(entry_id)) <= 3 * 86_400
    assert await queue.depth() == 1

    await queue.acknowledge(entry_id)
    assert await queue.depth() == 0
    assert await pending_of(client) == {}
    assert not await client.exists(keys.notify_delivered(entry_id))


# --- marking overdue jobs ---------------------------------------------------------------------------------


async def a_job(
    client: aioredis.Redis,
    item_id: str,
    max_age: float | None = 60.0,
    first_seen_ago: float = 3600.0,
    last_succeeded_ago: float | None = None,
    notify: str = "ops@example.org",
    notify_on: str = "failure",
    state: str = "valid",
) -> None:
    """A job hash as the poller and the run scripts leave it."""
    now = datetime.now(UTC)
    fields = {
        "title": f"job {item_id}",
        "state": state,
        "max_age": "" if max_age is None else repr(max_age),
        "first_seen": format_alloy_datetime(now - timedelta(seconds=first_seen_ago)),
        "last_succeeded": ""
        if last_succeeded_ago is None
        else format_alloy_datetime(now - timedelta(seconds=last_succeeded_ago)),
        "notify": notify,
        "notify_on": notify_on,
        "consecutive_failures": "2",
    }
    await client.hset(keys.job(item_id), mapping=fields)  # type: ignore[arg-type]
    await client.sadd(keys.JOBS, item_id)


async def stream(client: aioredis.Redis, key: str) -> list[dict[str, str]]:
    entries: list[tuple[str, dict[str, str]]] = await client.xrange(key)  # type: ignore[assignment]
    return [fields for _id, fields in entries]


async def outbox_events(client: aioredis.Redis) -> list[dict[str, str]]:
    return await stream(client, keys.OUTBOX)


async def notifications(client: aioredis.Redis) -> list[dict[str, str]]:
    return await stream(client, keys.NOTIFY)


async def test_an_overdue_job_is_marked_once_with_its_event_and_notification(
    client: aioredis.Redis, lease: PollerLease, settings: Settings
) -> None:
    await a_job(client, "late", max_age=60, first_seen_ago=120)
    await a_job(client, "fresh", max_age=60, first_seen_ago=3600, last_succeeded_ago=10)
    await a_job(client, "unwatched", max_age=None)
    check = FreshnessCheck(settings, client, lease, interval=0.1)

    assert await check.check_once() == ["late"]
    assert await client.hget(keys.job("late"), "overdue") == "1"
    assert await client.hget(keys.job("fresh"), "overdue") is None
    [event] = await outbox_events(client)
    assert (event["item"], event["kind"], event["run"]) == ("late", "overdue", "")
    attributes = json.loads(event["attrs"])
    assert attributes["status"] == "Overdue"
    assert attributes["message"].startswith("No success for 2 min (MaxAge 1m); it has not succeeded since")
    [entry] = await notifications(client)
    assert entry == {
        "item": "late",
        "run": "",
        "kind": "overdue",
        "at": event["at"],
        "message": attributes["message"],
        "failures": "2",
    }

    assert await check.check_once() == []  # once: it stays overdue until a success
    assert len(await outbox_events(client)) == 1 and len(await notifications(client)) == 1

    # The next success clears it (as the run scripts do), and it can become overdue again later.
    await client.hset(
        keys.job("late"),
        mapping={"overdue": "0", "last_succeeded": format_alloy_datetime(datetime.now(UTC))},
    )
    assert await check.check_once() == []


@pytest.mark.parametrize(
    ("policy", "targets", "notified"),
    [
        ("failure", "ops@example.org", True),
        ("every-failure", "ops@example.org", True),
        ("always", "http://127.0.0.1:9/hook", True),
        ("never", "ops@example.org", False),
        ("failure", "", False),
        ("", "ops@example.org", False),  # the NotifyOn feature is off on this design
    ],
)
async def test_overdue_notifies_unless_notify_on_is_never_or_there_is_nobody(
    client: aioredis.Redis, lease: PollerLease, settings: Settings, policy: str, targets: str, notified: bool
) -> None:
    await a_job(client, "late", notify=targets, notify_on=policy)
    assert await FreshnessCheck(settings, client, lease).check_once() == ["late"]
    assert len(await outbox_events(client)) == 1  # the record always says Overdue
    assert len(await notifications(client)) == (1 if notified else 0)


async def test_paused_invalid_and_already_overdue_jobs_are_left_alone(
    client: aioredis.Redis, lease: PollerLease, settings: Settings
) -> None:
    await a_job(client, "paused", state="disabled")
    await a_job(client, "invalid", state="invalid")
    await a_job(client, "already")
    await client.hset(keys.job("already"), "overdue", "1")
    assert await FreshnessCheck(settings, client, lease).check_once() == []
    assert await outbox_events(client) == [] and await notifications(client) == []


async def test_a_success_that_lands_after_the_check_read_the_job_wins(
    client: aioredis.Redis, lease: PollerLease, settings: Settings
) -> None:
    await a_job(client, "racing", last_succeeded_ago=3600)
    store = JobStore(client)
    seen = await store.job("racing")
    assert seen is not None
    # A run succeeds between the read and the mark.
    await client.hset(
        keys.job("racing"), mapping={"last_succeeded": format_alloy_datetime(datetime.now(UTC))}
    )
    event = Event("racing", "overdue", {"status": Status.OVERDUE, "message": "late"})
    assert lease.value is not None
    assert not await store.mark_overdue(lease.value, "racing", seen.last_succeeded, event)
    assert await client.hget(keys.job("racing"), "overdue") is None
    assert await outbox_events(client) == []


async def test_marking_is_fenced_by_the_poller_lease(
    client: aioredis.Redis, lease: PollerLease, settings: Settings
) -> None:
    await a_job(client, "late")
    check = FreshnessCheck(settings, client, lease)
    await client.set(keys.LEASE, "serve-b:99")  # another replica took the lease
    with pytest.raises(LeaseLost):
        await check.check_once()
    assert await client.hget(keys.job("late"), "overdue") is None
    assert await outbox_events(client) == [] and await notifications(client) == []


async def test_the_check_reads_only_the_jobs_with_a_max_age_kept_in_their_index(
    client: aioredis.Redis, lease: PollerLease, settings: Settings
) -> None:
    """A store from before the index has it built once from every record; after that,
    `record_acted` keeps it: a job acted with a MaxAge joins, one acted without leaves."""
    await a_job(client, "late", max_age=60, first_seen_ago=120)
    await a_job(client, "unwatched", max_age=None)
    store = JobStore(client)
    assert [job.item_id for job in await store.jobs_with_max_age()] == ["late"]
    assert await client.smembers(keys.JOBS_WITH_MAX_AGE) == {"late"}

    # A hand-made record is no longer seen: only acting on a version adds to the index.
    await a_job(client, "hand-made", max_age=60, first_seen_ago=120)
    assert [job.item_id for job in await store.jobs_with_max_age()] == ["late"]

    assert lease.value is not None
    await client.hset(keys.job("watched"), mapping={"version": "1"})
    await client.hset(keys.job("late"), mapping={"version": "3"})
    watched = JobDecision("watched", JobPhase.VALID, "tests.noop", "", "UTC", "", max_age=60.0)
    unwatched = JobDecision("late", JobPhase.VALID, "tests.noop", "", "UTC", "", max_age=None)
    await store.record_acted(
        lease.value, [Acted("watched", 1, "digest", watched), Acted("late", 3, "digest", unwatched)]
    )
    assert await client.smembers(keys.JOBS_WITH_MAX_AGE) == {"watched"}
    check = FreshnessCheck(settings, client, lease)
    assert await check.check_once() == []  # "watched" has no first_seen yet; "late" lost its MaxAge
    await store.forget_job(lease.value, "watched")
    assert await client.smembers(keys.JOBS_WITH_MAX_AGE) == set()

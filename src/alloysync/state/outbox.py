"""The outbox: the Redis stream of run events, its consumer group, and what was written to Alloy.

Events are appended by the poller (fenced, `Outbox.append_fenced`), the scheduler
(`append_event`) and workers (inside the Lua script that changes the run, see `claims.py`). The
reporters read them as the consumer group `reporter`, one consumer per serve replica; an entry is
acknowledged and deleted only after the Alloy edit carrying it succeeded. `reported` keeps, per
item, the id of the newest entry written to Alloy.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import redis
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from alloysync.model.events import Event
from alloysync.state import keys, scripts
from alloysync.state.lease import fenced

READ_BATCH = 500
BACKLOG_MAX = 100_000  # entries one consumer reads back at start (those it read and never acknowledged)

EntryId = tuple[int, int]
Entry = tuple[str, Event]


def entry_key(entry_id: str) -> EntryId:
    """A stream entry id (`<ms>-<seq>`) as a comparable pair."""
    milliseconds, _, sequence = entry_id.partition("-")
    return int(milliseconds), int(sequence or 0)


def append_event(client: redis.Redis, event: Event) -> None:
    """Append an event (synchronous callers that hold no lease: the scheduler)."""
    client.xadd(keys.OUTBOX, event.fields())  # type: ignore[arg-type]


class Outbox:
    """The reporter's (and the poller's) side, asyncio; `client` must decode responses."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client
        self._append = scripts.register(client, "append_event")
        self._mark_reported = scripts.register(client, "mark_reported")

    async def append_fenced(self, lease: str, event: Event) -> None:
        """Append an event as the poller (refused once the lease moved on)."""
        fenced(await self._append(keys=[keys.LEASE, keys.OUTBOX], args=[lease, event.wire()]))

    async def ensure_group(self) -> None:
        try:
            await self.client.xgroup_create(keys.OUTBOX, keys.OUTBOX_GROUP, id="0", mkstream=True)
        except ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise

    async def read_backlog(self, consumer: str) -> list[Entry]:
        """The entries `consumer` read before and did not acknowledge (after a restart)."""
        response = await self.client.xreadgroup(
            keys.OUTBOX_GROUP, consumer, {keys.OUTBOX: "0"}, count=BACKLOG_MAX
        )
        return _stream_entries(response)

    async def read_new(self, consumer: str, block_ms: int) -> list[Entry]:
        """Entries nobody has read yet, waiting up to `block_ms` for some."""
        response = await self.client.xreadgroup(
            keys.OUTBOX_GROUP, consumer, {keys.OUTBOX: ">"}, count=READ_BATCH, block=block_ms
        )
        return _stream_entries(response)

    async def take_over_idle(self, consumer: str, min_idle_ms: int) -> list[Entry]:
        """Claim for `consumer` the entries *other* consumers read at least `min_idle_ms` ago and
        never acknowledged (their reporter died). Entries `consumer` holds itself are left alone,
        however long they have waited (an Alloy outage keeps a reporter's own entries pending)."""
        taken: list[Entry] = []
        start = "-"
        while True:
            pending = await self.client.xpending_range(
                keys.OUTBOX, keys.OUTBOX_GROUP, min=start, max="+", count=READ_BATCH, idle=min_idle_ms
            )
            others: list[int | bytes | str | memoryview] = [
                str(entry["message_id"]) for entry in pending if entry["consumer"] != consumer
            ]
            if others:
                claimed = await self.client.xclaim(
                    keys.OUTBOX, keys.OUTBOX_GROUP, consumer, min_idle_ms, others
                )
                taken += _entries(claimed)
            if len(pending) < READ_BATCH:
                return taken
            start = "(" + str(pending[-1]["message_id"])

    async def forget_consumers(self, consumer: str, idle_ms: int) -> None:
        """Delete the other consumers that hold nothing and were idle for `idle_ms` (long gone)."""
        for other in await self.client.xinfo_consumers(keys.OUTBOX, keys.OUTBOX_GROUP):
            gone = not other["pending"] and other["idle"] > idle_ms
            if other["name"] != consumer and gone:
                await self.client.xgroup_delconsumer(keys.OUTBOX, keys.OUTBOX_GROUP, other["name"])

    async def acknowledge(self, entry_ids: list[str]) -> None:
        """Acknowledge and delete entries (their edit is on Alloy, or there is nothing to write)."""
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.xack(keys.OUTBOX, keys.OUTBOX_GROUP, *entry_ids)
            pipe.xdel(keys.OUTBOX, *entry_ids)
            await pipe.execute()

    async def written_through(self, item_id: str) -> EntryId | None:
        """The newest entry written to Alloy for the item."""
        through = await self.client.hget(keys.REPORTED, item_id)
        return entry_key(str(through)) if through else None

    async def mark_reported(self, item_id: str, entry_id: str) -> None:
        """`entry_id` and everything before it for the item is on Alloy (the mark never goes back)."""
        await self._mark_reported(keys=[keys.REPORTED], args=[item_id, entry_id])

    async def depth_and_age(self, clock: Callable[[], float] = time.time) -> tuple[int, float]:
        """How many events wait, and the age in seconds of the oldest (0 when empty)."""
        depth = int(await self.client.xlen(keys.OUTBOX))
        oldest = await self.client.xrange(keys.OUTBOX, count=1)
        age = 0.0
        if oldest:
            age = max(0.0, clock() - entry_key(str(oldest[0][0]))[0] / 1000)
        return depth, age


def _stream_entries(response: Any) -> list[Entry]:
    raw: list[tuple[str, dict[str, str]]] = []
    for _stream, stream_entries in response or []:
        raw.extend(stream_entries)
    return _entries(raw)


def _entries(raw: Any) -> list[Entry]:
    """Decoded entries; an entry deleted while pending (no fields) is passed over."""
    return [(str(entry_id), Event.from_fields(fields)) for entry_id, fields in raw or [] if fields]

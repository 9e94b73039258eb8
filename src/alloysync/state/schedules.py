"""The schedule store: one entry per cron or run-at job, the newest fire handled per job, the
catch-up a skipped stale fire deferred to, and the channel that says a schedule changed.

`ScheduleStore` is the poller's side (asyncio, fenced writes). `FireBook` is the side of the
processes that fire (synchronous): the scheduler reads the entries, advances the last-fire marks
and listens for changes; the worker's stale-fire middleware reads the marks and keeps the catch-up.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime

import redis
import redis.asyncio as aioredis

from alloysync.model.fires import ScheduleEntry
from alloysync.model.times import format_alloy_datetime
from alloysync.state import keys, scripts
from alloysync.state.lease import fenced


class ScheduleStore:
    """The poller's writes; `client` must decode responses."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client
        self._set_schedule = scripts.register(client, "set_schedule")

    async def write(self, lease: str, changes: Sequence[tuple[str, ScheduleEntry | None]]) -> None:
        """Store each job's entry, or drop it (None), telling the scheduler of each change: one
        pipelined round trip for a page of records."""
        if not changes:
            return
        schedule_keys = [keys.LEASE, keys.SCHEDULES, keys.SCHEDULES_CHANGED]
        calls: list[scripts.ScriptCall] = [
            (schedule_keys, [lease, item_id, "" if entry is None else entry.to_json()])
            for item_id, entry in changes
        ]
        for reply in await scripts.call_each_async(self._set_schedule, calls):
            fenced(reply)


class FireBook:
    """The firing side; `client` must decode responses."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._advance = scripts.register(client, "advance_last_fire")

    def entries(self) -> tuple[list[ScheduleEntry], dict[str, str]]:
        """Every schedule entry, and the unreadable ones as item → why."""
        raw: dict[str, str] = self.client.hgetall(keys.SCHEDULES)  # type: ignore[assignment]
        entries: list[ScheduleEntry] = []
        unreadable: dict[str, str] = {}
        for item_id, text in raw.items():
            try:
                entries.append(ScheduleEntry.from_json(text))
            except (ValueError, KeyError) as error:
                unreadable[item_id] = str(error)
        return entries, unreadable

    def last_fires(self) -> dict[str, str]:
        """Item → the newest fire handled (Alloy's DateTime text)."""
        marks: dict[str, str] = self.client.hgetall(keys.LAST_FIRE)  # type: ignore[assignment]
        return marks

    def advance(self, marks: Sequence[tuple[str, datetime]]) -> list[bool]:
        """Advance each job's last-fire mark to the given fire, never backwards (one round trip);
        for each, whether this call moved it."""
        calls: list[scripts.ScriptCall] = [
            ([keys.LAST_FIRE], [item_id, format_alloy_datetime(fire)]) for item_id, fire in marks
        ]
        return [bool(moved) for moved in scripts.call_each(self._advance, calls)]

    def last_fire(self, item_id: str) -> str | None:
        value = self.client.hget(keys.LAST_FIRE, item_id)
        return str(value) if value else None

    def catch_up(self, item_id: str) -> str | None:
        value = self.client.hget(keys.CATCH_UP, item_id)
        return str(value) if value else None

    def defer_catch_up(self, item_id: str, fire: str) -> None:
        """Designate `fire` as the job's catch-up, unless one is designated already."""
        self.client.hsetnx(keys.CATCH_UP, item_id, fire)

    def clear_catch_up(self, item_id: str) -> None:
        self.client.hdel(keys.CATCH_UP, item_id)

    @contextmanager
    def changes(self) -> Iterator[redis.client.PubSub]:
        """A subscription to the poller's schedule-changed notifications."""
        pubsub = self.client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
        try:
            pubsub.subscribe(keys.SCHEDULES_CHANGED)
            yield pubsub
        finally:
            pubsub.close()

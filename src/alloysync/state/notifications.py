"""The notification queue: the Redis stream `alloysync:notify`, its consumer group, and what was
already delivered of each entry.

Entries are appended by the run scripts when a run ends and the job's NotifyOn policy asks for a
notification (`state/lua/helpers.lua` `end_run`), and by serve's freshness check when a job becomes
overdue (`mark_overdue.lua`); each has the fields `item`, `run` ('' for overdue), `kind` (failed,
recovered, succeeded, overdue), `at` (Alloy's DateTime text), `message` and `failures` (the failure
streak). The notifier (serve/notifier.py, leader only) reads them as the consumer group `notifier`,
one consumer per serve process. `notify:{entry}:delivered` records, per target, how delivering the
entry there ended, so a retry after a partial success never sends to a target twice; an entry is
acknowledged (and deleted, with that record) only once every target is done.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from alloysync.state import keys
from alloysync.state.streams import ConsumerGroup

READ_BATCH = 100
BACKLOG_MAX = 10_000  # entries one consumer reads back at start (those it read and never acknowledged)
DELIVERED_TTL = 3 * 86_400  # seconds a delivery record outlives its last mark (past any give-up bound)


@dataclass(frozen=True, slots=True)
class NotificationEntry:
    """One notification to send, as the stream holds it."""

    entry_id: str
    item_id: str
    run_id: str
    kind: str
    at: str
    message: str
    failures: int

    @property
    def queued_ms(self) -> int:
        """When the entry was appended (the stream id's milliseconds, on Redis's clock)."""
        return self.order[0]

    @property
    def order(self) -> tuple[int, int]:
        """The stream id as a comparable pair: entries sort in the order they were appended."""
        milliseconds, _, sequence = self.entry_id.partition("-")
        return int(milliseconds), int(sequence or 0)

    @classmethod
    def from_fields(cls, entry_id: str, fields: dict[str, str]) -> NotificationEntry:
        try:
            failures = int(fields.get("failures") or 0)
        except ValueError:
            failures = 0
        return cls(
            entry_id=entry_id,
            item_id=fields.get("item", ""),
            run_id=fields.get("run", ""),
            kind=fields.get("kind", ""),
            at=fields.get("at", ""),
            message=fields.get("message", ""),
            failures=failures,
        )


class NotificationQueue:
    """The notifier's side of the stream (asyncio); `client` must decode responses."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client
        self.group = ConsumerGroup(client, keys.NOTIFY, keys.NOTIFY_GROUP, READ_BATCH)

    async def append(
        self, item_id: str, kind: str, at: str, message: str, run_id: str = "", failures: int = 0
    ) -> str:
        """Append an entry from Python (the scripts append theirs themselves); returns its id."""
        fields = {
            "item": item_id,
            "run": run_id,
            "kind": kind,
            "at": at,
            "message": message,
            "failures": str(failures),
        }
        return str(await self.client.xadd(keys.NOTIFY, fields))  # type: ignore[arg-type]

    async def ensure_group(self) -> None:
        await self.group.ensure()

    async def read_backlog(self, consumer: str) -> list[NotificationEntry]:
        """The entries `consumer` read before and did not acknowledge."""
        return _entries(await self.group.read(consumer, "0", count=BACKLOG_MAX))

    async def read_new(self, consumer: str, block_ms: int) -> list[NotificationEntry]:
        """Entries nobody has read yet, waiting up to `block_ms` for some."""
        return _entries(await self.group.read(consumer, ">", block_ms=block_ms))

    async def take_over_idle(self, consumer: str, min_idle_ms: int) -> list[NotificationEntry]:
        """Claim the entries of notifiers that died (see `ConsumerGroup.take_over_idle`; the ones
        this notifier holds itself it is retrying, and they stay its own)."""
        return _entries(await self.group.take_over_idle(consumer, min_idle_ms))

    async def forget_consumers(self, consumer: str, idle_ms: int) -> None:
        await self.group.forget_consumers(consumer, idle_ms)

    async def delivered(self, entry_id: str) -> dict[str, str]:
        """The entry's targets that are done, with how (sent, refused, skipped)."""
        marks = await self.client.hgetall(keys.notify_delivered(entry_id))
        return {str(target): str(outcome) for target, outcome in marks.items()}

    async def mark_delivered(self, entry_id: str, target: str, outcome: str) -> None:
        """Delivering the entry to `target` is done (`outcome`): a retry never sends there again."""
        key = keys.notify_delivered(entry_id)
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hset(key, target, outcome)
            pipe.expire(key, DELIVERED_TTL)
            await pipe.execute()

    async def acknowledge(self, entry_id: str) -> None:
        """The entry is done with (every target delivered, refused, or given up): acknowledge and
        delete it, and its delivery record."""
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.xack(keys.NOTIFY, keys.NOTIFY_GROUP, entry_id)
            pipe.xdel(keys.NOTIFY, entry_id)
            pipe.delete(keys.notify_delivered(entry_id))
            await pipe.execute()

    async def depth(self) -> int:
        """How many notifications wait (read or not)."""
        return int(await self.client.xlen(keys.NOTIFY))

    async def now_ms(self) -> int:
        """Redis's clock in milliseconds (the clock the entry ids are on)."""
        seconds, microseconds = await self.client.time()
        return int(seconds) * 1000 + int(microseconds) // 1000


def _entries(raw: Any) -> list[NotificationEntry]:
    """Decoded entries; an entry deleted while pending (no fields) is passed over."""
    return [
        NotificationEntry.from_fields(str(entry_id), {str(k): str(v) for k, v in fields.items()})
        for entry_id, fields in raw or []
        if fields
    ]

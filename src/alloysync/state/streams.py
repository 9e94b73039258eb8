"""A Redis stream read through a consumer group: what the outbox (state/outbox.py) and the
notification queue (state/notifications.py) share.

Both are read at least once by whichever serve process holds the lease: a consumer reads new
entries, reads back what it read and never acknowledged (after a restart), takes over the entries
of consumers that died, and deletes consumers long gone. Entries are returned raw (`entry id,
fields`); each queue decodes its own, passing over entries deleted while pending (no fields)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

RawEntry = tuple[str, dict[str, str] | None]  # None: the entry was deleted while pending


@dataclass(frozen=True)
class ConsumerGroup:
    client: aioredis.Redis
    stream: str
    group: str
    batch: int  # entries per read and per page of take-over

    async def ensure(self) -> None:
        """Create the group (and the stream) unless it exists."""
        try:
            await self.client.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise

    async def read(
        self, consumer: str, after: str, count: int | None = None, block_ms: int | None = None
    ) -> list[RawEntry]:
        """Entries for `consumer`: `after=">"` those nobody has read yet (waiting up to `block_ms`),
        otherwise those it read before and did not acknowledge, after entry id `after`."""
        response: Any = await self.client.xreadgroup(
            self.group, consumer, {self.stream: after}, count=count or self.batch, block=block_ms
        )
        return [entry for _stream, stream_entries in response or [] for entry in stream_entries]

    async def take_over_idle(self, consumer: str, min_idle_ms: int) -> list[RawEntry]:
        """Claim for `consumer` the entries *other* consumers read at least `min_idle_ms` ago and
        never acknowledged (they died). Entries `consumer` holds itself are left alone, however
        long they have waited: it is retrying them (Alloy or an SMTP server being down)."""
        taken: list[RawEntry] = []
        start = "-"
        while True:
            pending = await self.client.xpending_range(
                self.stream, self.group, min=start, max="+", count=self.batch, idle=min_idle_ms
            )
            others: list[int | bytes | str | memoryview] = [
                str(entry["message_id"]) for entry in pending if entry["consumer"] != consumer
            ]
            if others:
                # XCLAIM with the same idle bound: an entry another consumer touched meanwhile stays its own.
                claimed: Any = await self.client.xclaim(
                    self.stream, self.group, consumer, min_idle_ms, others
                )
                taken += claimed
            if len(pending) < self.batch:
                return taken
            start = "(" + str(pending[-1]["message_id"])

    async def forget_consumers(self, consumer: str, idle_ms: int) -> None:
        """Delete the other consumers that hold nothing and were idle for `idle_ms` (long gone)."""
        for other in await self.client.xinfo_consumers(self.stream, self.group):
            gone = not other["pending"] and other["idle"] > idle_ms
            if other["name"] != consumer and gone:
                await self.client.xgroup_delconsumer(self.stream, self.group, other["name"])

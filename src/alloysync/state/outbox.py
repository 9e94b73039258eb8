"""The outbox: the Redis stream of run events, its consumer group, and what was written to Alloy.

Events are appended by the poller (fenced, `Outbox.append_fenced`), the scheduler
(`append_event`) and workers (inside the Lua script that changes the run, see `claims.py`). The
reporters read them as the consumer group `reporter`, one consumer per serve replica; an entry is
acknowledged and deleted only after the Alloy edit carrying it succeeded. The job hash's
`reported` field keeps, per item, the id of the newest entry written to Alloy (in the job hash, so
that the reporter reads and writes it with the signature it caches there: one command each).

The reporter's bookkeeping around its edits is here too: what it reads before an edit
(`before_writes`: the `reported` mark and the cached signature), and, for a batch of items at once,
what follows successful edits (the mark, the returned signature, the reset request flags, the
acknowledgement) with the jobs page's view of the events it read (`report`, report_written.lua).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import redis
import redis.asyncio as aioredis

from alloysync.model.events import Event
from alloysync.state import keys, scripts
from alloysync.state.lease import fenced
from alloysync.state.records import view_hash
from alloysync.state.streams import ConsumerGroup

READ_BATCH = 500  # entries per read (new ones, a page of the backlog, a page of take-over)

EntryId = tuple[int, int]
Entry = tuple[str, Event]
BeforeWrite = tuple[EntryId | None, str | None]  # the item's `reported` mark and cached signature
REPORT_BATCH = 200  # items per report_written.lua call


@dataclass(frozen=True)
class Written:
    """An edit that is on Alloy: the entries it carried (the newest `newest`), the signature its
    answer carried ('' = none), and the request flags it reset ('request', 'cancel', 'backfill',
    see `JobStore.finish_request`)."""

    item_id: str
    entry_ids: list[str]
    newest: str
    signature: str
    finished: list[str]


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
        self.group = ConsumerGroup(client, keys.OUTBOX, keys.OUTBOX_GROUP, READ_BATCH)
        self._append = scripts.register(client, "append_event")
        self._report_written = scripts.register(client, "report_written")

    async def append_fenced(self, lease: str, event: Event) -> None:
        """Append an event as the poller (refused once the lease moved on)."""
        fenced(await self._append(keys=[keys.LEASE, keys.OUTBOX], args=[lease, event.wire()]))

    async def ensure_group(self) -> None:
        await self.group.ensure()

    async def read_backlog(self, consumer: str, after: str = "0") -> tuple[list[Entry], str | None]:
        """A page of the entries `consumer` read before and did not acknowledge (after a restart),
        those after entry id `after`: (entries, the `after` of the next page, None after the last)."""
        raw = await self.group.read(consumer, after)
        following = str(raw[-1][0]) if len(raw) >= READ_BATCH else None
        return _entries(raw), following

    async def read_new(self, consumer: str, block_ms: int) -> list[Entry]:
        """Entries nobody has read yet, waiting up to `block_ms` for some."""
        return _entries(await self.group.read(consumer, ">", block_ms=block_ms))

    async def take_over_idle(self, consumer: str, min_idle_ms: int) -> list[Entry]:
        """Claim the entries of reporters that died (see `ConsumerGroup.take_over_idle`; an Alloy
        outage keeps a reporter's own entries pending, and they stay its own)."""
        return _entries(await self.group.take_over_idle(consumer, min_idle_ms))

    async def forget_consumers(self, consumer: str, idle_ms: int) -> None:
        await self.group.forget_consumers(consumer, idle_ms)

    async def acknowledge(self, entry_ids: list[str]) -> None:
        """Acknowledge and delete entries (their edit is on Alloy, or there is nothing to write)."""
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.xack(keys.OUTBOX, keys.OUTBOX_GROUP, *entry_ids)
            pipe.xdel(keys.OUTBOX, *entry_ids)
            await pipe.execute()

    async def before_writes(self, item_ids: Sequence[str]) -> list[BeforeWrite]:
        """What an edit of each item needs, in one round trip (an HMGET each, pipelined): the newest
        entry already written to Alloy (None when none) and the item's cached signature (None when
        unknown)."""
        fields = ["reported", "signature"]
        if len(item_ids) == 1:  # a pipeline of one costs more than the command alone
            answers = [await self.client.hmget(keys.job(item_ids[0]), fields)]
        else:
            async with self.client.pipeline(transaction=False) as pipe:
                for item_id in item_ids:
                    pipe.hmget(keys.job(item_id), fields)
                answers = await pipe.execute()
        return [
            ((entry_key(str(through)) if through else None), (str(signature) if signature else None))
            for through, signature in answers
        ]

    async def report(self, written: Sequence[Written], views: Mapping[str, Mapping[str, Any]]) -> None:
        """Record what the reporter learnt, REPORT_BATCH items per script call, in one round trip
        (`report_written.lua`): for each edit `written` to Alloy, its item's `reported` mark (it
        never goes back), the signature it returned, the request flags it reset, then the
        acknowledgement and deletion of its entries; and the jobs page's view of the latest events
        of the items in `views` (reported values, in `view_hash`'s fields), for known jobs only."""
        edits = {edit.item_id: edit for edit in written}
        items = list(edits) + [item_id for item_id in views if item_id not in edits]
        calls: list[scripts.ScriptCall] = []
        for start in range(0, len(items), REPORT_BATCH):
            batch = items[start : start + REPORT_BATCH]
            script_keys = [keys.JOBS, keys.OUTBOX, *(keys.job(item_id) for item_id in batch)]
            args: list[str | int] = [keys.OUTBOX_GROUP]
            for item_id in batch:
                edit = edits.get(item_id)
                fields = view_hash(dict(views[item_id])) if item_id in views else {}
                entry_ids = edit.entry_ids if edit is not None else []
                args += [
                    item_id,
                    "1" if edit is not None else "0",
                    edit.newest if edit is not None else "",
                    edit.signature if edit is not None else "",
                    ",".join(edit.finished) if edit is not None else "",
                    len(fields),
                    len(entry_ids),
                    *(text for pair in fields.items() for text in pair),
                    *entry_ids,
                ]
            calls.append((script_keys, args))
        await scripts.call_each_async(self._report_written, calls)

    async def move_reported_marks(self) -> int:
        """Move the `reported` marks of a store that kept them in a hash of their own
        (`alloysync:reported`, before they joined the job hashes) into the job hashes, once;
        returns how many moved. The reporter calls it before it reads anything. A mark never goes
        back: a job hash that holds a newer one already (written by a reporter of this version
        while one of the older version still ran, in a rolling upgrade) keeps it."""
        marks = {
            str(item): str(entry) for item, entry in (await self.client.hgetall(keys.LEGACY_REPORTED)).items()
        }
        if not marks:
            return 0
        async with self.client.pipeline(transaction=False) as pipe:
            for item_id in marks:
                pipe.hget(keys.job(item_id), "reported")
            current: list[Any] = await pipe.execute()
        async with self.client.pipeline(transaction=True) as pipe:
            for (item_id, entry_id), held in zip(marks.items(), current, strict=True):
                if not held or entry_key(entry_id) > entry_key(str(held)):
                    pipe.hset(keys.job(item_id), "reported", entry_id)
            pipe.delete(keys.LEGACY_REPORTED)
            await pipe.execute()
        return len(marks)

    async def depth_and_age(self, clock: Callable[[], float] = time.time) -> tuple[int, float]:
        """How many events wait, and the age in seconds of the oldest (0 when empty)."""
        depth = int(await self.client.xlen(keys.OUTBOX))
        oldest = await self.client.xrange(keys.OUTBOX, count=1)
        age = 0.0
        if oldest:
            age = max(0.0, clock() - entry_key(str(oldest[0][0]))[0] / 1000)
        return depth, age


def _entries(raw: Any) -> list[Entry]:
    """Decoded entries; an entry deleted while pending (no fields) is passed over."""
    return [(str(entry_id), Event.from_fields(fields)) for entry_id, fields in raw or [] if fields]

"""The reporter: drains the outbox into Alloy edits (in `serve`, leader only).

Events are read from the stream `alloysync:outbox` with a consumer group, folded per item into one
pending write (later values win: only the latest state of an item is worth sending), and written
as one partial edit of alloysync's own attributes. Writes are paced by a token bucket of
ALLOYSYNC_REPORT_WRITES_PER_MINUTE (default 120, under Alloy's 150 edits/min for the key), on top
of the client's own limiter, so the budget holds by construction, not by luck.

Coalescing, in every regime: an item's first event is held for ALLOYSYNC_REPORT_COALESCE seconds
(default 1) before its write may go, and the events that follow fold into it meanwhile. A run
shorter than the window (Queued → Running → Succeeded) costs one edit even when the budget is
ample, and that edit goes as soon as the run's end is folded with its start (nothing of the run is
left to wait for); a longer run still shows Running after the window. After a write, the item's
next event starts a new window. Under budget pressure items wait for a token besides, and fold longer.

Guarantee (outbox → Alloy): **at-least-once, in order per item, never back to an older state**.
  - An event is acknowledged and deleted only after the edit carrying it succeeded; until then,
    held in its window or waiting for Alloy, it stays in the consumer group's pending list. A
    reporter that died (crash, failover, restart under a new name) leaves entries there; every
    reporter takes over *other* reporters' entries idle for CLAIM_IDLE_MS, at start and every
    CLAIM_EVERY seconds (never its own: they wait for Alloy), so a crash during a window or Alloy
    being down for an hour loses nothing.
  - Per item there is at most one write in flight, and events are folded in stream order. The id
    of the newest event written for each item is kept (the job hash's `reported`): an older event that
    turns up later (taken over from a dead reporter) is acknowledged without being written, so it
    can never put an item back into an older state. Writing the same values twice is harmless.
  - After a successful edit the `reported` mark, the signature Alloy returned, the reset request
    flags and the acknowledgement are one script (report_written.lua, for the edits of every
    writer that finished meanwhile: serve/report_book.py), the marks before the acknowledgement:
    if it does not run, the events stay pending and are written again.

It shares serve's event loop with the poller, under its own task budget rather than in a process
of its own: each turn of its read loop decodes and folds at most FOLD_CHUNK events before yielding
to the loop, the backlog and take-over are read in pages of READ_BATCH, at most `concurrency`
writes are in flight, and each write costs a share of two pipelined round trips besides its
edit: the reads before the edits of a turn (serve/before_write.py) and the book's
(serve/report_book.py). Writers pick ready items from a heap, so an idle or backed-up reporter
costs no scan of its pending items. A process would need its own leadership,
Redis and Alloy connections and failover for work that is I/O-bound once it coalesces; the
budget keeps the time it holds the loop short, so the poll loop is never starved. It holds at
most MAX_PENDING_ITEMS items' events in memory (plus one read batch): beyond that, new events wait
unread in the stream until writes catch up.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import random
import time
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from alloysync.alloy.client import AlloyClient
from alloysync.alloy.errors import AlloyError
from alloysync.alloy.ratelimit import TokenBucket
from alloysync.log import get_logger
from alloysync.metrics import OUTBOX_EVENTS, OUTBOX_OLDEST_AGE, REPORTER_EVENTS, REPORTER_WRITES
from alloysync.model.events import Event
from alloysync.model.job_options import ALL_FEATURES
from alloysync.serve.applied_views import AppliedViews
from alloysync.serve.before_write import BeforeWriteReads
from alloysync.serve.features import DesignFeatures
from alloysync.serve.pending_writes import RUN_END_KINDS, PendingWrite
from alloysync.serve.report_book import ReportBook
from alloysync.settings import Settings
from alloysync.state.outbox import READ_BATCH, Entry, Outbox, Written

logger = get_logger(__name__)

CLAIM_IDLE_MS = 15_000  # entries another reporter read this long ago without acknowledging are taken over
CLAIM_EVERY = 5.0  # seconds between take-over passes
FORGET_CONSUMER_AFTER_MS = 3_600_000  # consumers idle this long with nothing pending are deleted
FIRST_BACKOFF = 0.5  # seconds before retrying an item whose write failed; doubles per failure
MAX_BACKOFF = 15.0
READ_BLOCK_MS = 1000  # the longest wait for new events (under the socket timeout)
FOLD_CHUNK = 100  # events folded per turn of the event loop (the reporter's task budget)
MAX_READ_PAUSE = 0.1  # seconds between reads of new events (a fifth of the window, at most this)
IDLE_WAIT = 1.0  # seconds a writer with nothing scheduled waits before looking again
# Items with a pending write at which the reporter stops reading new events (they wait in the
# stream): a backlog of 100k events (a first sync of 100k records) is not held in memory at once.
MAX_PENDING_ITEMS = 5000
# Writes in flight at once. The budget, not this, paces writes to a real tenant (150 a minute); 32
# keep serve busy when Alloy answers in milliseconds while the machine's CPUs are busy too (each
# write's round trips then wait to be scheduled): measured side by side, three runs each, the
# end-to-end benchmark ran 12 % faster than with 16 (600/s), and 64 gained nothing more.
WRITERS = 32


class Reporter:
    def __init__(
        self,
        settings: Settings,
        alloy: AlloyClient,
        client: aioredis.Redis,
        consumer: str,
        concurrency: int = WRITERS,
        budget: TokenBucket | None = None,
        claim_idle_ms: int = CLAIM_IDLE_MS,
        claim_every: float = CLAIM_EVERY,
        features: DesignFeatures | None = None,
        applied_views: AppliedViews | None = None,
    ) -> None:
        self.settings = settings
        # Optional attributes the jobs design lacks are never written (their feature is off).
        self.design = features or DesignFeatures()
        # The poller's record of applied views, told about our own edits (serve/applied_views.py).
        self.applied_views = applied_views
        self.alloy = alloy
        self.outbox = Outbox(client)
        self.consumer = consumer
        self.concurrency = concurrency
        self.budget = budget or TokenBucket(settings.report_writes_per_minute)
        self.coalesce = settings.report_coalesce
        # Events wait in their window anyway: reading a few times a second instead of per event
        # folds them in batches (fewer reads, views and wake-ups), within a fifth of the window.
        self.read_pause = min(MAX_READ_PAUSE, self.coalesce / 5)
        self.claim_idle_ms = claim_idle_ms
        self.claim_every = claim_every
        self.codes = settings.attributes
        self.pending: dict[str, PendingWrite] = {}
        self.in_flight: set[str] = set()
        self.failing: set[str] = set()  # items whose last write failed (backing off)
        # (ready_at, n, item): when each pending item may be written, soonest first. An entry is a
        # hint: a writer that pops one checks the item again (see `_reserve`).
        self._ready: list[tuple[float, int, str]] = []
        self._order = itertools.count()
        self._wake = asyncio.Event()
        self.book = ReportBook(self.outbox, self._edit_is_ready)  # a new one for each `run`
        self.reads = BeforeWriteReads(self.outbox)  # likewise

    # --- the loop -----------------------------------------------------------------------------

    async def run(self) -> None:
        """Read and write until cancelled. Each run starts from what Redis holds: the events this
        consumer read but did not acknowledge are read again, so nothing in memory is needed."""
        self.pending, self.in_flight, self.failing, self._ready = {}, set(), set(), []
        self.book = ReportBook(self.outbox, self._edit_is_ready)
        self.reads = BeforeWriteReads(self.outbox)
        book_task = asyncio.create_task(self.book.run(), name="reporter-book")
        try:
            await self._run()
        finally:
            book_task.cancel()
            await asyncio.gather(book_task, return_exceptions=True)

    async def _run(self) -> None:
        await self.ensure_group()
        after: str | None = "0"
        while after is not None:
            backlog, after = await self.outbox.read_backlog(self.consumer, after)
            await self._fold(backlog)
        writers = [
            asyncio.create_task(self._writer(), name=f"reporter-writer-{n}") for n in range(self.concurrency)
        ]
        next_claim = 0.0
        try:
            while True:
                if time.monotonic() >= next_claim:
                    await self.take_over_idle()
                    next_claim = time.monotonic() + self.claim_every
                if len(self.pending) >= MAX_PENDING_ITEMS:
                    # Back-pressure: new events wait in the stream (unread, so nothing is lost)
                    # until writes drain what is held; memory stays bounded by the cap.
                    await asyncio.sleep(self.read_pause)
                    continue
                new = await self.outbox.read_new(self.consumer, block_ms=READ_BLOCK_MS)
                await self._fold(new)
                if len(new) < READ_BATCH:  # caught up: let a batch gather
                    await asyncio.sleep(self.read_pause)
        finally:
            for writer in writers:
                writer.cancel()
            await asyncio.gather(*writers, return_exceptions=True)

    def _edit_is_ready(self, item_id: str) -> bool:
        """Whether the item's edit only waits for a writer or a token (or is being made)."""
        if item_id in self.in_flight:
            return True
        pending = self.pending.get(item_id)
        return pending is not None and pending.ready_at <= time.monotonic()

    async def ensure_group(self) -> None:
        await self.outbox.ensure_group()
        moved = await self.outbox.move_reported_marks()
        if moved:
            logger.info("moved the reported marks into the job records", items=moved)

    async def take_over_idle(self) -> int:
        """Claim the entries other (dead) reporters read but never acknowledged, and forget
        long-gone reporters that hold nothing; returns how many entries were taken over.

        This reporter's own entries are never "taken over", however long they have waited: an
        Alloy outage keeps them pending here, with their write backing off."""
        claimed = await self.outbox.take_over_idle(self.consumer, self.claim_idle_ms)
        if claimed:
            logger.info("took over status events of another reporter", events=len(claimed))
            await self._fold(claimed, update_views=False)  # older than what the page shows
        await self.outbox.forget_consumers(self.consumer, FORGET_CONSUMER_AFTER_MS)
        return len(claimed)

    async def _fold(self, entries: list[Entry], update_views: bool = True) -> None:
        """Fold events into their items' pending writes, FOLD_CHUNK per turn of the event loop; an
        item without a pending write starts its coalescing window with this event. The jobs page's
        views go to the book (serve/report_book.py), which records them with the items' edits or
        alone."""
        for start in range(0, len(entries), FOLD_CHUNK):
            if start:
                await asyncio.sleep(0)  # the task budget: let the poll loop (and the writers) run
            now = time.monotonic()
            for entry_id, event in entries[start : start + FOLD_CHUNK]:
                pending = self.pending.get(event.item_id)
                if pending is None:
                    pending = PendingWrite(event.item_id, due=now + self.coalesce)
                    self.pending[event.item_id] = pending
                    self._schedule(pending)
                pending.add(entry_id, event)
                if (
                    event.kind in RUN_END_KINDS
                    and pending.holds_whole_run(event.run_id)
                    and pending.due > now
                ):
                    pending.due = now  # nothing of this run is left to fold: its one edit may go now
                    self._schedule(pending)
                if update_views:
                    self.book.note_view(event.item_id, _view_fields(event), now)

    # --- writers ------------------------------------------------------------------------------

    async def _writer(self) -> None:
        while True:
            item_id = await self._reserve()
            write: PendingWrite | None = None
            try:
                # The item is reserved before the budget is taken, and its events keep folding into
                # its pending write while we wait: one token, one write, the latest state.
                await self.budget.acquire()
                write = self.pending.pop(item_id, None)
                if write is not None:
                    await self._write(write)
            except RedisError as error:
                # Alloy may have been written, but the events could not be acknowledged: keep them
                # and write again later (writing the same values twice is harmless).
                logger.warning("Redis unavailable while reporting; keeping the events", error=str(error))
                if write is not None:
                    self._requeue(write, FIRST_BACKOFF)
            except Exception:
                logger.exception("unexpected error writing a status; keeping the events", item_id=item_id)
                if write is not None:
                    self._requeue(write, MAX_BACKOFF)
            finally:
                self.in_flight.discard(item_id)
                left = self.pending.get(item_id)  # put back, or events that came during the write
                if left is not None:
                    self._schedule(left)

    def _schedule(self, pending: PendingWrite) -> None:
        """Note when the item may be written; wake the writers when it is the soonest."""
        entry = (pending.ready_at, next(self._order), pending.item_id)
        heapq.heappush(self._ready, entry)
        if self._ready[0] is entry:  # the writers wait for the soonest (or for nothing)
            self._wake.set()

    async def _reserve(self) -> str:
        """Wait for the item that has been ready longest (its window over, not backing off, no
        write in flight), and reserve it."""
        while True:
            now = time.monotonic()
            while self._ready and self._ready[0][0] <= now:
                _at, _n, item_id = heapq.heappop(self._ready)
                pending = self.pending.get(item_id)
                if pending is None or item_id in self.in_flight:
                    continue  # written since; or its writer schedules it again when done
                if pending.ready_at > now:  # put back to wait (its backoff began after this entry)
                    heapq.heappush(self._ready, (pending.ready_at, next(self._order), item_id))
                    continue
                self.in_flight.add(item_id)
                return item_id
            wait = self._ready[0][0] - now if self._ready else IDLE_WAIT
            self._wake.clear()
            with contextlib.suppress(TimeoutError):  # not wait_for: see Notifier._reserve
                async with asyncio.timeout(min(wait, IDLE_WAIT)):
                    await self._wake.wait()

    async def _write(self, write: PendingWrite) -> None:
        written_through, signature = await self.reads.read(write.item_id)
        logical = write.attributes(written_through)
        if not logical:  # only events older than what is already on the record
            await self._acknowledge(write)
            return
        unwritten = ALL_FEATURES - self.design.fields
        attributes = {
            getattr(self.codes, name): value for name, value in logical.items() if name not in unwritten
        }
        if not attributes:  # only attributes this design does not have
            await self._acknowledge(write)
            return
        try:
            edit = await self.alloy.edit_owned(write.item_id, attributes, signature=signature)
        except AlloyError as error:
            if error.is_not_found:
                logger.info(
                    "job record deleted before its status was written; dropping", item_id=write.item_id
                )
                REPORTER_WRITES.labels(outcome="gone").inc()
                await self._acknowledge(write)
            elif error.is_retryable or error.is_unauthorized:
                REPORTER_WRITES.labels(outcome="error").inc()
                write.failures += 1
                self.failing.add(write.item_id)
                delay = min(MAX_BACKOFF, FIRST_BACKOFF * 2 ** (write.failures - 1)) * random.uniform(0.5, 1.0)
                logger.warning(
                    "status write failed; keeping the events and retrying",
                    item_id=write.item_id,
                    retry_in=round(delay, 2),
                    error=str(error),
                )
                self._requeue(write, delay)
            else:
                # Alloy refuses the values themselves (400): retrying cannot help.
                REPORTER_WRITES.labels(outcome="rejected").inc()
                logger.error(
                    "Alloy rejected a status write; dropping it", item_id=write.item_id, error=str(error)
                )
                await self._acknowledge(write)
            return
        self._release_waiting()
        REPORTER_WRITES.labels(outcome="ok").inc()
        REPORTER_EVENTS.inc(len(write.events))
        finished = [
            flag
            for flag, reset in (
                ("request", logical.get("run_requested") is False),
                ("cancel", logical.get("cancel_requested") is False),
                ("backfill", "backfill" in logical and logical["backfill"] is None),
            )
            if reset
        ]
        item = edit.item
        if self.applied_views is not None:
            self.applied_views.follow_own_edit(write.item_id, edit.based_on, item.signature)
        # The signature our edit returned is the newest there is; recorded with the edits of the
        # other writers, and the item's view.
        await self.book.record(
            Written(write.item_id, write.entry_ids, write.newest, item.signature or "", finished)
        )

    def _release_waiting(self) -> None:
        """A write just succeeded: Alloy is answering, so items backing off may go now."""
        for item_id in self.failing:
            pending = self.pending.get(item_id)
            if pending is not None and pending.failures:
                pending.failures = 0
                pending.not_before = 0.0
                self._schedule(pending)
        self.failing.clear()

    def _requeue(self, write: PendingWrite, delay: float) -> None:
        newer = self.pending.pop(write.item_id, None)
        if newer is not None:
            write.absorb(newer)
        write.not_before = time.monotonic() + delay
        self.pending[write.item_id] = write  # its writer schedules it when done

    async def _acknowledge(self, write: PendingWrite) -> None:
        await self.outbox.acknowledge(write.entry_ids)


async def sample_outbox(client: aioredis.Redis, clock: Callable[[], float] = time.time) -> tuple[int, float]:
    """Outbox depth and the age of its oldest event (0 when empty); also sets the gauges."""
    depth, age = await Outbox(client).depth_and_age(clock)
    OUTBOX_EVENTS.set(depth)
    OUTBOX_OLDEST_AGE.set(age)
    return depth, age


def _view_fields(event: Event) -> dict[str, Any]:
    view = dict(event.attributes)
    view.pop("run_requested", None)
    view.pop("result", None)
    view["event"] = event.kind
    view["event_at"] = event.at
    return view

"""The poller: syncs job records from Alloy into the store and decides what runs (in `serve`, leader only).

Real Alloy items carry no edit date (`lastEditDate` exists only as an AQS item property to filter
and sort by), so nothing here reads dates from items.

Passes:
  incremental  every ALLOYSYNC_POLL_INTERVAL: items of the jobs design whose lastEditDate is after
               the cursor minus ALLOYSYNC_SYNC_OVERLAP. The cursor is the time on *Alloy's* clock
               (the `Date` header of the pass's first response) at which the previous pass began,
               so client clock skew does not matter and the overlap only covers Alloy's own commit
               lag. Results are sorted newest first: an item edited while we page moves to the
               front, onto a page already read, so it can only repeat an item (harmless), never push
               one past us; its new version is after the new cursor and the next pass reads it. An
               idle pass costs one query: a page shorter than the page size ends the pass.
  webhook      the items a webhook named, read one by one, at once.
  full         every ALLOYSYNC_FULL_SYNC_INTERVAL: every item of the design, paced by its own
               budget of a quarter of ALLOYSYNC_ALLOY_QUERY_PER_MINUTE (so 10k records take about
               four minutes, and incremental passes keep running beside it); job ids we know that
               Alloy no longer has are forgotten (deleted records). It also catches an item that a
               deletion during a multi-page incremental pass shifted past that pass.

Guarantee (Alloy → store): at-least-once reading, idempotent applying. An item seen twice is
applied twice; the definition fingerprint makes the second application a no-op. alloysync's own
write-back changes only alloysync's attributes, which are not part of the fingerprint.

What a new definition version or a RunRequested means is decided by `model/versions.py`
(`plan_version`, `plan_request`: pure); the applier (serve/applier.py) carries the plans out, a
page of records at a time, in a few pipelined round trips (see there for what survives serve dying
half-way through a page). Which views may still show
a request we already reset is decided by Redis time (see `JobStore.begin_request`), not by item
dates.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime, timedelta

import redis.asyncio as aioredis

from alloysync.alloy import aqs
from alloysync.alloy.client import AlloyClient, Page
from alloysync.alloy.errors import AlloyError
from alloysync.alloy.models import Item
from alloysync.alloy.ratelimit import TokenBucket
from alloysync.alloy.responses import KnownView
from alloysync.enqueue import RunQueue
from alloysync.log import get_logger
from alloysync.metrics import (
    FULL_SYNC_DURATION,
    FULL_SYNC_QUERIES,
    POLL_DURATION,
    POLL_ITEMS,
    SYNC_LAST_SUCCESS,
)
from alloysync.model.registry import TaskRegistry
from alloysync.model.times import utc_now
from alloysync.serve.applied_views import AppliedViews
from alloysync.serve.applier import RecordApplier
from alloysync.serve.features import DesignFeatures
from alloysync.settings import Settings
from alloysync.state.connections import BLOCK_SECONDS
from alloysync.state.jobs import JobStore
from alloysync.state.lease import PollerLease
from alloysync.state.outbox import Outbox
from alloysync.state.schedules import ScheduleStore
from alloysync.state.sync import SyncState

logger = get_logger(__name__)

Clock = Callable[[], datetime]


class Poller:
    def __init__(
        self,
        settings: Settings,
        alloy: AlloyClient,
        client: aioredis.Redis,
        runs: RunQueue,
        registry: TaskRegistry,
        lease: PollerLease,
        clock: Clock = utc_now,
        features: DesignFeatures | None = None,
    ) -> None:
        self.settings = settings
        self.design = features or DesignFeatures()  # the optional attributes the jobs design has
        self.alloy = alloy
        self.store = JobStore(client)
        self.sync = SyncState(client)
        self.schedules = ScheduleStore(client)
        self.outbox = Outbox(client)
        self.runs = runs
        self.registry = registry
        self.lease = lease
        self.clock = clock
        self.codes = settings.attributes
        self.applier = RecordApplier(settings, client, runs, registry, lease, clock, self.design)
        self._missing: set[str] = set()  # job ids the last full pass did not find
        # Views applied already, which incremental passes skip (they re-read the overlap each pass).
        self.applied_views = AppliedViews(settings.sync_overlap)
        # The full reconciliation's own pace: at most a quarter of the key's query budget.
        self.full_budget = TokenBucket(max(1, settings.alloy_query_per_minute // 4), burst=1)
        # The full pass applies pages beside incremental and webhook passes: one page at a time.
        self._applying = asyncio.Lock()
        self._warned_no_date = False

    @property
    def _lease(self) -> str:
        assert self.lease.value is not None, "the poller runs only while holding the lease"
        return self.lease.value

    # --- the loop -----------------------------------------------------------------------------

    async def run(self) -> None:
        """Poll until cancelled. Alloy errors are logged and retried at the next interval.

        Between passes, items named by the webhook are synced as they arrive; they do not start
        an extra pass (a burst of webhook calls must not spend the query budget). The paced full
        reconciliation runs beside the incremental passes, in its own task, from the first
        successful pass on (at once, unless that pass read every record because there was no cursor)."""
        full: asyncio.Task[None] | None = None
        try:
            while True:
                if full is not None and full.done():
                    full.result()  # a refused fenced write (LeaseLost) stops the poller
                next_pass = time.monotonic() + self.settings.poll_interval
                try:
                    read_everything = await self.sync_incremental() is None
                    if full is None:
                        delay = self.settings.full_sync_interval if read_everything else 0.0
                        full = asyncio.create_task(self._full_forever(delay), name="full-reconciliation")
                except AlloyError as error:
                    logger.warning("sync pass failed; retrying at the next poll", error=str(error))
                await asyncio.to_thread(self.runs.recover)
                while (remaining := next_pass - time.monotonic()) > 0:
                    # Short blocking waits (0 would block forever; long ones outlast the socket timeout).
                    requested = await self.sync.wait_for_requests(min(max(remaining, 0.01), BLOCK_SECONDS))
                    if not requested:
                        continue
                    try:
                        await self.sync_items(requested)
                    except AlloyError as error:
                        logger.warning(
                            "webhook sync failed; the next poll will pick the items up", error=str(error)
                        )
        finally:
            if full is not None:
                full.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await full

    async def _full_forever(self, delay: float) -> None:
        """A full reconciliation after `delay`, then one ALLOYSYNC_FULL_SYNC_INTERVAL after each ends."""
        await asyncio.sleep(delay)
        while True:
            try:
                await self.sync_full()
            except AlloyError as error:
                logger.warning("full reconciliation failed; retrying later", error=str(error))
            await asyncio.sleep(self.settings.full_sync_interval)

    # --- passes -------------------------------------------------------------------------------

    async def sync_incremental(self) -> int | None:
        """One incremental pass; returns how many items it read, or None when there was no cursor
        yet and the pass read every record."""
        pass_started = self.clock()
        timer = time.monotonic()
        cursor = await self.sync.cursor()
        since = cursor - timedelta(seconds=self.settings.sync_overlap) if cursor else None
        filters = (
            [aqs.greater_than(aqs.item_property("lastEditDate"), aqs.datetime_value(since))] if since else []
        )
        query = aqs.query(
            self.settings.jobs_design,
            *filters,
            collection=self.settings.jobs_collection,
            sort_by_last_edit="desc",
        )
        self.applied_views.enter_term(self._lease, await self.sync.server_run_id())
        seen: set[str] = set()
        began_on_alloy: datetime | None = None
        async for page, read_ms in self._pages(query, known_view=self.applied_views.has):
            if began_on_alloy is None:
                began_on_alloy = page.server_time or self._local_alloy_time(pass_started)
            seen.update(page.known)
            fresh = _unseen(page.items, seen)
            async with self._applying:
                await self.applier.apply_page(fresh, read_ms)
            if since is not None:  # a pass without a cursor reads old records, which no pass reads again
                self.applied_views.remember(fresh)
        if began_on_alloy is not None:
            await self.sync.set_cursor(self._lease, began_on_alloy)
        # Every edit made before this pass started has now been seen: that is how far we are synced.
        await self.sync.set_synced_through(pass_started)
        self._observe("incremental", timer, len(seen))
        return len(seen) if since is not None else None

    async def sync_full(self) -> int:
        """Read every job record, paced; forget jobs Alloy no longer has. Returns how many items it read."""
        timer = time.monotonic()
        query = aqs.query(self.settings.jobs_design, collection=self.settings.jobs_collection)
        seen: set[str] = set()
        queries = 0
        async for page, read_ms in self._pages(query, budget=self.full_budget):
            queries += 1
            async with self._applying:
                await self.applier.apply_page(_unseen(page.items, seen), read_ms)
        # A job is forgotten when two full passes in a row missed it: one pass can miss an item
        # when others are deleted while it pages.
        async with self._applying:
            missing = await self.store.job_ids() - seen
            for item_id in missing & self._missing:
                logger.info("job record is gone from Alloy; forgetting it", item_id=item_id)
                await self.store.forget_job(self._lease, item_id)
        self._missing = missing - self._missing
        duration = time.monotonic() - timer
        FULL_SYNC_DURATION.set(duration)
        FULL_SYNC_QUERIES.set(queries)
        logger.info("full reconciliation done", items=len(seen), queries=queries, seconds=round(duration, 2))
        self._observe("full", timer, len(seen))
        return len(seen)

    async def sync_items(self, item_ids: list[str]) -> None:
        """Sync the named items now (webhook)."""
        timer = time.monotonic()
        for item_id in item_ids:
            read_ms = await self.store.now_ms()
            try:
                item = await self.alloy.get_item(item_id)
            except AlloyError as error:
                if error.is_not_found:
                    async with self._applying:
                        if item_id in await self.store.job_ids():
                            await self.store.forget_job(self._lease, item_id)
                    continue
                raise
            if item.designCode == self.settings.jobs_design:
                async with self._applying:
                    await self.apply(item, read_ms)
        POLL_DURATION.labels(kind="webhook").observe(time.monotonic() - timer)
        POLL_ITEMS.labels(kind="webhook").inc(len(item_ids))

    async def _pages(
        self, query: aqs.Node, budget: TokenBucket | None = None, known_view: KnownView | None = None
    ) -> AsyncIterator[tuple[Page, int]]:
        """The pages of `query`, each with the Redis time taken just before it was requested.

        After a full page the next one is requested while the caller applies this one (Alloy
        answers while we write to Redis); after a shorter one, which may be the last, only once the
        caller is done with it, as without read-ahead. With `budget`, a token is taken before each
        page (the full reconciliation's own pace); `known_view` goes to `AlloyClient.query_pages`
        (results it knows are not parsed)."""
        pages = self.alloy.query_pages(query, self.settings.alloy_page_size, known_view)

        async def read_next() -> tuple[Page | None, int]:
            if budget is not None:
                await budget.acquire()
            read_ms = await self.store.now_ms()
            return await anext(pages, None), read_ms

        async with contextlib.aclosing(pages):
            upcoming: asyncio.Future[tuple[Page | None, int]] | None = None
            try:
                while True:
                    page, read_ms = await (read_next() if upcoming is None else upcoming)
                    if page is None:
                        return
                    read_ahead = len(page.items) >= self.settings.alloy_page_size
                    upcoming = asyncio.ensure_future(read_next()) if read_ahead else None
                    yield page, read_ms
            finally:
                if upcoming is not None:
                    upcoming.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await upcoming

    def _local_alloy_time(self, started: datetime) -> datetime:
        """Alloy's clock when its response carried no `Date` header: ours, at the pass's start."""
        if not self._warned_no_date:
            self._warned_no_date = True
            logger.warning(
                "Alloy's responses carry no Date header; the sync cursor follows this host's clock: "
                "keep it NTP-synced, or raise ALLOYSYNC_SYNC_OVERLAP"
            )
        return started

    def _observe(self, kind: str, timer: float, count: int) -> None:
        POLL_DURATION.labels(kind=kind).observe(time.monotonic() - timer)
        POLL_ITEMS.labels(kind=kind).inc(count)
        SYNC_LAST_SUCCESS.set(time.time())

    async def apply(self, item: Item, read_ms: int) -> None:
        """Bring one job record into the store and act on it (serve/applier.py)."""
        await self.applier.apply(item, read_ms)


def _unseen(items: Sequence[Item], seen: set[str]) -> list[Item]:
    """The items of a page not seen earlier in the pass (an item edited while we page repeats),
    now added to `seen`."""
    fresh = []
    for item in items:
        if item.itemId not in seen:
            seen.add(item.itemId)
            fresh.append(item)
    return fresh

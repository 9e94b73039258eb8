"""The poller: syncs job records from Alloy into the store and decides what runs (in `serve`, leader only).

Passes:
  incremental  every ALLOYSYNC_POLL_INTERVAL: items of the jobs design with lastEditDate after the
               cursor minus ALLOYSYNC_SYNC_OVERLAP (Alloy's clocks and commit order are not perfect),
               sorted by lastEditDate and paged by key (lastEditDate), so an item edited while we
               page cannot shift another item past us. The cursor only advances after the pass.
  webhook      the items a webhook named, read one by one, at once.
  full         every ALLOYSYNC_FULL_SYNC_INTERVAL: every item of the design; job ids we know that
               Alloy no longer has are forgotten (deleted records).

Guarantee (Alloy → store): at-least-once reading, idempotent applying. An item seen twice is
applied twice; the definition fingerprint makes the second application a no-op. alloysync's own
write-back changes only alloysync's attributes, which are not part of the fingerprint.

Decisions on a new definition version: invalid → Invalid status; disabled → paused (schedule and
NextRun cleared); once-now → a run `now:{item}:v{version}`; run-at / cron → a schedule entry for
the scheduler (a run-at time already past runs at once). RunRequested → a run `req:{item}:{n}`
and a reset of the flag through the reporter.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta

import redis.asyncio as aioredis

from alloysync import keys
from alloysync.alloy import aqs
from alloysync.alloy.client import AlloyClient
from alloysync.alloy.errors import AlloyError
from alloysync.alloy.models import Item
from alloysync.jobs import (
    DisabledJob,
    InvalidJob,
    JobDefinition,
    JobSpec,
    JobState,
    ScheduleKind,
    read_definition,
    validate_job,
)
from alloysync.lease import PollerLease
from alloysync.log import get_logger
from alloysync.metrics import POLL_DURATION, POLL_ITEMS, SYNC_LAST_SUCCESS
from alloysync.outbox import Event, Status, format_time
from alloysync.redis_clients import BLOCK_SECONDS
from alloysync.runs import RunKind, RunQueue, RunRequest, run_id_for
from alloysync.schedules import ScheduleEntry, parse_time
from alloysync.settings import Settings
from alloysync.store import JobStore
from alloysync.tasks import TaskRegistry

logger = get_logger(__name__)

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


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
    ) -> None:
        self.settings = settings
        self.alloy = alloy
        self.client = client
        self.store = JobStore(client)
        self.runs = runs
        self.registry = registry
        self.lease = lease
        self.clock = clock
        self.codes = settings.attributes
        self.registry_digest = registry.digest()
        self._last_full = 0.0
        self._missing: set[str] = set()  # job ids the last full pass did not find

    @property
    def _lease(self) -> str:
        assert self.lease.value is not None, "the poller runs only while holding the lease"
        return self.lease.value

    # --- the loop -----------------------------------------------------------------------------

    async def run(self) -> None:
        """Poll until cancelled. Alloy errors are logged and retried at the next interval.

        Between passes, items named by the webhook are synced as they arrive; they do not start
        an extra pass (a burst of webhook calls must not spend the query budget)."""
        while True:
            next_pass = time.monotonic() + self.settings.poll_interval
            try:
                await self.sync_incremental()
                if time.monotonic() - self._last_full >= self.settings.full_sync_interval:
                    await self.sync_full()
            except AlloyError as error:
                logger.warning("sync pass failed; retrying at the next poll", error=str(error))
            await asyncio.to_thread(self.runs.recover)
            while (remaining := next_pass - time.monotonic()) > 0:
                # Short blocking waits (0 would block forever; long ones outlast the socket timeout).
                requested = await self.wait_for_requests(min(max(remaining, 0.01), BLOCK_SECONDS))
                if not requested:
                    continue
                try:
                    await self.sync_items(requested)
                except AlloyError as error:
                    logger.warning(
                        "webhook sync failed; the next poll will pick the items up", error=str(error)
                    )

    async def wait_for_requests(self, within: float) -> list[str]:
        """Wait up to `within` seconds for item ids pushed by the webhook; returns them all."""
        first = await self.client.blpop([keys.SYNC_REQUESTS], timeout=within)
        if first is None:
            return []
        more = await self.client.lpop(keys.SYNC_REQUESTS, 1000) or []
        assert isinstance(more, list)
        return list(dict.fromkeys([str(first[1]), *(str(item_id) for item_id in more)]))

    # --- passes -------------------------------------------------------------------------------

    async def sync_incremental(self) -> int:
        """One incremental pass; returns how many items it read."""
        pass_started = self.clock()
        timer = time.monotonic()
        cursor = await self.store.cursor()
        since = cursor - timedelta(seconds=self.settings.sync_overlap) if cursor else None
        newest = cursor
        seen: set[str] = set()
        page_size = self.settings.alloy_page_size
        while True:
            filters = (
                [aqs.greater_than(aqs.item_property("lastEditDate"), aqs.datetime_value(since))]
                if since
                else []
            )
            query = aqs.query(
                self.settings.jobs_design,
                *filters,
                collection=self.settings.jobs_collection,
                sort_by_last_edit="asc",
            )
            fetched = 0
            new_on_page = 0
            rekey = False
            last_edit: datetime | None = None
            async with contextlib.aclosing(self.alloy.query(query, page_size=page_size)) as items:
                async for item in items:
                    fetched += 1
                    if item.itemId not in seen:
                        seen.add(item.itemId)
                        new_on_page += 1
                        await self.apply(item)
                    if item.lastEditDate is not None:
                        last_edit = item.lastEditDate
                        newest = max(newest, last_edit) if newest else last_edit
                    if fetched == page_size and new_on_page and last_edit is not None:
                        # A full page: ask again from its last key rather than by page number.
                        # A page of nothing new (many items sharing one timestamp) pages on by number.
                        rekey = True
                        break
            if not rekey:
                break
            assert last_edit is not None
            # Items sharing the boundary timestamp come again; `seen` skips them.
            since = last_edit - timedelta(milliseconds=1)
        if newest is not None:
            await self.store.set_cursor(self._lease, newest)
        # Every edit made before this pass started has now been seen: that is how far we are synced.
        await self.client.set(keys.SYNC_THROUGH, pass_started.isoformat())
        self._observe("incremental", timer, len(seen))
        return len(seen)

    async def sync_full(self) -> int:
        """Read every job record; forget jobs Alloy no longer has. Returns how many items it read."""
        timer = time.monotonic()
        query = aqs.query(self.settings.jobs_design, collection=self.settings.jobs_collection)
        seen: set[str] = set()
        async for item in self.alloy.query(query):
            seen.add(item.itemId)
            await self.apply(item)
        # A job is forgotten when two full passes in a row missed it: one pass can miss an item
        # when others are deleted while it pages.
        missing = await self.store.job_ids() - seen
        for item_id in missing & self._missing:
            logger.info("job record is gone from Alloy; forgetting it", item_id=item_id)
            await self.store.forget_job(self._lease, item_id)
        self._missing = missing - self._missing
        self._last_full = time.monotonic()
        self._observe("full", timer, len(seen))
        return len(seen)

    async def sync_items(self, item_ids: list[str]) -> None:
        """Sync the named items now (webhook)."""
        timer = time.monotonic()
        for item_id in item_ids:
            try:
                item = await self.alloy.get_item(item_id)
            except AlloyError as error:
                if error.is_not_found:
                    if item_id in await self.store.job_ids():
                        await self.store.forget_job(self._lease, item_id)
                    continue
                raise
            if item.designCode == self.settings.jobs_design:
                await self.apply(item)
        POLL_DURATION.labels(kind="webhook").observe(time.monotonic() - timer)
        POLL_ITEMS.labels(kind="webhook").inc(len(item_ids))

    def _observe(self, kind: str, timer: float, count: int) -> None:
        POLL_DURATION.labels(kind=kind).observe(time.monotonic() - timer)
        POLL_ITEMS.labels(kind=kind).inc(count)
        SYNC_LAST_SUCCESS.set(time.time())

    # --- applying one item --------------------------------------------------------------------

    async def apply(self, item: Item) -> None:
        """Bring one job record into the store and act on what changed.

        Acting on a version (runs, schedule, events) is recorded only once it is done: a pass that
        dies half-way is finished by the next sighting of the item (see store.py)."""
        if item.designCode != self.settings.jobs_design:
            return
        now = self.clock()
        definition = read_definition(item, self.codes)
        state = validate_job(definition, self.registry, self.settings, now)
        stand = await self.store.apply_definition(
            self._lease,
            item.itemId,
            definition.fingerprint,
            {**_decided_fields(definition, state), "changed": format_time(now)},
            definition.run_count,
        )
        await self.store.remember_item(item, title=definition.title)
        if stand.needs_action(self.registry_digest):
            # Decide as of when this version appeared (a run-at time's horizon, a schedule's start),
            # unless only the task registry changed: then the schedule starts now.
            new_version = stand.acted < stand.version
            seen_at = parse_time(stand.changed) if new_version and stand.changed else now
            if seen_at != now:
                state = validate_job(definition, self.registry, self.settings, seen_at)
            logger.info(
                "acting on job definition",
                item_id=item.itemId,
                version=stand.version,
                state=_state_name(state),
            )
            await self._on_new_version(state, stand.version, seen_at)
            decided = _decided_fields(definition, state)
            await self.store.mark_acted(
                self._lease, item.itemId, stand.version, self.registry_digest, decided
            )
        if definition.run_requested and item.lastEditDate is not None:
            await self._on_run_requested(state, stand.version, format_time(item.lastEditDate))

    async def _on_new_version(self, state: JobState, version: int, now: datetime) -> None:
        if isinstance(state, InvalidJob):
            await self.store.remove_schedule(self._lease, state.item_id)
            await self._event(
                state.item_id,
                "invalid",
                {"status": Status.INVALID, "message": state.message, "next_run": None},
            )
            return
        if isinstance(state, DisabledJob):
            await self.store.remove_schedule(self._lease, state.item_id)
            message = "Paused: Enabled is false. Set it to true to run or schedule this job."
            await self._event(state.item_id, "paused", {"message": message, "next_run": None})
            return
        schedule = state.schedule
        if schedule.kind is ScheduleKind.NOW:
            await self.store.remove_schedule(self._lease, state.item_id)
            reason = "Queued: new job" if version == 1 else f"Queued: definition changed (version {version})"
            run_id = run_id_for(RunKind.NOW, state.item_id, version=version)
            await self._submit(state, version, RunKind.NOW, run_id, reason, "poller")
            return
        entry = ScheduleEntry.from_spec(state, version, since=now)
        await self.store.put_schedule(self._lease, entry)
        if schedule.kind is ScheduleKind.AT:
            assert schedule.run_at is not None
            if schedule.run_at <= self.clock():
                run_id = run_id_for(RunKind.AT, state.item_id, scheduled_at=schedule.run_at)
                reason = f"Queued: its run-at time {format_time(schedule.run_at)} has passed"
                await self._submit(
                    state, version, RunKind.AT, run_id, reason, "poller", scheduled_at=schedule.run_at
                )
                return
            message = f"Runs once at {format_time(schedule.run_at)}"
            attributes = {
                "status": Status.SCHEDULED,
                "message": message,
                "next_run": format_time(schedule.run_at),
            }
            await self._event(state.item_id, "scheduled", attributes)
            return
        next_fire = entry.next_fire(self.clock())
        assert next_fire is not None
        message = f"Next run {format_time(next_fire)} ({schedule.text}, {schedule.timezone})"
        attributes = {"status": Status.SCHEDULED, "message": message, "next_run": format_time(next_fire)}
        await self._event(state.item_id, "scheduled", attributes)

    async def _on_run_requested(self, state: JobState, version: int, last_edit: str) -> None:
        """Run once more and reset the flag. Every step is idempotent and repeated while the request
        is in hand (not reset yet): the run exists before its reset is sent, so neither is lost."""
        request, new = await self.store.begin_request(self._lease, state.item_id, last_edit)
        if not request:
            return  # a view from before our last reset
        attributes: dict[str, object] = {"run_requested": False}
        if isinstance(state, JobSpec):
            run_id = run_id_for(RunKind.REQUEST, state.item_id, request=request)
            await self._submit(state, version, RunKind.REQUEST, run_id, "Queued: RunRequested", "request")
        elif isinstance(state, DisabledJob):
            attributes["message"] = "RunRequested ignored: the job is disabled"
        else:
            attributes["message"] = f"RunRequested ignored: {state.message}"
        if new:
            logger.info("run requested", item_id=state.item_id, request=request)
        await self.store.add_request_reset(
            self._lease, state.item_id, request, Event(state.item_id, "request_reset", attributes)
        )

    async def _submit(
        self,
        spec: JobSpec,
        version: int,
        kind: RunKind,
        run_id: str,
        reason: str,
        source: str,
        scheduled_at: datetime | None = None,
    ) -> None:
        request = RunRequest(
            run_id=run_id,
            item_id=spec.item_id,
            kind=kind,
            steps=spec.steps,
            params=spec.params,
            source=source,
            reason=reason,
            scheduled_at=scheduled_at,
            version=version,
        )
        created = await asyncio.to_thread(self.runs.submit, request, self._lease)
        if created:
            logger.info("run enqueued", run_id=run_id, task=spec.task_label)

    async def _event(self, item_id: str, kind: str, attributes: Mapping[str, object]) -> None:
        await self.store.add_event(self._lease, Event(item_id, kind, dict(attributes)))


def _decided_fields(definition: JobDefinition, state: JobState) -> dict[str, str]:
    """What the jobs page and the worker's checks read about a job: its state and summary."""
    return {
        "title": definition.title,
        "state": _state_name(state),
        "task": state.task_label if isinstance(state, JobSpec) else str(definition.task or ""),
        "schedule": str(definition.schedule or ""),
        "timezone": str(definition.timezone or "") or "UTC",
        "invalid": state.message if isinstance(state, InvalidJob) else "",
    }


def _state_name(state: JobState) -> str:
    if isinstance(state, JobSpec):
        return "valid"
    if isinstance(state, DisabledJob):
        return "disabled"
    return "invalid"

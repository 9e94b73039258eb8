"""Applying job records (in `serve`, leader only): store their definitions, decide what they mean,
and carry that out — runs, the schedule entry, events, RunRequested, CancelRequested, Backfill.

The poller (serve/poller.py) reads records from Alloy a page at a time and hands each page here.
What to do is decided by `model.versions` (pure); this module carries it out, in the plan's order,
through the fenced stores, a page at a time: one pipelined round trip stores the page's definitions,
one writes the schedule entries that change, one `submit_many` (one thread hop) creates and sends
the page's runs, and one appends the events and records the versions as acted upon. A record that
needs nothing (an unchanged definition) costs only its share of the first round trip.

Guarantee: acting on a version is recorded only once it is done (`_carry_out`), so a pass that
dies half-way through a page — serve killed, Redis gone, the lease lost — is finished by the next
sighting of the items (see state/jobs.py); every action is idempotent (deterministic run ids,
overwritten schedule entries, repeated events, request numbers), and every write is fenced by the
poller lease. The requests (RunRequested, CancelRequested, Backfill) are handled record by record
after the page's versions, each with its own bookkeeping (`JobStore.begin_request`).

The optional attributes (Overlap, ConcurrencyKey, Notify, NotifyOn, MaxAge, Backfill) are acted
upon when they change, like a new task registry, but are not part of the definition: a change
never creates a new version, so it never re-runs a once-now job.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

import redis.asyncio as aioredis

from alloysync.alloy.models import Item
from alloysync.enqueue import RunQueue
from alloysync.log import get_logger
from alloysync.model.events import Event
from alloysync.model.job_options import RunControl
from alloysync.model.jobs import (
    DisabledJob,
    InvalidJob,
    JobDefinition,
    JobSpec,
    JobState,
    read_definition,
    validate_job,
)
from alloysync.model.params import ParamsProblem, parse_params
from alloysync.model.registry import TaskRegistry
from alloysync.model.runs import task_label
from alloysync.model.times import format_alloy_datetime, parse_alloy_datetime
from alloysync.model.versions import BackfillPlan, VersionPlan, plan_backfill, plan_request, plan_version
from alloysync.serve.features import DesignFeatures
from alloysync.settings import Settings
from alloysync.state.jobs import Acted, JobStore, JobVersion, Sighting
from alloysync.state.lease import PollerLease
from alloysync.state.records import JobDecision, JobPhase
from alloysync.state.schedules import ScheduleStore

logger = get_logger(__name__)

CANCEL_REASON = "Cancelled by CancelRequested on the record"
LOGGED_ITEM_IDS = 10  # a page's INFO line names the jobs it acted upon when there are at most this many
# Records validated (or planned) per turn of the event loop: a page of 100 holds the loop for tens
# of milliseconds, which the reporter's writers, sharing it, would otherwise wait out.
RECORDS_PER_TURN = 20

Clock = Callable[[], datetime]


@dataclass
class _Reading:
    """A record as read: its definition, its validated state (validated again as of the version's
    first sighting when that is acted upon) and the key of what acting on it depends on."""

    item: Item
    definition: JobDefinition
    state: JobState
    acted_key: str


@dataclass(frozen=True)
class _Acting:
    """A version to act upon: the plan, and what records it as acted once the plan is done."""

    plan: VersionPlan
    acted: Acted


class RecordApplier:
    """Carries out what one job record means; shared by the incremental, full and webhook passes."""

    def __init__(
        self,
        settings: Settings,
        client: aioredis.Redis,
        runs: RunQueue,
        registry: TaskRegistry,
        lease: PollerLease,
        clock: Clock,
        design: DesignFeatures,
    ) -> None:
        self.settings = settings
        self.store = JobStore(client)
        self.schedules = ScheduleStore(client)
        self.runs = runs
        self.registry = registry
        self.lease = lease
        self.clock = clock
        self.design = design
        self.codes = settings.attributes
        self.registry_digest = registry.digest()

    @property
    def _lease(self) -> str:
        assert self.lease.value is not None, "the poller runs only while holding the lease"
        return self.lease.value

    async def apply(self, item: Item, read_ms: int) -> None:
        """Bring one job record into the store and act on what changed (see `apply_page`)."""
        await self.apply_page([item], read_ms)

    async def apply_page(self, items: Sequence[Item], read_ms: int) -> None:
        """Bring a page of job records into the store and act on what changed. `read_ms` is the
        Redis time just before the page was requested (it orders views; see `JobStore.begin_request`).

        What to do is decided by `model.versions` (pure); this carries it out. Acting on a version
        is recorded only once it is done: a pass that dies half-way is finished by the next
        sighting of the item (see state/jobs.py)."""
        now = self.clock()
        # In Alloy's precision, so that a version first seen now is planned as of `now` itself
        # (its `changed` text reads back equal) without validating the record a second time.
        now = now.replace(microsecond=now.microsecond - now.microsecond % 1000)
        readings: list[_Reading] = []
        for number, item in enumerate(items):
            if number and number % RECORDS_PER_TURN == 0:
                await asyncio.sleep(0)
            if item.designCode == self.settings.jobs_design:
                readings.append(self._read(item, now))
        if not readings:
            return
        sightings = [
            Sighting(
                reading.item.itemId,
                reading.definition.fingerprint,
                decision_for(reading.definition, reading.state),
                format_alloy_datetime(now),
                reading.definition.run_count,
                read_ms,
                reading.item.signature or "",
            )
            for reading in readings
        ]
        stands = await self.store.apply_definitions(self._lease, sightings)
        acting: list[_Acting] = []
        for number, (reading, stand) in enumerate(zip(readings, stands, strict=True)):
            if number and number % RECORDS_PER_TURN == 0:
                await asyncio.sleep(0)
            if stand.needs_action(reading.acted_key):
                acting.append(self._plan(reading, stand, now))
        await self._carry_out(acting)
        for reading, stand in zip(readings, stands, strict=True):
            state, definition = reading.state, reading.definition
            if isinstance(state, JobSpec) and state.control.backfill is not None:
                await self._on_backfill(state, stand.version, read_ms)
            if definition.run_requested:
                await self._on_run_requested(state, definition, stand.version, read_ms)
            if definition.cancel_requested:
                await self._on_cancel_requested(state, read_ms)

    def _read(self, item: Item, now: datetime) -> _Reading:
        definition = read_definition(item, self.codes, self.design.fields)
        state = validate_job(definition, self.registry, self.settings, now, self.design.fields)
        # The optional attributes (Overlap, Notify, MaxAge...) are acted upon when they change, like
        # the task registry, without a new version: they never re-run a once-now job. So is a change
        # of the phase they decide (a bad Backfill value making the job Invalid, or no longer).
        acted_key = f"{self.registry_digest}:{definition.options_fingerprint}:{_phase(state).value}"
        return _Reading(item, definition, state, acted_key)

    def _plan(self, reading: _Reading, stand: JobVersion, now: datetime) -> _Acting:
        """What acting on the version the record stands at takes (`plan_version`)."""
        definition = reading.definition
        # Decide as of when this version appeared (a run-at time's horizon, a schedule's start),
        # unless only the task registry or an optional attribute changed: then from now.
        seen_at = parse_alloy_datetime(stand.changed) if stand.is_new and stand.changed else now
        if seen_at != now:
            reading.state = validate_job(
                definition, self.registry, self.settings, seen_at, self.design.fields
            )
        state = reading.state
        now_created = stand.now_version == stand.version
        plan = plan_version(state, stand.version, seen_at, self.clock(), now_run_created=now_created)
        decision = decision_for(definition, state, stand.version if plan.runs else stand.now_version)
        if not stand.is_new and stand.phase == decision.phase.value:
            # Same definition, same phase: keep what the record says (a Failed status stays).
            plan = replace(plan, events=[])
        if plan.remove_schedule and not stand.has_schedule:
            # Nothing to remove, so no write. The answer is current: only the poller writes schedule
            # entries (fenced), and it applies one page at a time.
            plan = replace(plan, remove_schedule=False)
        acted = Acted(definition.item_id, stand.version, reading.acted_key, decision, plan.events)
        return _Acting(plan, acted)

    async def _carry_out(self, acting: Sequence[_Acting]) -> None:
        """A page's plans, in the plans' order: schedule entries first, then runs, then events with
        the acted marks (each step one round trip for the whole page, skipped when empty).

        Guarantee: a version is recorded as acted upon (`JobStore.record_acted`) only after its
        schedule entry, its runs and its events were written, so serve dying anywhere in here
        leaves every version of the page that is not marked to the next sighting, which carries
        it out again (idempotent: the same entries, the same run ids, repeated events)."""
        if not acting:
            return
        changes = [
            (one.plan.item_id, one.plan.schedule)
            for one in acting
            if one.plan.schedule is not None or one.plan.remove_schedule
        ]
        await self.schedules.write(self._lease, changes)
        requests = [request for one in acting for request in one.plan.runs]
        created = await asyncio.to_thread(self.runs.submit_many, requests, self._lease) if requests else []
        await self.store.record_acted(self._lease, [one.acted for one in acting])
        new_runs = {request.run_id for request, new in zip(requests, created, strict=True) if new}
        # One INFO line per page (a first pass over 100,000 records writes 1,000, not 100,000);
        # the line per record is at DEBUG.
        item_ids = [one.acted.item_id for one in acting]
        logger.info(
            "job definitions acted upon",
            jobs=len(acting),
            runs=len(new_runs),
            **({"item_ids": item_ids} if len(item_ids) <= LOGGED_ITEM_IDS else {}),
        )
        if not logging.getLogger(__name__).isEnabledFor(logging.DEBUG):  # not built at all
            return
        for one in acting:
            runs = [request.run_id for request in one.plan.runs if request.run_id in new_runs]
            logger.debug(
                "job definition acted upon",
                item_id=one.acted.item_id,
                version=one.acted.version,
                state=one.acted.decision.phase.value,
                **({"runs": runs} if runs else {}),
            )

    async def _on_run_requested(
        self, state: JobState, definition: JobDefinition, version: int, read_ms: int
    ) -> None:
        """Run once more (with RunParams, when given) and reset the flag. Every step is idempotent
        and repeated while the request is in hand (not reset yet): the run exists before its reset
        is sent, so neither is lost."""
        request, new = await self.store.begin_request(self._lease, state.item_id, read_ms)
        if not request:
            return  # a view that may predate our last reset
        run_params, problem = None, ""
        given = definition.run_params not in (None, "", {})
        if isinstance(state, JobSpec) and given:
            where = f"RunParams ({self.codes.run_params})"
            try:
                run_params = parse_params(
                    definition.run_params, state.steps, self.registry, self.settings, where
                )
            except ParamsProblem as error:
                problem = str(error)
        plan = plan_request(state, version, request, run_params, problem, clear_run_params=given)
        created = False
        if plan.run is not None:
            created = (await asyncio.to_thread(self.runs.submit_many, [plan.run], self._lease))[0]
        if new or created:
            run_id = plan.run.run_id if plan.run is not None else None
            logger.info(
                "run requested", item_id=state.item_id, request=request, run_id=run_id, created=created
            )
        await self.store.add_request_reset(self._lease, state.item_id, request, plan.reset)

    async def _on_cancel_requested(self, state: JobState, read_ms: int) -> None:
        """Cancel the job's waiting, queued and running runs, then reset the flag (repeated while
        the request is in hand: cancelling twice finds nothing more to cancel)."""
        request, new = await self.store.begin_request(self._lease, state.item_id, read_ms, flag="cancel")
        if not request:
            return
        now = format_alloy_datetime(self.clock())
        cancelled, interrupting, score, admitted = await self.store.cancel_job(
            self._lease, state.item_id, now, CANCEL_REASON
        )
        if admitted:
            await asyncio.to_thread(self.runs.send_admitted, admitted, score)
        attributes: dict[str, object] = {"cancel_requested": False}
        if new:
            logger.info(
                "cancel requested", item_id=state.item_id, cancelled=cancelled, interrupting=interrupting
            )
        if not cancelled and not interrupting:
            attributes["message"] = "CancelRequested: no queued or running run to cancel"
        event = Event(state.item_id, "cancel_reset", attributes)
        await self.store.add_request_reset(self._lease, state.item_id, request, event, flag="cancel")

    async def _on_backfill(self, spec: JobSpec, version: int, read_ms: int) -> None:
        """Backfill is a request, like RunRequested: handled once per value set (the Redis-time
        bookkeeping of `begin_request` tells a new request from a view of one we already cleared)."""
        request, _new = await self.store.begin_request(self._lease, spec.item_id, read_ms, flag="backfill")
        if not request:
            return
        plan = plan_backfill(spec, version)
        if plan is not None:
            await self._backfill(plan)
            await self.store.add_request_reset(
                self._lease, spec.item_id, request, plan.clear, flag="backfill"
            )

    async def _backfill(self, plan: BackfillPlan) -> None:
        """Create the backfill's runs (oldest first; fires that ran already are not created again);
        the attribute is cleared after (`plan.clear`)."""
        created = await asyncio.to_thread(self.runs.submit_many, plan.runs, self._lease)
        await self.store.note_backfill(plan.clear.item_id, len(plan.runs), plan.span)
        logger.info("backfill created", runs=sum(created), of=len(plan.runs))


def _phase(state: JobState) -> JobPhase:
    if isinstance(state, JobSpec):
        return JobPhase.VALID
    return JobPhase.DISABLED if isinstance(state, DisabledJob) else JobPhase.INVALID


def decision_for(definition: JobDefinition, state: JobState, now_version: int | None = None) -> JobDecision:
    """What the jobs page and the worker's checks read about a job: its phase, summary and the
    validated optional attributes."""
    control = state.control if isinstance(state, JobSpec) else RunControl()
    phase = _phase(state)
    return JobDecision(
        title=definition.title,
        phase=phase,
        task=task_label(state.steps) if isinstance(state, JobSpec) else str(definition.task or ""),
        schedule=str(definition.schedule or ""),
        timezone=str(definition.timezone or "") or "UTC",
        invalid=state.message if isinstance(state, InvalidJob) else "",
        overlap=control.overlap,
        concurrency_key=control.concurrency_key,
        max_age=control.max_age,
        notify=",".join(control.notify),
        notify_on=control.notify_on,
        now_version=now_version or None,
    )

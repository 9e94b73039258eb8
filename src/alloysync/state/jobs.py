"""The job store (asyncio, as `serve` sees it): job records, their versions, RunRequested
bookkeeping, the cached item signature, and the view of the latest reported state.

Per job, `job:{item}` holds what the poller decided (fingerprint, version, phase, summary), the
request bookkeeping for RunRequested, the run count, and a *view* of the job's latest reported
state (status, message, run times) that the reporter keeps for the jobs page.

Writes that decide what runs are *fenced*: their script checks that the caller still holds the
poller lease, so a paused ex-leader that wakes up cannot overwrite the new leader's decisions
(run creation is fenced the same way, in `state/runs.py`).

A new definition is stored and acted upon in two steps — store the version, act on it (runs,
schedule, events), then record it as acted (`acted`, with the task registry's digest). The poller
does both a page of records at a time (`apply_definitions`, then `record_acted`, each one pipelined
round trip); a pass that dies in between, anywhere in the page, leaves `acted` behind `version` for
every record of the page not yet recorded, and the next sighting of the item acts again; every
action is idempotent (deterministic run ids, overwritten schedule entries, repeated events).
`record_acted` appends a record's events before its acted mark, in one pipeline that Redis runs in
order, so no record is marked acted without its events.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import redis.asyncio as aioredis

from alloysync.model.events import Event
from alloysync.model.json_text import compact_json
from alloysync.state import keys, scripts
from alloysync.state.lease import fenced, fenced_batch
from alloysync.state.records import RUN_TTL, JobDecision, JobRecord, RunRecord

# The run fields the jobs page's outcome strips need (see `JobStore.recent_outcomes`).
OUTCOME_FIELDS = ("state", "scheduled_at", "created", "started", "finished", "error")
OUTCOME_ERROR_CHARS = 200
OUTCOME_BATCH = 100  # jobs per script call: each call holds Redis for a few milliseconds at most
RECORDS_BATCH = 1000  # jobs per pipelined read of job records
PAGE_BATCH = 100  # records per call of the poller's page scripts (each holds Redis for about a ms)
# The job fields the status and per-job gauges read (`JobStore.sampled_jobs`): a sample of 100k
# jobs reads these with one HMGET each instead of every field and the two run-queue lengths.
SAMPLED_FIELDS = (
    "title", "state", "invalid", "view_status",
    "consecutive_failures", "last_succeeded", "max_age", "overdue",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """What the jobs page's strip shows of a run: the run record's `OUTCOME_FIELDS` as stored
    ('' where absent), the error cut to OUTCOME_ERROR_CHARS."""

    run_id: str
    state: str
    scheduled_at: str
    created: str
    started: str
    finished: str
    error: str


@dataclass(frozen=True)
class JobVersion:
    """Where a job's definition stands after applying what the poller just read."""

    version: int
    acted: int  # the version last acted upon
    acted_registry: str  # the task registry's digest when it was acted upon
    changed: str  # when this version was first seen (Alloy's DateTime text)
    now_version: int = 0  # the version whose once-now run was created
    phase: str = ""  # the phase last decided (before this sighting, unless the version is new)
    has_schedule: bool = False  # the job has a schedule entry (so removing it takes a write)

    @property
    def is_new(self) -> bool:
        """This version was never acted upon (as opposed to a change of the task registry)."""
        return self.acted < self.version

    def needs_action(self, registry_digest: str) -> bool:
        return self.is_new or self.acted_registry != registry_digest


@dataclass(frozen=True)
class Sighting:
    """One job record as the poller just read it (see `JobStore.apply_definitions`).

    `decision` and `changed` (when the version was first seen) are stored only with a new version;
    `run_count` seeds the job's run count from the record the first time it is seen; `signature`
    ('' when the view carried none) is cached unless a view requested after `read_ms` (Redis time)
    cached its own."""

    item_id: str
    fingerprint: str
    decision: JobDecision
    changed: str
    run_count: int | None
    read_ms: int
    signature: str = ""


@dataclass(frozen=True)
class Acted:
    """A version acted upon: its events go to the outbox, then the version is marked acted (with
    the task registry's digest and the optional attributes, `registry_digest`), storing `decision`."""

    item_id: str
    version: int
    registry_digest: str
    decision: JobDecision
    events: Sequence[Event] = ()


class JobStore:
    """Async access to the job records; `client` must decode responses."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client
        self._apply_definition = scripts.register(client, "apply_definition")
        self._mark_acted = scripts.register(client, "mark_acted")
        self._forget_job = scripts.register(client, "forget_job")
        self._begin_request = scripts.register(client, "begin_request")
        self._append_request_reset = scripts.register(client, "append_request_reset")
        self._finish_request = scripts.register(client, "finish_request")
        self._cancel_job = scripts.register(client, "cancel_job")
        self._recent_outcomes = scripts.register(client, "recent_outcomes")
        self._mark_overdue = scripts.register(client, "mark_overdue")

    # --- poller side (fenced) ----------------------------------------------------------------

    async def apply_definitions(self, lease: str, sightings: Sequence[Sighting]) -> list[JobVersion]:
        """Store each definition (a new version when its fingerprint is new), cache its signature,
        and say where each stands: one script call per PAGE_BATCH records (apply_definition.lua,
        which checks the lease once), all in one pipelined round trip."""
        calls: list[scripts.ScriptCall] = []
        for start in range(0, len(sightings), PAGE_BATCH):
            batch = sightings[start : start + PAGE_BATCH]
            args: list[str | int] = [lease]
            for seen in batch:
                decided = {**seen.decision.to_hash(), "changed": seen.changed}
                run_count = "" if seen.run_count is None else str(seen.run_count)
                args += [seen.item_id, seen.fingerprint, run_count, compact_json(decided), seen.signature,
                         seen.read_ms, seen.decision.title]  # fmt: skip
            job_keys = [keys.LEASE, keys.JOBS, keys.SCHEDULES, *(keys.job(seen.item_id) for seen in batch)]
            calls.append((job_keys, args))
        replies: list[Any] = await scripts.call_each_async(self._apply_definition, calls)
        return [
            JobVersion(int(r[0]), int(r[1]), str(r[2]), str(r[3]), int(r[4]), str(r[5]), bool(int(r[6])))
            for reply in replies
            for r in fenced_batch(reply)
        ]

    async def record_acted(self, lease: str, acted: Sequence[Acted]) -> None:
        """Append each version's events, then mark it acted (a version overtaken by a newer one
        meanwhile stays unmarked): one script call per PAGE_BATCH versions (mark_acted.lua, which
        checks the lease once and appends a record's events before its mark, atomically), all in
        one pipelined round trip. A connection lost half-way leaves whole batches unmarked, never a
        version marked without its events; the next sighting acts on them again."""
        if not acted:
            return
        calls: list[scripts.ScriptCall] = []
        for start in range(0, len(acted), PAGE_BATCH):
            batch = acted[start : start + PAGE_BATCH]
            args: list[str | int] = [lease]
            for done in batch:
                decision = compact_json(done.decision.to_hash())
                args += [done.item_id, done.version, done.registry_digest, decision,
                         len(done.events), *(event.wire() for event in done.events)]  # fmt: skip
            acted_keys = [
                keys.LEASE,
                keys.OUTBOX,
                keys.JOBS_WITH_MAX_AGE,
                *(keys.job(d.item_id) for d in batch),
            ]
            calls.append((acted_keys, args))
        replies = await scripts.call_each_async(self._mark_acted, calls)
        for reply in replies:
            fenced_batch(reply)

    async def forget_job(self, lease: str, item_id: str) -> None:
        """The record is gone from Alloy: drop it from the known jobs and the schedules."""
        forget_keys = [keys.LEASE, keys.job(item_id), keys.JOBS, keys.SCHEDULES, keys.SCHEDULES_CHANGED]
        fenced(await self._forget_job(keys=forget_keys, args=[lease, item_id]))
        await self.client.srem(keys.JOBS_WITH_MAX_AGE, item_id)

    async def begin_request(
        self, lease: str, item_id: str, read_ms: int, flag: str = "request"
    ) -> tuple[int, bool]:
        """A request flag (`request`: RunRequested, `cancel`: CancelRequested) seen set on a view of
        the item requested at `read_ms` (Redis time, see `now_ms`): (request number, whether new).

        A request already in hand (not reset yet) answers its own number again, so that a pass
        that died half-way finishes the job; a view requested before our last reset landed answers
        0 (it may be older than the reset: if the user set the flag again, the next pass sees it)."""
        result = await self._begin_request(keys=[keys.LEASE, keys.job(item_id)], args=[lease, read_ms, flag])
        return fenced(result[0]), bool(result[1])

    async def add_request_reset(
        self, lease: str, item_id: str, request: int, event: Event, flag: str = "request"
    ) -> None:
        """Append the reset of the flag for request number `request` (once per request)."""
        reset_keys = [keys.LEASE, keys.job(item_id), keys.OUTBOX]
        args: list[str | int] = [lease, request, event.wire(), flag]
        fenced(await self._append_request_reset(keys=reset_keys, args=args))

    async def cancel_job(
        self, lease: str, item_id: str, now: str, reason: str
    ) -> tuple[int, int, int, list[str]]:
        """Cancel the job's waiting, queued and running runs (CancelRequested): (cancelled at once,
        being interrupted by their worker, the Redis time, runs of other jobs admitted to the
        concurrency slots this freed — their first step is to be sent)."""
        reply = await self._cancel_job(
            keys=[keys.LEASE, keys.OUTBOX], args=[lease, item_id, now, reason, RUN_TTL]
        )
        fenced(reply[0])
        return int(reply[0]), int(reply[1]), int(reply[2]), [str(run_id) for run_id in reply[3:]]

    async def mark_overdue(self, lease: str, item_id: str, last_succeeded: str, event: Event) -> bool:
        """Mark the job overdue (serve's freshness check): `overdue` '1', the Overdue `event`, and a
        notification of kind `overdue` when the job's NotifyOn asks for one. Refused (False) when the
        job is overdue already, no longer valid or without a MaxAge, or its last success is no
        longer `last_succeeded` (it succeeded since it was read)."""
        message = str(event.attributes.get("message", ""))
        reply = await self._mark_overdue(
            keys=[keys.LEASE, keys.job(item_id), keys.OUTBOX, keys.NOTIFY],
            args=[lease, item_id, last_succeeded, event.wire(), message, event.at],
        )
        return fenced(reply) == 1

    # --- reporter side -------------------------------------------------------------------------

    async def finish_request(self, item_id: str, flag: str = "request") -> None:
        """Our reset of the flag landed on Alloy: views requested before now are stale."""
        await self._finish_request(keys=[keys.job(item_id)], args=[flag])

    async def now_ms(self) -> int:
        """Redis's clock in milliseconds: the one clock every serve replica shares."""
        seconds, microseconds = await self.client.time()
        return int(seconds) * 1000 + int(microseconds) // 1000

    # --- reads --------------------------------------------------------------------------------

    async def job(self, item_id: str) -> JobRecord | None:
        found = await self._records([item_id])
        return found[0] if found else None

    async def job_ids(self) -> set[str]:
        members = await self.client.smembers(keys.JOBS)
        return {str(member) for member in members}

    async def jobs(self) -> list[JobRecord]:
        return await self._records(sorted(await self.job_ids()))

    async def jobs_with_max_age(self) -> list[JobRecord]:
        """The records of the jobs whose last decision had a MaxAge (and perhaps a few that no
        longer have one: the caller checks). The index `jobs:max_age` is kept by `record_acted`
        (mark_acted.lua);
        a store that predates it (no `jobs:max_age:built` mark) has it built here once, from
        every job record."""
        if not await self.client.exists(keys.JOBS_WITH_MAX_AGE_BUILT):
            async for batch in self.jobs_in_batches():
                with_max_age = [job.item_id for job in batch if job.max_age_seconds is not None]
                if with_max_age:
                    await self.client.sadd(keys.JOBS_WITH_MAX_AGE, *with_max_age)
            await self.client.set(keys.JOBS_WITH_MAX_AGE_BUILT, "1")
        members = await self.client.smembers(keys.JOBS_WITH_MAX_AGE)
        return await self._records(sorted(str(member) for member in members))

    async def jobs_in_batches(self) -> AsyncIterator[list[JobRecord]]:
        """Every job record, RECORDS_BATCH at a time: for readers that need not hold them all."""
        ids = sorted(await self.job_ids())
        for start in range(0, len(ids), RECORDS_BATCH):
            yield await self._records(ids[start : start + RECORDS_BATCH])

    async def sampled_jobs(self) -> AsyncIterator[list[JobRecord]]:
        """Every job record, RECORDS_BATCH at a time, holding only SAMPLED_FIELDS (the rest at
        their defaults, `waiting_runs` 0): what the samplers need, at one HMGET per job."""
        ids = sorted(await self.job_ids())
        for start in range(0, len(ids), RECORDS_BATCH):
            batch = ids[start : start + RECORDS_BATCH]
            async with self.client.pipeline(transaction=False) as pipe:
                for item_id in batch:
                    pipe.hmget(keys.job(item_id), SAMPLED_FIELDS)
                replies: list[list[Any]] = await pipe.execute()
            yield [
                JobRecord.from_hash(item_id, _present(SAMPLED_FIELDS, values))
                for item_id, values in zip(batch, replies, strict=True)
                if any(value is not None for value in values)  # gone since the listing
            ]

    async def _records(self, ids: Sequence[str]) -> list[JobRecord]:
        """The job records of `ids` (those that exist), with how many runs wait their turn: one
        pipelined round trip per RECORDS_BATCH jobs, so that many jobs never buffer all their
        replies at once."""
        records = []
        for start in range(0, len(ids), RECORDS_BATCH):
            batch = ids[start : start + RECORDS_BATCH]
            async with self.client.pipeline(transaction=False) as pipe:
                for item_id in batch:
                    pipe.hgetall(keys.job(item_id))
                    pipe.llen(keys.job_waiting(item_id))
                    pipe.llen(keys.job_backfill(item_id))
                replies: list[Any] = await pipe.execute()
            for index, item_id in enumerate(batch):
                row, waiting, backfill = replies[3 * index : 3 * index + 3]
                if row:
                    record = JobRecord.from_hash(item_id, _text_hash(row))
                    waits = int(waiting) + int(backfill)
                    records.append(replace(record, waiting_runs=waits, backfill_waiting=int(backfill)))
        return records

    async def note_backfill(self, item_id: str, runs: int, span: str) -> None:
        """A backfill of `runs` runs over `span` was created (for the jobs page's progress)."""
        await self.client.hset(keys.job(item_id), mapping={"backfill_total": runs, "backfill_span": span})

    async def recent_runs(self, item_id: str) -> list[RunRecord]:
        """The job's recent runs, newest first (as many as ALLOYSYNC_RUN_HISTORY keeps)."""
        run_ids = [str(run_id) for run_id in await self.client.lrange(keys.job_runs(item_id), 0, -1)]
        async with self.client.pipeline(transaction=False) as pipe:
            for run_id in run_ids:
                pipe.hgetall(keys.run(run_id))
            rows: list[dict[str, str]] = await pipe.execute()
        return [RunRecord.from_hash(_text_hash(row)) for row in rows if row]

    async def recent_outcomes(self, item_ids: Sequence[str], limit: int) -> dict[str, list[RunOutcome]]:
        """The outcomes of each job's newest `limit` runs (newest first), for the jobs page; runs
        whose record expired are left out. One pipelined round trip of `recent_outcomes.lua` calls,
        each for a batch of jobs and answering one JSON text per job: a page of many jobs costs no
        command per run."""
        args: list[str | int] = [limit, keys.run(""), OUTCOME_ERROR_CHARS, *OUTCOME_FIELDS]
        calls: list[scripts.ScriptCall] = [
            ([keys.job_runs(item) for item in item_ids[start : start + OUTCOME_BATCH]], args)
            for start in range(0, len(item_ids), OUTCOME_BATCH)
        ]
        replies: list[list[str]] = await scripts.call_each_async(self._recent_outcomes, calls)
        texts = [text for reply in replies for text in reply]
        return {
            item_id: [RunOutcome(*row) for row in json.loads(text)]
            for item_id, text in zip(item_ids, texts, strict=True)
        }

    async def run(self, run_id: str) -> RunRecord | None:
        """One run record (None when unknown or expired)."""
        fields = await self.client.hgetall(keys.run(run_id))
        return RunRecord.from_hash({"run_id": run_id, **_text_hash(fields)}) if fields else None


def _present(names: Sequence[str], values: Sequence[Any]) -> dict[str, str]:
    """The fields of an HMGET reply that exist, as text."""
    return {name: str(value) for name, value in zip(names, values, strict=True) if value is not None}


def _text_hash(fields: Any) -> dict[str, str]:
    return {str(name): str(value) for name, value in fields.items()}

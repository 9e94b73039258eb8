"""The job store (asyncio, as `serve` sees it): job records, their versions, RunRequested
bookkeeping, the cached item signature, and the view of the latest reported state.

Per job, `job:{item}` holds what the poller decided (fingerprint, version, phase, summary), the
request bookkeeping for RunRequested, the run count, and a *view* of the job's latest reported
state (status, message, run times) that the reporter keeps for the jobs page.

Writes that decide what runs are *fenced*: their script checks that the caller still holds the
poller lease, so a paused ex-leader that wakes up cannot overwrite the new leader's decisions
(run creation is fenced the same way, in `state/runs.py`).

A new definition is stored and acted upon in two steps — store the version, act on it (runs,
schedule, events), then record it as acted (`acted`, with the task registry's digest). A pass that
dies in between leaves `acted` behind `version`, and the next sighting of the item acts again;
every action is idempotent (deterministic run ids, overwritten schedule entries, repeated events).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from alloysync.alloy.models import Item
from alloysync.model.events import Event
from alloysync.state import keys, scripts
from alloysync.state.lease import fenced
from alloysync.state.records import JobDecision, JobRecord, RunRecord, view_hash


@dataclass(frozen=True)
class JobVersion:
    """Where a job's definition stands after applying what the poller just read."""

    version: int
    acted: int  # the version last acted upon
    acted_registry: str  # the task registry's digest when it was acted upon
    changed: str  # when this version was first seen (Alloy's DateTime text)

    @property
    def is_new(self) -> bool:
        """This version was never acted upon (as opposed to a change of the task registry)."""
        return self.acted < self.version

    def needs_action(self, registry_digest: str) -> bool:
        return self.is_new or self.acted_registry != registry_digest


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
        self._remember_item = scripts.register(client, "remember_item")

    # --- poller side (fenced) ----------------------------------------------------------------

    async def apply_definition(
        self, lease: str, item_id: str, fingerprint: str, decision: JobDecision, changed: str,
        run_count: int | None,
    ) -> JobVersion:  # fmt: skip
        """Store a definition (a new version when its fingerprint is new) and say where it stands.

        `decision` and `changed` (when the version was first seen) are stored only with a new
        version; `run_count` seeds the job's run count from the record the first time it is seen."""
        decided = {**decision.to_hash(), "changed": changed}
        result = await self._apply_definition(
            keys=[keys.LEASE, keys.job(item_id), keys.JOBS],
            args=[lease, item_id, fingerprint, "" if run_count is None else str(run_count), _json(decided)],
        )
        fenced(result[0])
        return JobVersion(int(result[0]), int(result[1]), str(result[2]), str(result[3]))

    async def mark_acted(
        self, lease: str, item_id: str, version: int, registry_digest: str, decision: JobDecision
    ) -> None:
        """Record that `version` was acted upon (with this registry), storing the decision."""
        job_keys = [keys.LEASE, keys.job(item_id)]
        args: list[str | int] = [lease, version, registry_digest, _json(decision.to_hash())]
        fenced(await self._mark_acted(keys=job_keys, args=args))

    async def forget_job(self, lease: str, item_id: str) -> None:
        """The record is gone from Alloy: drop it from the known jobs and the schedules."""
        forget_keys = [keys.LEASE, keys.job(item_id), keys.JOBS, keys.SCHEDULES, keys.SCHEDULES_CHANGED]
        fenced(await self._forget_job(keys=forget_keys, args=[lease, item_id]))

    async def begin_request(self, lease: str, item_id: str, read_ms: int) -> tuple[int, bool]:
        """RunRequested seen on a view of the item requested at `read_ms` (Redis time, see `now_ms`):
        (request number, whether it is new).

        A request already in hand (not reset yet) answers its own number again, so that a pass
        that died half-way finishes the job; a view requested before our last reset landed answers
        0 (it may be older than the reset: if the user set the flag again, the next pass sees it)."""
        result = await self._begin_request(keys=[keys.LEASE, keys.job(item_id)], args=[lease, read_ms])
        return fenced(result[0]), bool(result[1])

    async def add_request_reset(self, lease: str, item_id: str, request: int, event: Event) -> None:
        """Append the reset of RunRequested for request number `request` (once per request)."""
        reset_keys = [keys.LEASE, keys.job(item_id), keys.OUTBOX]
        fenced(await self._append_request_reset(keys=reset_keys, args=[lease, request, event.wire()]))

    # --- reporter side -------------------------------------------------------------------------

    async def finish_request(self, item_id: str) -> None:
        """Our reset of RunRequested landed on Alloy: views requested before now are stale."""
        await self._finish_request(keys=[keys.job(item_id)])

    async def remember_item(self, item: Item, read_ms: int | None = None, title: str = "") -> None:
        """Cache the item's signature (for the reporter's next edit) unless a newer view's is cached.

        `read_ms` is the Redis time just before the view was requested; None for the item an edit
        of ours just returned (the newest there is). Query results may carry no signature."""
        if item.signature:
            await self._remember_item(
                keys=[keys.job(item.itemId)],
                args=[item.signature, "" if read_ms is None else read_ms, title],
            )

    async def known_signature(self, item_id: str) -> str | None:
        signature = await self.client.hget(keys.job(item_id), "signature")
        return str(signature) if signature else None

    async def update_view(self, item_id: str, view: dict[str, Any]) -> None:
        """Record the latest reported state of a known job for the jobs page."""
        if not view or not await self.client.sismember(keys.JOBS, item_id):
            return
        await self.client.hset(keys.job(item_id), mapping=view_hash(view))  # type: ignore[arg-type]

    async def now_ms(self) -> int:
        """Redis's clock in milliseconds: the one clock every serve replica shares."""
        seconds, microseconds = await self.client.time()
        return int(seconds) * 1000 + int(microseconds) // 1000

    # --- reads --------------------------------------------------------------------------------

    async def job(self, item_id: str) -> JobRecord | None:
        fields = await self.client.hgetall(keys.job(item_id))
        return JobRecord.from_hash(item_id, _text_hash(fields)) if fields else None

    async def job_ids(self) -> set[str]:
        members = await self.client.smembers(keys.JOBS)
        return {str(member) for member in members}

    async def jobs(self) -> list[JobRecord]:
        ids = sorted(await self.job_ids())
        async with self.client.pipeline(transaction=False) as pipe:
            for item_id in ids:
                pipe.hgetall(keys.job(item_id))
            rows: list[dict[str, str]] = await pipe.execute()
        return [
            JobRecord.from_hash(item_id, _text_hash(row))
            for item_id, row in zip(ids, rows, strict=True)
            if row
        ]

    async def recent_runs(self, item_id: str) -> list[RunRecord]:
        """The job's recent runs, newest first (as many as ALLOYSYNC_RUN_HISTORY keeps)."""
        run_ids = [str(run_id) for run_id in await self.client.lrange(keys.job_runs(item_id), 0, -1)]
        async with self.client.pipeline(transaction=False) as pipe:
            for run_id in run_ids:
                pipe.hgetall(keys.run(run_id))
            rows: list[dict[str, str]] = await pipe.execute()
        return [RunRecord.from_hash(_text_hash(row)) for row in rows if row]


def _json(fields: dict[str, str]) -> str:
    return json.dumps(fields, separators=(",", ":"))


def _text_hash(fields: Any) -> dict[str, str]:
    return {str(name): str(value) for name, value in fields.items()}

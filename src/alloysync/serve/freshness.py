"""The freshness check (in `serve`, leader only): jobs with a MaxAge that had no success for that long
become Overdue.

Every ALLOYSYNC_FRESHNESS_INTERVAL seconds (15) every valid job with a MaxAge that is not overdue
yet (read from the index of jobs with a MaxAge, `JobStore.jobs_with_max_age`) is measured on Redis's
clock (model/freshness.py); an overdue one is marked by one fenced script (`JobStore.mark_overdue`,
`mark_overdue.lua`): `overdue` '1' on the job (serve's sampler exports it as
`alloysync_jobs_overdue`), an event with Status `Overdue` and its Message for the record, and —
unless NotifyOn is never or there is no Notify target — a notification of kind `overdue`. It is
marked once: the run scripts set `overdue` back to '0' at the next success, whose event's Status
replaces Overdue on the record. A success that lands between the check and the mark wins (the script
compares `last_succeeded`).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import redis.asyncio as aioredis

from alloysync.log import get_logger
from alloysync.model.events import Event, Status
from alloysync.model.freshness import overdue_verdict
from alloysync.model.times import format_alloy_datetime
from alloysync.settings import Settings
from alloysync.state.jobs import JobStore
from alloysync.state.lease import PollerLease
from alloysync.state.records import JobPhase, JobRecord

logger = get_logger(__name__)

EVENT_KIND = "overdue"


class FreshnessCheck:
    """Marks overdue jobs while this replica holds `lease` (Leadership runs it)."""

    def __init__(
        self, settings: Settings, client: aioredis.Redis, lease: PollerLease, interval: float | None = None
    ) -> None:
        self.store = JobStore(client)
        self.lease = lease
        self.interval = settings.freshness_interval if interval is None else interval

    async def run(self) -> None:
        """Check every `interval` seconds until cancelled (a lost lease ends it with LeaseLost)."""
        while True:
            await self.check_once()
            await asyncio.sleep(self.interval)

    async def check_once(self) -> list[str]:
        """Mark the jobs that are overdue now; returns their item ids."""
        lease = self.lease.value
        if lease is None:
            return []
        now = datetime.fromtimestamp(await self.store.now_ms() / 1000, UTC)
        marked = []
        for job in await self.store.jobs_with_max_age():
            if await self._check(lease, job, now):
                marked.append(job.item_id)
        return marked

    async def _check(self, lease: str, job: JobRecord, now: datetime) -> bool:
        if job.phase is not JobPhase.VALID or job.max_age_seconds is None or job.overdue:
            return False
        verdict = overdue_verdict(job.max_age_seconds, job.last_succeeded, job.first_seen, now)
        if verdict is None:
            return False
        event = Event(
            job.item_id,
            EVENT_KIND,
            {"status": Status.OVERDUE, "message": verdict.message},
            at=format_alloy_datetime(now),
            details={"outcome": "overdue", "age_seconds": round(verdict.age_seconds)},
        )
        marked = await self.store.mark_overdue(lease, job.item_id, job.last_succeeded, event)
        if marked:
            logger.info(
                "job overdue",
                item_id=job.item_id,
                title=job.title,
                age_seconds=round(verdict.age_seconds),
                max_age_seconds=job.max_age_seconds,
            )
        return marked

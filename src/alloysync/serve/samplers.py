"""The gauges that describe shared state, sampled by every `serve` replica: outbox, queues, live
workers, jobs by status, the per-job gauges (overdue, last success, MaxAge, failure streak), sync
lag, and serve's heartbeat.

The per-job gauges are rebuilt from the job store at every sample: a job that no longer qualifies
(deleted, its MaxAge removed, its failure streak back to 0 or paused, its title changed) loses
its series at the next sample instead of exporting its last value forever.

Reading every job record costs time in proportion to the number of jobs, on serve's event loop
(beside the poller and the reporter). So the job gauges are sampled at most every
SAMPLE_INTERVAL and never more than JOBS_SAMPLE_SHARE of the time: a sample of 100,000 jobs that
took 2 s is next taken 40 s later, while the cheap gauges (queues, outbox, workers, lag, heartbeat)
keep their 5 s."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

import redis.asyncio as aioredis
from prometheus_client import Gauge
from redis.exceptions import RedisError

from alloysync.log import get_logger
from alloysync.metrics import (
    JOB_CONSECUTIVE_FAILURES,
    JOB_LAST_SUCCESS,
    JOB_MAX_AGE,
    JOB_TITLE_LABEL_MAX,
    JOBS,
    JOBS_OVERDUE,
    QUEUE_MESSAGES,
    SYNC_LAG,
    WORKERS,
    beat,
)
from alloysync.model.events import Status
from alloysync.model.registry import TaskRegistry
from alloysync.model.times import parse_alloy_datetime
from alloysync.serve.reporter import sample_outbox
from alloysync.serve.summaries import job_summary
from alloysync.settings import Settings
from alloysync.state.jobs import JobStore
from alloysync.state.queue_stats import QueueStats
from alloysync.state.records import JobPhase, JobRecord
from alloysync.state.sync import SyncState

logger = get_logger(__name__)

SAMPLE_INTERVAL = 5.0
JOBS_SAMPLE_SHARE = 0.05  # the job gauges take at most this share of serve's time


async def sample_forever(settings: Settings, client: aioredis.Redis, registry: TaskRegistry) -> None:
    """Refresh the gauges that describe shared state (outbox, queues, workers, jobs) and the heartbeat."""
    queues = sorted(set(settings.worker_queues) | registry.queues())
    stats = QueueStats(client)
    sync = SyncState(client)
    store = JobStore(client)
    per_job = PerJobGauges()
    jobs_due = 0.0  # monotonic time of the next sample of the job gauges
    while True:
        try:
            beat("serve")
            await sample_outbox(client)
            for queue in queues:
                QUEUE_MESSAGES.labels(queue=queue).set(await stats.waiting_messages(queue))
            WORKERS.set(await stats.live_workers(time.time() - settings.worker_heartbeat_timeout))
            if time.monotonic() >= jobs_due:
                started = time.monotonic()
                await sample_jobs(store, per_job)
                took = time.monotonic() - started
                jobs_due = started + took / JOBS_SAMPLE_SHARE  # small: the next turn samples again
            synced_through = await sync.synced_through()
            if synced_through is not None:
                SYNC_LAG.set(max(0.0, time.time() - synced_through.timestamp()))
        except RedisError as error:
            logger.warning("cannot sample Redis for metrics", error=str(error))
        await asyncio.sleep(SAMPLE_INTERVAL)


async def sample_jobs(store: JobStore, per_job: PerJobGauges) -> None:
    """The jobs-by-status and per-job gauges, from the job records read a batch at a time (only
    the fields the gauges read): serve never holds every record at once, only those that a
    per-job gauge exports."""
    counts = dict.fromkeys(JOB_STATUSES, 0)
    gauged: list[JobRecord] = []
    async for batch in store.sampled_jobs():
        tally_statuses(batch, counts)
        gauged.extend(job for job in batch if has_per_job_gauge(job))
    set_job_counts(counts)
    per_job.update(gauged)


JOB_STATUSES = (*(status.value for status in Status), "Paused")


def count_jobs(jobs: Iterable[JobRecord]) -> None:
    """Set the jobs-by-status gauge from the job records (the view the jobs page shows)."""
    set_job_counts(tally_statuses(jobs, dict.fromkeys(JOB_STATUSES, 0)))


def tally_statuses(jobs: Iterable[JobRecord], counts: dict[str, int]) -> dict[str, int]:
    for job in jobs:
        status = job_summary(job)["status"]
        if status in counts:
            counts[status] += 1
    return counts


def set_job_counts(counts: dict[str, int]) -> None:
    for status, count in counts.items():
        JOBS.labels(status=status).set(count)


def has_per_job_gauge(job: JobRecord) -> bool:
    """Whether `per_job_values` exports anything for this job (a MaxAge, or a failure streak)."""
    return job.max_age_seconds is not None or job.consecutive_failures >= 1


JobLabels = tuple[str, str]  # (item_id, title)


def job_labels(job: JobRecord) -> JobLabels:
    return (job.item_id, job.title[:JOB_TITLE_LABEL_MAX])


def per_job_values(jobs: Iterable[JobRecord]) -> dict[Gauge, dict[JobLabels, float]]:
    """What each per-job gauge should export now: gauge → labels → value.

    Jobs with a MaxAge get `alloysync_jobs_overdue` (1 or 0) and `alloysync_job_max_age_seconds`,
    and `alloysync_job_last_success_timestamp_seconds` once they have succeeded; jobs failing right
    now get `alloysync_job_consecutive_failures`, unless they are paused (their owner stopped them;
    the streak stays on the record until the next success, but it no longer alarms anyone).
    """
    values: dict[Gauge, dict[JobLabels, float]] = {
        JOBS_OVERDUE: {},
        JOB_MAX_AGE: {},
        JOB_LAST_SUCCESS: {},
        JOB_CONSECUTIVE_FAILURES: {},
    }
    for job in jobs:
        labels = job_labels(job)
        if job.max_age_seconds is not None:
            values[JOBS_OVERDUE][labels] = 1.0 if job.overdue else 0.0
            values[JOB_MAX_AGE][labels] = job.max_age_seconds
            last_success = _timestamp(job.last_succeeded)
            if last_success is not None:
                values[JOB_LAST_SUCCESS][labels] = last_success
        if job.consecutive_failures >= 1 and job.phase is not JobPhase.DISABLED:
            values[JOB_CONSECUTIVE_FAILURES][labels] = float(job.consecutive_failures)
    return values


def _timestamp(alloy_datetime: str) -> float | None:
    """Unix time of an Alloy DateTime text; None when there is none (or it cannot be read)."""
    if not alloy_datetime:
        return None
    try:
        return parse_alloy_datetime(alloy_datetime).timestamp()
    except ValueError:
        return None


class PerJobGauges:
    """The per-job gauges of this process, replaced as a whole at each `update`: the series set
    last time and not wanted now are removed."""

    def __init__(self) -> None:
        self._exported: dict[Gauge, set[JobLabels]] = {}

    def update(self, jobs: Iterable[JobRecord]) -> None:
        for gauge, wanted in per_job_values(jobs).items():
            for labels, value in wanted.items():
                gauge.labels(*labels).set(value)
            for stale in self._exported.get(gauge, set()) - wanted.keys():
                gauge.remove(*stale)
            self._exported[gauge] = set(wanted)

"""The gauges that describe shared state, sampled by every `serve` replica: outbox, queues, live
workers, jobs by status, sync lag, and serve's heartbeat."""

from __future__ import annotations

import asyncio
import time

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from alloysync.log import get_logger
from alloysync.metrics import JOBS, QUEUE_MESSAGES, SYNC_LAG, WORKERS, beat
from alloysync.model.events import Status
from alloysync.model.registry import TaskRegistry
from alloysync.serve.reporter import sample_outbox
from alloysync.serve.web import job_summary
from alloysync.settings import Settings
from alloysync.state.jobs import JobStore
from alloysync.state.queue_stats import QueueStats
from alloysync.state.sync import SyncState

logger = get_logger(__name__)

SAMPLE_INTERVAL = 5.0


async def sample_forever(settings: Settings, client: aioredis.Redis, registry: TaskRegistry) -> None:
    """Refresh the gauges that describe shared state (outbox, queues, workers) and the heartbeat."""
    queues = sorted(set(settings.worker_queues) | registry.queues())
    stats = QueueStats(client)
    sync = SyncState(client)
    store = JobStore(client)
    while True:
        try:
            beat("serve")
            await sample_outbox(client)
            for queue in queues:
                QUEUE_MESSAGES.labels(queue=queue).set(await stats.waiting_messages(queue))
            WORKERS.set(await stats.live_workers(time.time() - settings.worker_heartbeat_timeout))
            await count_jobs(store)
            synced_through = await sync.synced_through()
            if synced_through is not None:
                SYNC_LAG.set(max(0.0, time.time() - synced_through.timestamp()))
        except RedisError as error:
            logger.warning("cannot sample Redis for metrics", error=str(error))
        await asyncio.sleep(SAMPLE_INTERVAL)


async def count_jobs(store: JobStore) -> None:
    """Set the jobs-by-status gauge from the job store (the view the jobs page shows)."""
    counts = dict.fromkeys([*(status.value for status in Status), "Paused"], 0)
    for job in await store.jobs():
        status = job_summary(job)["status"]
        if status in counts:
            counts[status] += 1
    for status, count in counts.items():
        JOBS.labels(status=status).set(count)

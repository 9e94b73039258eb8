"""`alloysync serve`: the web process — HTTP, the poller lease, and (while holding it) poller + reporter.

Every replica serves HTTP and samples metrics. The replica holding the poller lease also polls Alloy,
enqueues runs, re-sends runs left pending by a crash, and writes run events back to Alloy; the
others stand by and take over within 15 s of its death.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Awaitable, Callable
from datetime import datetime

import redis.asyncio as aioredis
from aiohttp import web
from redis.exceptions import RedisError

from alloysync import keys
from alloysync.alloy.client import AlloyClient
from alloysync.broker import build_broker
from alloysync.lease import LeaseLost, PollerLease
from alloysync.log import configure_logging, get_logger
from alloysync.metrics import JOBS, QUEUE_MESSAGES, SYNC_LAG, WORKERS, beat
from alloysync.outbox import Status
from alloysync.poller import Poller
from alloysync.redis_clients import connect, connect_async
from alloysync.reporter import Reporter, sample_outbox
from alloysync.runs import RunQueue
from alloysync.settings import Settings, redact_url
from alloysync.store import JobStore
from alloysync.tasks import TaskModuleError, TaskRegistry, load_task_modules
from alloysync.web import build_app, job_summary

logger = get_logger(__name__)

SAMPLE_INTERVAL = 5.0
STOP_TIMEOUT = 5.0  # seconds the poller and reporter get to finish after being cancelled


def run_serve(settings: Settings) -> int:
    configure_logging(settings.log_level, settings.log_format, process="serve")
    try:
        registry = load_task_modules(settings.task_modules)
    except TaskModuleError as error:
        logger.error(str(error))
        return 2
    try:
        asyncio.run(serve(settings, registry))
    except OSError as error:
        logger.error("cannot start serve", error=str(error))
        return 1
    return 0


async def serve(settings: Settings, registry: TaskRegistry, stop: asyncio.Event | None = None) -> None:
    stop = stop or _stop_on_signals()
    client = connect_async(settings.effective_redis_url)
    sync_client = connect(settings.effective_redis_url)
    broker = build_broker(settings)
    for queue in registry.queues():
        broker.declare_queue(queue)
    runs = RunQueue(sync_client, broker, registry, settings)
    lease = PollerLease(client, settings.lease_ttl)
    alloy = AlloyClient.from_settings(settings)
    runner = web.AppRunner(build_app(settings, client, lambda: lease.held), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.http_host, settings.http_port)
    await site.start()
    logger.info(
        "serve listening",
        url=f"http://{settings.http_host}:{settings.http_port}/",
        alloy=settings.alloy_url,
        redis=redact_url(settings.effective_redis_url),
    )
    leader = Leadership(settings, alloy, client, runs, registry, lease)
    background = [
        asyncio.create_task(leader.run(), name="leadership"),
        asyncio.create_task(sample_forever(settings, client, registry), name="sampler"),
    ]
    try:
        await stop.wait()
        logger.info("serve stopping")
    finally:
        # The poller and reporter stop first, while the lease is still being renewed, so their
        # last fenced writes are not refused; then the renewal stops and the lease is released
        # for a standby to take at once.
        await leader.shutdown()
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        with contextlib.suppress(RedisError):
            await lease.release()
        await runner.cleanup()
        await alloy.close()
        await client.aclose()
        sync_client.close()
        broker.close()


class Leadership:
    """Holds (or waits for) the poller lease and runs the poller and reporter while it is held."""

    def __init__(
        self,
        settings: Settings,
        alloy: AlloyClient,
        client: aioredis.Redis,
        runs: RunQueue,
        registry: TaskRegistry,
        lease: PollerLease,
    ) -> None:
        self.settings = settings
        self.lease = lease
        self.poller = Poller(settings, alloy, client, runs, registry, lease)
        self.reporter = Reporter(settings, alloy, client, consumer=lease.replica)
        self.tasks: list[asyncio.Task[None]] = []
        self.stopping = False

    async def run(self) -> None:
        interval = self.settings.lease_ttl / 3
        last_renewed = time.monotonic()
        while True:
            try:
                held = await self.lease.refresh()
                last_renewed = time.monotonic() if held else last_renewed
            except RedisError as error:
                logger.warning("cannot reach Redis to renew the poller lease", error=str(error))
                held = self.lease.held and time.monotonic() - last_renewed < self.settings.lease_ttl
                if not held:
                    self.lease.drop()
            if self.tasks and any(task.done() for task in self.tasks):
                # One of them ended (a fenced write was refused): stop the other too, and start both
                # again once the lease is ours.
                await self.stop()
            if held and not self.tasks and not self.stopping:
                self.tasks = [
                    asyncio.create_task(self._guard("poller", self.poller.run), name="poller"),
                    asyncio.create_task(self._guard("reporter", self.reporter.run), name="reporter"),
                ]
            elif not held and self.tasks:
                logger.info("no longer the active poller: stopping poller and reporter")
                await self.stop()
            await asyncio.sleep(interval)

    async def _guard(self, name: str, work: Callable[[], Awaitable[None]]) -> None:
        """Run a leader task; on an unexpected error log it, wait a little, and run it again."""
        while True:
            try:
                await work()
                return
            except asyncio.CancelledError:
                raise
            except LeaseLost:
                logger.warning("fenced write refused: another replica holds the poller lease", task=name)
                self.lease.drop()
                return
            except RedisError as error:
                logger.warning("Redis unavailable; retrying", task=name, error=str(error))
            except Exception:
                logger.exception("leader task crashed; restarting it", task=name)
            await asyncio.sleep(2.0)

    async def stop(self) -> None:
        """Cancel the poller and reporter and wait (bounded) for them to finish."""
        for task in self.tasks:
            task.cancel()
        _done, pending = (
            await asyncio.wait(self.tasks, timeout=STOP_TIMEOUT) if self.tasks else (set(), set())
        )
        for task in pending:
            logger.warning("task did not stop in time", task=task.get_name(), timeout=STOP_TIMEOUT)
        self.tasks = []

    async def shutdown(self) -> None:
        """Stop for good: no new poller or reporter is started after this."""
        self.stopping = True
        await self.stop()


async def sample_forever(settings: Settings, client: aioredis.Redis, registry: TaskRegistry) -> None:
    """Refresh the gauges that describe shared state (outbox, queues, workers) and the heartbeat."""
    queues = sorted(set(settings.worker_queues) | registry.queues())
    while True:
        try:
            beat("serve")
            await sample_outbox(client)
            for queue in queues:
                ready = await client.llen(f"dramatiq:{queue}")
                delayed = await client.llen(f"dramatiq:{queue}.DQ")
                QUEUE_MESSAGES.labels(queue=queue).set(ready + delayed)
            live_since = time.time() - settings.worker_heartbeat_timeout
            WORKERS.set(await client.zcount(keys.WORKERS, live_since, "+inf"))
            await count_jobs(JobStore(client))
            synced_through = await client.get(keys.SYNC_THROUGH)
            if synced_through:
                lag = time.time() - datetime.fromisoformat(str(synced_through)).timestamp()
                SYNC_LAG.set(max(0.0, lag))
        except RedisError as error:
            logger.warning("cannot sample Redis for metrics", error=str(error))
        await asyncio.sleep(SAMPLE_INTERVAL)


async def count_jobs(store: JobStore) -> None:
    """Set the jobs-by-status gauge from the job store (the view the jobs page shows)."""
    counts = dict.fromkeys([*(status.value for status in Status), "Paused"], 0)
    for row in await store.jobs():
        status = job_summary(row)["status"]
        if status in counts:
            counts[status] += 1
    for status, count in counts.items():
        JOBS.labels(status=status).set(count)


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, _log_task_stacks)
    return stop


def _log_task_stacks() -> None:
    """SIGUSR1: log where every asyncio task is waiting (for diagnosing a stuck serve)."""
    for task in asyncio.all_tasks():
        frames = task.get_stack(limit=12)
        where = [f"{frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name}" for frame in frames]
        logger.warning("task stack", task=task.get_name(), stack=where)

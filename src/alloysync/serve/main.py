"""`alloysync serve`: the web process — HTTP, the poller lease, and (while holding it) the poller,
reporter, notifier and freshness check.

Every replica serves HTTP (web.py) and samples metrics (samplers.py). The replica holding the
poller lease also polls Alloy, enqueues runs, re-sends runs left pending by a crash, writes run
events back to Alloy, sends notifications and marks overdue jobs (leadership.py); the others stand
by and take over within 15 s of its death.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal

from aiohttp import web
from redis.exceptions import RedisError

from alloysync.alloy.client import AlloyClient
from alloysync.alloy.ratelimit import RateLimits
from alloysync.broker import build_broker
from alloysync.enqueue import RunQueue
from alloysync.gc_tuning import tune_for_throughput
from alloysync.log import get_logger
from alloysync.model.registry import TaskRegistry
from alloysync.serve.features import DesignFeatures
from alloysync.serve.freshness import FreshnessCheck
from alloysync.serve.leadership import Leadership
from alloysync.serve.notifier import Notifier
from alloysync.serve.poller import Poller
from alloysync.serve.reporter import Reporter
from alloysync.serve.samplers import sample_forever
from alloysync.serve.web import build_app
from alloysync.settings import Settings, redact_url
from alloysync.state.budgets import SharedBudget
from alloysync.state.connections import connect, connect_async
from alloysync.state.lease import PollerLease

logger = get_logger(__name__)


def run_serve(settings: Settings, registry: TaskRegistry) -> int:
    tune_for_throughput()
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
    broker = build_broker(settings, queues=registry.queues())
    runs = RunQueue(sync_client, broker, registry, settings)
    lease = PollerLease(client, settings.lease_ttl)
    # Every Alloy call of serve also takes a slot of the budget shared with the workers' task code.
    shared = SharedBudget.from_settings(settings, client)
    alloy = AlloyClient.from_settings(settings, limits=RateLimits.from_settings(settings, shared=shared))
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
    features = DesignFeatures()
    poller = Poller(settings, alloy, client, runs, registry, lease, features=features)
    reporter = Reporter(
        settings, alloy, client, consumer=lease.replica, features=features, applied_views=poller.applied_views
    )
    notifier = Notifier(settings, client, consumer=lease.replica)
    leader = Leadership(poller, reporter, notifier, FreshnessCheck(settings, client, lease))
    background = [
        asyncio.create_task(features.watch(alloy, settings), name="design-features"),
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

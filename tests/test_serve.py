"""serve's leadership: the poller and reporter come back after a refused fenced write."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import redis
from pydantic import SecretStr

from alloysync.alloy.client import AlloyClient
from alloysync.broker import build_broker
from alloysync.enqueue import RunQueue
from alloysync.local.redis_server import RedisServer
from alloysync.model.registry import load_task_modules
from alloysync.serve.leadership import Leadership
from alloysync.serve.poller import Poller
from alloysync.serve.reporter import Reporter
from alloysync.settings import JobAttributeCodes, Settings
from alloysync.state import keys
from alloysync.state.connections import connect_async
from alloysync.state.lease import PollerLease
from tests.support.emulator import EmulatorProcess

CODES = JobAttributeCodes()


async def test_the_poller_comes_back_after_its_lease_was_lost_and_retaken(
    redis_server: RedisServer, emulator: EmulatorProcess
) -> None:
    settings = Settings(
        alloy_url=emulator.url,
        alloy_token=SecretStr(emulator.token),
        redis_url=redis_server.url,
        task_modules=["tests.support.tasks"],
        poll_interval=0.2,
        lease_ttl=3,
    )
    client = connect_async(redis_server.url)
    sync_client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    registry = load_task_modules(settings.task_modules)
    runs = RunQueue(sync_client, build_broker(settings), registry, settings)
    lease = PollerLease(client, settings.lease_ttl)
    async with AlloyClient.from_settings(settings) as alloy:
        poller = Poller(settings, alloy, client, runs, registry, lease)
        leadership = Leadership(poller, Reporter(settings, alloy, client, consumer=lease.replica))
        task = asyncio.create_task(leadership.run())
        try:
            await _until(lambda: bool(leadership.tasks), 5)
            # The lease expires under the poller (Redis away too long, a stalled event loop): its
            # next fenced write is refused and it stops; the loop takes the lease again.
            await client.delete(keys.LEASE)
            await _until(
                lambda: leadership.lease.value is not None and all(not t.done() for t in leadership.tasks), 10
            )
            attributes = {
                CODES.title: "after",
                CODES.enabled: True,
                CODES.task: "tests.record",
                CODES.params: {"label": "a"},
            }
            item = emulator.create_item("designs_alloysyncJobs", attributes)["itemId"]
            deadline = time.monotonic() + 10
            while not await client.exists(keys.run(f"now:{item}:v1")):
                assert time.monotonic() < deadline, "the poller did not come back"
                await asyncio.sleep(0.1)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await leadership.shutdown()
    await client.aclose()
    sync_client.close()


async def _until(check: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)

"""The poller against real Redis, a real emulator and a real broker: acting on definitions survives a
pass that dies half-way, RunRequested is neither lost nor doubled, registry changes re-validate,
and only a job missing from two full passes is forgotten."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis

from alloysync import keys
from alloysync.alloy.client import AlloyClient
from alloysync.broker import build_broker
from alloysync.lease import PollerLease
from alloysync.outbox import Event
from alloysync.poller import Poller
from alloysync.redis_server import RedisServer
from alloysync.runs import RunQueue, RunRequest
from alloysync.settings import JobAttributeCodes, Settings
from alloysync.tasks import TaskRegistry, load_task_modules
from tests.support.emulator import EmulatorProcess

CODES = JobAttributeCodes()
DESIGN = "designs_alloysyncJobs"


class RedisFailsOnce(RunQueue):
    """A RunQueue whose Redis goes away once, when it is asked to create runs with this prefix."""

    def __init__(self, *args: Any, fail_prefix: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fail_prefix = fail_prefix
        self.failed = False

    def submit_many(self, requests: Sequence[RunRequest], lease: str = "") -> list[bool]:
        if not self.failed and any(r.run_id.startswith(self.fail_prefix) for r in requests):
            self.failed = True
            raise redis.ConnectionError("injected: Redis went away")
        return super().submit_many(requests, lease)


@pytest.fixture
async def parts(
    redis_server: RedisServer, emulator: EmulatorProcess
) -> AsyncIterator[tuple[Settings, aioredis.Redis, redis.Redis, AlloyClient, PollerLease]]:
    settings = Settings(
        alloy_url=emulator.url, redis_url=redis_server.url, task_modules=["tests.support.tasks"]
    )
    client = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    sync_client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    lease = PollerLease(client, ttl=30)
    assert await lease.refresh()
    async with AlloyClient(emulator.url, emulator.token, backoff_base=0.05, max_retries=1) as alloy:
        yield settings, client, sync_client, alloy, lease
    await client.aclose()
    sync_client.close()


def poller(parts: Any, registry: TaskRegistry | None = None, fail_prefix: str = "-") -> Poller:
    settings, client, sync_client, alloy, lease = parts
    registry = registry or load_task_modules(settings.task_modules)
    runs = RedisFailsOnce(sync_client, build_broker(settings), registry, settings, fail_prefix=fail_prefix)
    return Poller(settings, alloy, client, runs, registry, lease)


def job(emulator: EmulatorProcess, task: str = "tests.record", **values: Any) -> str:
    attributes = {CODES.title: "t", CODES.enabled: True, CODES.task: task, CODES.params: {"label": "x"}}
    attributes |= {getattr(CODES, name): value for name, value in values.items()}
    created: str = emulator.create_item(DESIGN, attributes)["itemId"]
    return created


def outbox_kinds(client: redis.Redis) -> list[str]:
    entries: Any = client.xrange(keys.OUTBOX)
    return [Event.from_fields(fields).kind for _id, fields in entries]


async def test_a_definition_left_half_acted_on_is_finished_by_the_next_pass(
    parts: Any, emulator: EmulatorProcess
) -> None:
    sync_client: redis.Redis = parts[2]
    item = job(emulator)
    first = poller(parts, fail_prefix="now:")
    with pytest.raises(redis.ConnectionError):
        await first.sync_incremental()  # the version is stored, then Redis goes away
    assert sync_client.hget(keys.job(item), "version") == "1"
    assert not sync_client.exists(keys.run(f"now:{item}:v1"))
    await first.sync_incremental()  # the same item, read again: acted upon now
    assert sync_client.exists(keys.run(f"now:{item}:v1"))
    assert sync_client.hget(keys.job(item), "acted") == "1"
    await first.sync_incremental()
    assert sync_client.llen("dramatiq:default") == 1  # one run, never two


async def test_run_requested_survives_a_pass_that_dies_and_is_reset_once(
    parts: Any, emulator: EmulatorProcess
) -> None:
    sync_client: redis.Redis = parts[2]
    item = job(emulator, schedule="@yearly", run_requested=True)
    first = poller(parts, fail_prefix="req:")
    with pytest.raises(redis.ConnectionError):
        await first.sync_incremental()  # the request is taken, then Redis goes away before its run
    assert sync_client.hget(keys.job(item), "request_pending") == "1"
    assert "request_reset" not in outbox_kinds(sync_client)  # no reset before the run exists
    await first.sync_incremental()
    await first.sync_incremental()
    assert sync_client.exists(keys.run(f"req:{item}:1"))
    assert outbox_kinds(sync_client).count("request_reset") == 1
    assert sync_client.llen("dramatiq:default") == 1


async def test_a_deploy_that_registers_the_task_revalidates_the_job(
    parts: Any, emulator: EmulatorProcess
) -> None:
    sync_client: redis.Redis = parts[2]
    item = job(emulator, task="tests.later")
    await poller(parts).sync_incremental()
    assert sync_client.hget(keys.job(item), "state") == "invalid"

    registry = TaskRegistry()
    for registered in load_task_modules(["tests.support.tasks"]).all():
        registry.register(registered.function, registered.name)
    registry.register(lambda label: {"summary": label}, "tests.later")  # the deploy adds the task
    await poller(parts, registry).sync_incremental()
    assert sync_client.hget(keys.job(item), "state") == "valid"
    assert sync_client.exists(keys.run(f"now:{item}:v1"))  # the version never ran: now it does


async def test_a_job_is_forgotten_only_when_two_full_passes_miss_it(
    parts: Any, emulator: EmulatorProcess
) -> None:
    sync_client: redis.Redis = parts[2]
    item = job(emulator)
    watcher = poller(parts)
    await watcher.sync_full()
    emulator.request("DELETE", f"/api/item/{item}", {"signature": emulator.get_item(item)["signature"]})
    await watcher.sync_full()
    assert sync_client.sismember(keys.JOBS, item)  # one miss: maybe paging, keep it
    await watcher.sync_full()
    assert not sync_client.sismember(keys.JOBS, item)
    record = sync_client.hgetall(keys.job(item))
    assert record["state"] == "gone" and record["version"] == "1"  # counters kept: run ids stay unique

"""The poller against real Redis, a real emulator and a real broker: acting on definitions survives a
pass that dies half-way, RunRequested is neither lost nor doubled, registry changes re-validate,
and only a job missing from two full passes is forgotten."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis

from alloysync.alloy.client import AlloyClient
from alloysync.alloy.ratelimit import TokenBucket
from alloysync.broker import build_broker
from alloysync.enqueue import RunQueue, first_message_id
from alloysync.local.redis_server import RedisServer
from alloysync.metrics import FULL_SYNC_DURATION, FULL_SYNC_QUERIES
from alloysync.model.events import Event
from alloysync.model.registry import TaskRegistry, load_task_modules
from alloysync.model.runs import RunRequest
from alloysync.serve.poller import Poller
from alloysync.settings import JobAttributeCodes, Settings
from alloysync.state import keys
from alloysync.state.connections import connect_async
from alloysync.state.lease import PollerLease
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
    client = connect_async(redis_server.url)
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


def query_count(emulator: EmulatorProcess) -> int:
    return sum(emulator.stats().get("query", {}).values())


def bulk_jobs(emulator: EmulatorProcess, count: int) -> list[str]:
    drafts = [
        {
            "designCode": DESIGN,
            "attributes": [
                {"attributeCode": CODES.title, "value": f"paused {n}"},
                {"attributeCode": CODES.enabled, "value": False},
                {"attributeCode": CODES.task, "value": "tests.record"},
            ],
        }
        for n in range(count)
    ]
    return [item["itemId"] for item in emulator.bulk_create(drafts)]


async def test_items_carry_no_dates_and_an_idle_pass_costs_one_query(
    parts: Any, emulator: EmulatorProcess
) -> None:
    settings, client, sync_client, alloy, lease = parts
    settings = settings.model_copy(update={"sync_overlap": 0.0})
    ids = bulk_jobs(emulator, 250)
    assert "lastEditDate" not in emulator.get_item(ids[0])  # the real-Alloy default
    # Alloy's Date header has whole seconds, and the emulator's edit dates run up to N ms ahead
    # of its clock (strictly increasing, 1 ms apart): be older than the pass's second.
    await asyncio.sleep(1.6)
    registry = load_task_modules(settings.task_modules)
    watcher = Poller(settings, alloy, client, poller(parts).runs, registry, lease)
    before = query_count(emulator)
    assert await watcher.sync_incremental() is None  # no cursor yet: every record was read
    assert query_count(emulator) - before == 3  # 100 + 100 + 50: a short page ends the pass
    assert sync_client.scard(keys.JOBS) == 250
    for _ in range(3):
        before = query_count(emulator)
        assert await watcher.sync_incremental() == 0
        assert query_count(emulator) - before == 1
    await asyncio.sleep(1.1)
    emulator.edit_item(ids[7], {CODES.title: "renamed"})
    before = query_count(emulator)
    assert await watcher.sync_incremental() == 1  # the edit is found by lastEditDate, without item dates
    assert query_count(emulator) - before == 1
    assert sync_client.hget(keys.job(ids[7]), "title") == "renamed"


async def test_the_signature_cache_is_filled_without_item_dates(
    parts: Any, emulator: EmulatorProcess
) -> None:
    sync_client: redis.Redis = parts[2]
    item = job(emulator, enabled=False)
    await poller(parts).sync_incremental()
    assert sync_client.hget(keys.job(item), "signature") == emulator.get_item(item)["signature"]


async def test_run_requested_without_item_dates_runs_once_per_request(
    parts: Any, emulator: EmulatorProcess
) -> None:
    _settings, _client, sync_client, alloy, _lease = parts
    item = job(emulator, schedule="@yearly", run_requested=True)
    watcher = poller(parts)
    await watcher.sync_incremental()
    assert sync_client.exists(keys.run(f"req:{item}:1"))
    stale_read = await watcher.store.now_ms()
    stale_view = await alloy.get_item(item)  # still shows RunRequested: read before the reset landed
    # The reporter's part: the reset is written to Alloy, then recorded.
    await alloy.update_owned(item, {CODES.run_requested: False})
    await watcher.store.finish_request(item)
    await watcher.apply(stale_view, stale_read)
    await watcher.sync_incremental()
    assert not sync_client.exists(keys.run(f"req:{item}:2"))  # neither the old view nor the reset
    emulator.edit_item(item, {CODES.run_requested: True})  # the user asks again
    await watcher.sync_incremental()
    assert sync_client.exists(keys.run(f"req:{item}:2"))
    assert not sync_client.exists(keys.run(f"req:{item}:3"))
    assert outbox_kinds(sync_client).count("request_reset") == 2


async def test_the_full_reconciliation_is_paced_and_does_not_hold_up_incremental_passes(
    parts: Any, emulator: EmulatorProcess
) -> None:
    bulk_jobs(emulator, 350)
    watcher = poller(parts)
    await watcher.sync_incremental()
    watcher.full_budget = TokenBucket(2, window=1.0, burst=1)  # one page a second (the test's pace)
    started = time.monotonic()
    full = asyncio.create_task(watcher.sync_full())
    await asyncio.sleep(0.3)
    await watcher.sync_incremental()  # runs while the full pass waits for its budget
    incremental_done = time.monotonic() - started
    assert await full == 350
    full_done = time.monotonic() - started
    assert full_done >= 2.5  # 4 pages: one at once, then one a second
    assert incremental_done < full_done - 1
    assert FULL_SYNC_QUERIES.value() == 4
    assert (FULL_SYNC_DURATION.value() or 0) >= 2.5


async def test_a_page_costs_few_redis_calls_and_sends_each_run_once(
    parts: Any, emulator: EmulatorProcess
) -> None:
    sync_client: redis.Redis = parts[2]
    drafts = [
        {
            "designCode": DESIGN,
            "attributes": [
                {"attributeCode": CODES.title, "value": f"once {n}"},
                {"attributeCode": CODES.enabled, "value": True},
                {"attributeCode": CODES.task, "value": "tests.record"},
                {"attributeCode": CODES.params, "value": {"label": "x"}},
            ],
        }
        for n in range(150)
    ]
    ids = [item["itemId"] for item in emulator.bulk_create(drafts)]
    watcher = poller(parts)
    sync_client.config_resetstat()
    await watcher.sync_incremental()
    stats: Any = sync_client.info("commandstats")
    # Per record: apply_definition, create_run, Dramatiq's enqueue, forget_pending, mark_acted; no
    # schedule removal for jobs that never had one, no separate signature write.
    assert stats["cmdstat_evalsha"]["calls"] <= 5 * 150 + 5
    messages: Any = sync_client.hgetall("dramatiq:default.msgs")
    assert sync_client.llen("dramatiq:default") == 150
    assert sorted(messages) == sorted(first_message_id(f"now:{item}:v1", 0) for item in ids)
    assert all(sync_client.hget(keys.job(item), "acted") == "1" for item in ids)


async def test_an_incremental_pass_skips_a_view_it_applied_but_not_an_edit_or_a_full_pass(
    parts: Any, emulator: EmulatorProcess
) -> None:
    """Every incremental pass reads the overlap again; a view (signature) applied already is
    skipped. Applying a view writes the record's title back, so a title removed by hand shows
    whether a pass applied the view."""
    sync_client: redis.Redis = parts[2]
    item = job(emulator, schedule="@yearly")
    polling = poller(parts)
    await polling.sync_incremental()  # no cursor yet: reads every record, remembers none
    await polling.sync_incremental()  # within the overlap: applied again, and remembered
    sync_client.hdel(keys.job(item), "title")
    await polling.sync_incremental()
    assert sync_client.hget(keys.job(item), "title") is None  # the same view: skipped

    await polling.sync_full()  # the full reconciliation applies every record it reads
    assert sync_client.hget(keys.job(item), "title") == "t"

    sync_client.hdel(keys.job(item), "title")
    emulator.edit_item(item, {CODES.title: "renamed"})
    await polling.sync_incremental()  # a new view: applied
    assert sync_client.hget(keys.job(item), "title") == "renamed"

    # Our own status write on an applied view counts as applied (the reporter says which view
    # its edit was based on); an edit based on any other view does not.
    alloy: AlloyClient = parts[3]
    applied_signature = str(sync_client.hget(keys.job(item), "signature"))
    edit = await alloy.edit_owned(item, {CODES.status: "Queued"}, applied_signature)
    polling.applied_views.follow_own_edit(item, edit.based_on, edit.item.signature)
    sync_client.hdel(keys.job(item), "title")
    await polling.sync_incremental()
    assert sync_client.hget(keys.job(item), "title") is None

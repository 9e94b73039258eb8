"""serve's samplers against a real Redis: the per-job gauges (overdue, last success, MaxAge, failure
streak) follow the job records, lose the series of jobs that no longer qualify, and reach /metrics.

The job hashes are written directly, with the field names the run scripts and the poller use
(`max_age` in seconds, `overdue` '1', `last_succeeded` Alloy DateTime text, `consecutive_failures`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from alloysync.local.redis_server import RedisServer
from alloysync.metrics import JOB_CONSECUTIVE_FAILURES, JOB_LAST_SUCCESS, JOB_MAX_AGE, JOBS_OVERDUE
from alloysync.model.registry import TaskRegistry
from alloysync.serve.samplers import PerJobGauges, sample_forever
from alloysync.serve.web import build_app
from alloysync.settings import Settings
from alloysync.state import keys
from alloysync.state.connections import connect_async
from alloysync.state.jobs import JobStore

PER_JOB = (JOBS_OVERDUE, JOB_LAST_SUCCESS, JOB_MAX_AGE, JOB_CONSECUTIVE_FAILURES)
OVERDUE = "alloysync_jobs_overdue"
LAST_SUCCESS = "alloysync_job_last_success_timestamp_seconds"
MAX_AGE = "alloysync_job_max_age_seconds"
STREAK = "alloysync_job_consecutive_failures"
NAMES = (OVERDUE, LAST_SUCCESS, MAX_AGE, STREAK)
LAST_SUCCEEDED = "2026-03-01T06:30:00.000Z"
LAST_SUCCEEDED_UNIX = datetime(2026, 3, 1, 6, 30, tzinfo=UTC).timestamp()

Series = dict[str, dict[tuple[str, str], float]]  # metric → (item_id, title) → value


@pytest.fixture(autouse=True)
def empty_per_job_gauges() -> Iterator[None]:
    """The gauges are process-wide: each test starts and ends without per-job series."""
    for gauge in PER_JOB:
        gauge.clear()
    yield
    for gauge in PER_JOB:
        gauge.clear()


@pytest.fixture
async def client(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    connection = connect_async(redis_server.url)
    yield connection
    await connection.aclose()


async def put_job(client: aioredis.Redis, item_id: str, **fields: str) -> None:
    await client.sadd(keys.JOBS, item_id)
    for field, value in {"state": "valid", "task": "tests.record", **fields}.items():
        await client.hset(keys.job(item_id), field, value)


def parse(exposition: str) -> Series:
    found: Series = {name: {} for name in NAMES}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name in found:
                found[sample.name][(sample.labels["item_id"], sample.labels["title"])] = sample.value
    return found


def exported() -> Series:
    return parse(generate_latest(REGISTRY).decode())


async def sample(store: JobStore, gauges: PerJobGauges) -> Series:
    gauges.update(await store.jobs())
    return exported()


async def test_per_job_gauges_follow_the_job_records(client: aioredis.Redis) -> None:
    await put_job(client, "fresh", title="nightly export", max_age="93600", last_succeeded=LAST_SUCCEEDED)
    await put_job(client, "late", title="hourly prices", max_age="5400", overdue="1")
    await put_job(client, "failing", title="mail digest", consecutive_failures="3")
    await put_job(
        client, "late-and-failing", title="both", max_age="60", overdue="1", consecutive_failures="1"
    )
    await put_job(client, "plain", title="no deadline, no failures", consecutive_failures="0")
    await put_job(client, "paused", title="paused broken job", state="disabled", consecutive_failures="7")
    await put_job(client, "long", title="x" * 200, max_age="120")
    store = JobStore(client)

    series = await sample(store, PerJobGauges())

    assert series[OVERDUE] == {
        ("fresh", "nightly export"): 0.0,
        ("late", "hourly prices"): 1.0,
        ("late-and-failing", "both"): 1.0,
        ("long", "x" * 80): 0.0,
    }
    assert series[MAX_AGE] == {
        ("fresh", "nightly export"): 93600.0,
        ("late", "hourly prices"): 5400.0,
        ("late-and-failing", "both"): 60.0,
        ("long", "x" * 80): 120.0,
    }
    # Only jobs with a MaxAge that have succeeded have a last-success time.
    assert series[LAST_SUCCESS] == {("fresh", "nightly export"): LAST_SUCCEEDED_UNIX}
    # Only jobs whose streak is at least 1 and that are not paused; a MaxAge is not needed.
    assert series[STREAK] == {("failing", "mail digest"): 3.0, ("late-and-failing", "both"): 1.0}


async def test_series_of_jobs_that_no_longer_qualify_disappear_at_the_next_sample(
    client: aioredis.Redis,
) -> None:
    await put_job(client, "deleted", title="deleted job", max_age="600", consecutive_failures="2")
    await put_job(client, "recovered", title="recovered job", consecutive_failures="4")
    await put_job(client, "unmonitored", title="MaxAge removed", max_age="600", last_succeeded=LAST_SUCCEEDED)
    await put_job(client, "renamed", title="old title", max_age="600", consecutive_failures="1")
    await put_job(client, "stays", title="still late", max_age="600", overdue="1", consecutive_failures="5")
    await put_job(client, "paused", title="paused later", consecutive_failures="2")
    store = JobStore(client)
    gauges = PerJobGauges()
    before = await sample(store, gauges)
    assert set(before[OVERDUE]) == {
        ("deleted", "deleted job"),
        ("unmonitored", "MaxAge removed"),
        ("renamed", "old title"),
        ("stays", "still late"),
    }
    assert set(before[STREAK]) == {
        ("deleted", "deleted job"),
        ("recovered", "recovered job"),
        ("renamed", "old title"),
        ("stays", "still late"),
        ("paused", "paused later"),
    }

    # Deleted from Alloy (as forget_job.lua does it), a success, MaxAge removed, a new title, one
    # job late for one more failure, and one paused.
    await client.hset(keys.job("deleted"), "state", "gone")
    await client.srem(keys.JOBS, "deleted")
    await client.hset(
        keys.job("recovered"), mapping={"consecutive_failures": "0", "last_succeeded": LAST_SUCCEEDED}
    )
    await client.hdel(keys.job("unmonitored"), "max_age")
    await client.hset(keys.job("renamed"), "title", "new title")
    await client.hset(keys.job("stays"), "consecutive_failures", "6")
    await client.hset(keys.job("paused"), "state", "disabled")

    after = await sample(store, gauges)
    assert after[OVERDUE] == {("renamed", "new title"): 0.0, ("stays", "still late"): 1.0}
    assert after[MAX_AGE] == {("renamed", "new title"): 600.0, ("stays", "still late"): 600.0}
    assert after[LAST_SUCCESS] == {}
    assert after[STREAK] == {("renamed", "new title"): 1.0, ("stays", "still late"): 6.0}

    # Overdue clears on the next success: the series stays, at 0, with the success time.
    await client.hset(keys.job("stays"), mapping={"overdue": "0", "consecutive_failures": "0",
                                                   "last_succeeded": LAST_SUCCEEDED})  # fmt: skip
    cleared = await sample(store, gauges)
    assert cleared[OVERDUE][("stays", "still late")] == 0.0
    assert cleared[LAST_SUCCESS] == {("stays", "still late"): LAST_SUCCEEDED_UNIX}
    assert cleared[STREAK] == {("renamed", "new title"): 1.0}

    # No jobs left at all: no per-job series left either.
    await client.delete(keys.JOBS)
    assert await sample(store, gauges) == {name: {} for name in NAMES}


async def test_an_unreadable_last_success_time_exports_no_timestamp(client: aioredis.Redis) -> None:
    await put_job(client, "odd", title="odd", max_age="600", last_succeeded="yesterday")
    series = await sample(JobStore(client), PerJobGauges())
    assert series[OVERDUE] == {("odd", "odd"): 0.0}
    assert series[LAST_SUCCESS] == {}


async def test_serve_sampler_exports_them_on_metrics(client: aioredis.Redis, settings: Settings) -> None:
    """The real sampling loop, read through serve's /metrics over HTTP."""
    await put_job(
        client, "late", title="hourly prices", max_age="5400", overdue="1", consecutive_failures="2"
    )
    sampler = asyncio.create_task(sample_forever(settings, client, TaskRegistry()))
    http: TestClient[web.Request, web.Application] = TestClient(
        TestServer(build_app(settings, client, lambda: True), host="127.0.0.1")
    )
    await http.start_server()
    try:
        series: Series = {}
        for _ in range(50):
            series = parse(await (await http.get("/metrics")).text())
            if series[OVERDUE]:
                break
            await asyncio.sleep(0.1)
        assert series[OVERDUE] == {("late", "hourly prices"): 1.0}
        assert series[MAX_AGE] == {("late", "hourly prices"): 5400.0}
        assert series[STREAK] == {("late", "hourly prices"): 2.0}
        assert series[LAST_SUCCESS] == {}
    finally:
        sampler.cancel()
        await http.close()
        with pytest.raises(asyncio.CancelledError):
            await sampler

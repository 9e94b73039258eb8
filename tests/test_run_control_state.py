"""Run control in Redis (the Lua scripts, against a real redis-server and a real broker): Overlap at
creation, concurrency-key slots at the claim, the hand-over when a run ends, cancelling a job, and
recovery that does not duplicate a message Dramatiq still holds."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from alloysync.broker import AlloysyncBroker, build_broker
from alloysync.enqueue import RunQueue, first_message_id
from alloysync.model.events import Event, Status
from alloysync.model.registry import load_task_modules
from alloysync.model.runs import RunKind, RunRequest
from alloysync.settings import Settings
from alloysync.state import keys
from alloysync.state.claims import Claim, Claims
from alloysync.state.connections import connect_async
from alloysync.state.jobs import JobStore
from alloysync.state.lease import PollerLease
from alloysync.state.records import RunPhase
from tests.support.queues import queued_messages

LATER = 4_102_444_800_000
NOW = "2026-11-21T10:00:00.000Z"


@pytest.fixture
def broker(settings: Settings) -> Iterator[AlloysyncBroker]:
    broker = build_broker(settings)
    broker.declare_queue("default")
    yield broker
    broker.close()


@pytest.fixture
def runs(settings: Settings, redis_client: redis.Redis, broker: AlloysyncBroker) -> RunQueue:
    return RunQueue(redis_client, broker, load_task_modules(settings.task_modules), settings)


def fire(minute: int, item: str = "job1", **extra: Any) -> RunRequest:
    fields: dict[str, Any] = {
        "run_id": f"cron:{item}:2026-11-21T10:{minute:02d}:00.000Z",
        "item_id": item,
        "kind": RunKind.CRON,
        "steps": ("tests.record",),
        "params": {"label": item},
        "source": "scheduler",
        "reason": "Queued: test",
        "recurring": True,
    }
    return RunRequest(**{**fields, **extra})


def phase(runs: RunQueue, run_id: str) -> RunPhase | None:
    run = runs.store.load(run_id)
    return run.phase if run else None


def claim(claims: Claims, runs: RunQueue, run_id: str, message: str, limit: int = 1) -> Claim:
    run = runs.store.load(run_id)
    assert run is not None
    started = Event(run.item_id, "started", {"status": Status.RUNNING})
    return claims.claim(run, 0, message, NOW, "w", LATER, started, limit)


def finish(claims: Claims, runs: RunQueue, run_id: str, message: str) -> tuple[str, ...]:
    run = runs.store.load(run_id)
    assert run is not None
    done = Event(run.item_id, "succeeded", {"status": Status.SUCCEEDED})
    outcome = claims.finish_step_and_admit(run, 0, message, NOW, '"ok"', int(time.time() * 1000), done)
    assert int(outcome.code) >= 1
    return outcome.admitted


def test_overlap_skip_records_the_fire_as_skipped_while_the_previous_run_is_active(
    runs: RunQueue, redis_client: redis.Redis
) -> None:
    claims = Claims(redis_client)
    assert runs.submit(fire(0, overlap="skip"))
    assert claim(claims, runs, fire(0).run_id, "m0") is Claim.FIRST
    assert runs.submit(fire(1, overlap="skip"))  # created, but as skipped: the id stays used
    assert phase(runs, fire(1).run_id) is RunPhase.SKIPPED
    assert not runs.submit(fire(1, overlap="skip"))  # the same fire again: nothing
    finish(claims, runs, fire(0).run_id, "m0")
    assert runs.submit(fire(2, overlap="skip"))
    assert phase(runs, fire(2).run_id) is RunPhase.QUEUED
    assert [m.args[0] for m in queued_messages(redis_client)] == [fire(0).run_id, fire(2).run_id]


def test_queue_one_keeps_one_waiting_run_and_hands_the_job_to_it(
    runs: RunQueue, redis_client: redis.Redis
) -> None:
    claims = Claims(redis_client)
    runs.submit(fire(0, overlap="queue-one"))
    claim(claims, runs, fire(0).run_id, "m0")
    runs.submit(fire(1, overlap="queue-one"))
    runs.submit(fire(2, overlap="queue-one"))
    assert (phase(runs, fire(1).run_id), phase(runs, fire(2).run_id)) == (RunPhase.WAITING, RunPhase.SKIPPED)
    assert finish(claims, runs, fire(0).run_id, "m0") == (fire(1).run_id,)  # its turn, at once
    assert phase(runs, fire(1).run_id) is RunPhase.QUEUED
    runs.send_admitted([fire(1).run_id], 0)
    assert [m.args[0] for m in queued_messages(redis_client)] == [fire(0).run_id, fire(1).run_id]


def test_a_job_whose_end_found_nobody_waiting_still_hands_over_to_a_run_that_waits_later(
    runs: RunQueue, redis_client: redis.Redis
) -> None:
    claims = Claims(redis_client)
    runs.submit(fire(0, overlap="queue-one"))
    claim(claims, runs, fire(0).run_id, "m0")
    assert finish(claims, runs, fire(0).run_id, "m0") == ()
    assert redis_client.hget(keys.job("job1"), "waiters") == "0"  # its next ends skip the look
    runs.submit(fire(1, overlap="queue-one"))
    claim(claims, runs, fire(1).run_id, "m1")
    runs.submit(fire(2, overlap="queue-one"))  # waits for fire 1: the job's ends look again
    assert phase(runs, fire(2).run_id) is RunPhase.WAITING
    assert finish(claims, runs, fire(1).run_id, "m1") == (fire(2).run_id,)
    assert phase(runs, fire(2).run_id) is RunPhase.QUEUED


def test_replace_cancels_a_queued_run_at_once_and_marks_a_running_one(
    runs: RunQueue, redis_client: redis.Redis
) -> None:
    claims = Claims(redis_client)
    runs.submit(fire(0, overlap="replace"))
    runs.submit(fire(1, overlap="replace"))  # fire 0 never started: cancelled, fire 1 admitted
    assert phase(runs, fire(0).run_id) is RunPhase.CANCELLED
    assert phase(runs, fire(1).run_id) is RunPhase.QUEUED
    claim(claims, runs, fire(1).run_id, "m1")
    runs.submit(fire(2, overlap="replace"))  # fire 1 runs: it is marked, its worker interrupts it
    assert phase(runs, fire(2).run_id) is RunPhase.WAITING
    assert claims.cancelling([fire(1).run_id]) == {fire(1).run_id}
    run = runs.store.load(fire(1).run_id)
    assert run is not None and "replaced" in run.cancel_reason
    outcome = claims.cancel(run, "m1", NOW, run.cancel_reason)
    assert outcome.admitted == (fire(2).run_id,) and phase(runs, fire(1).run_id) is RunPhase.CANCELLED
    assert claims.cancelling([fire(1).run_id]) == set()


def test_a_concurrency_key_admits_runs_in_order_as_slots_free(
    runs: RunQueue, redis_client: redis.Redis
) -> None:
    claims = Claims(redis_client)
    ids = []
    for number in range(3):
        request = fire(number, item=f"job{number}", concurrency_key="api")
        runs.submit(request)
        ids.append(request.run_id)
    assert claim(claims, runs, ids[0], "a", limit=2) is Claim.FIRST
    assert claim(claims, runs, ids[1], "b", limit=2) is Claim.FIRST
    assert claim(claims, runs, ids[2], "c", limit=2) is Claim.WAITING  # no worker thread waits
    assert phase(runs, ids[2]) is RunPhase.WAITING
    assert finish(claims, runs, ids[0], "a") == (ids[2],)
    assert claim(claims, runs, ids[2], "c2", limit=2) is Claim.FIRST  # its slot was kept for it


def test_a_slot_held_by_a_run_that_vanished_is_freed(runs: RunQueue, redis_client: redis.Redis) -> None:
    claims = Claims(redis_client)
    first, second = fire(0, item="a", concurrency_key="k"), fire(1, item="b", concurrency_key="k")
    runs.submit(first)
    runs.submit(second)
    claim(claims, runs, first.run_id, "a")
    redis_client.delete(keys.run(first.run_id))  # expired or lost: it must not hold the key forever
    assert claim(claims, runs, second.run_id, "b") is Claim.FIRST


def test_cancelling_a_job_ends_its_waiting_and_queued_runs_and_marks_the_running_one(
    runs: RunQueue, redis_client: redis.Redis, settings: Settings
) -> None:
    claims = Claims(redis_client)
    runs.submit(fire(0, overlap="queue-one"))
    claim(claims, runs, fire(0).run_id, "m0")
    runs.submit(fire(1, overlap="queue-one"))

    async def cancel() -> tuple[int, int, int, list[str]]:
        client = connect_async(settings.effective_redis_url)
        lease = PollerLease(client, ttl=30)
        assert await lease.refresh()
        assert lease.value is not None
        try:
            return await JobStore(client).cancel_job(lease.value, "job1", NOW, "Cancelled by CancelRequested")
        finally:
            await client.aclose()

    cancelled, interrupting, _score, admitted = asyncio.run(cancel())
    assert (cancelled, interrupting, admitted) == (1, 1, [])
    assert phase(runs, fire(1).run_id) is RunPhase.CANCELLED
    assert phase(runs, fire(0).run_id) is RunPhase.RUNNING and claims.cancelling([fire(0).run_id])
    # A redelivery of the interrupted run's message (its worker died) cancels instead of running.
    run = runs.store.load(fire(0).run_id)
    assert run is not None
    redis_client.hset(keys.run(run.run_id), "owner", "")
    assert claim(claims, runs, run.run_id, "m0-again") is Claim.CALLED_OFF
    assert phase(runs, run.run_id) is RunPhase.CANCELLED


def test_recovery_does_not_duplicate_a_message_dramatiq_still_holds(
    runs: RunQueue, redis_client: redis.Redis
) -> None:
    runs.submit(fire(0))
    redis_client.zadd(keys.RUNS_PENDING, {fire(0).run_id: 1})  # as if killed before forgetting it
    assert runs.recover(older_than=0) == 0
    assert redis_client.hexists("dramatiq:default.msgs", first_message_id(fire(0).run_id, 0))
    assert len(queued_messages(redis_client)) == 1
    redis_client.delete("dramatiq:default", "dramatiq:default.msgs")  # the message was lost
    redis_client.zadd(keys.RUNS_PENDING, {fire(0).run_id: 1})
    assert runs.recover(older_than=0) == 1
    assert len(queued_messages(redis_client)) == 1

"""Run records, enqueueing and the worker-side claim, against real Redis and a real broker."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import dramatiq
import pytest
import redis
from dramatiq.middleware import SkipMessage

from alloysync.broker import AlloysyncBroker, build_broker
from alloysync.enqueue import ACTOR_NAME, RunQueue
from alloysync.model.events import Event, Status
from alloysync.model.registry import load_task_modules
from alloysync.model.runs import RunKind, RunRequest, run_id_for
from alloysync.serve.summaries import run_summary
from alloysync.settings import MissedRunPolicy, Settings
from alloysync.state import keys
from alloysync.state.claims import Claim
from alloysync.state.claims import Claims as RunState
from alloysync.worker.middleware import StaleFireSkipper
from tests.support.queues import queued_messages


@pytest.fixture
def broker(settings: Settings) -> Iterator[AlloysyncBroker]:
    broker = build_broker(settings)
    broker.declare_queue("default")
    yield broker
    broker.close()


@pytest.fixture
def runs(settings: Settings, redis_client: redis.Redis, broker: AlloysyncBroker) -> RunQueue:
    return RunQueue(redis_client, broker, load_task_modules(settings.task_modules), settings)


def request(run_id: str = "now:item1:v1", **extra: Any) -> RunRequest:
    fields: dict[str, Any] = {
        "run_id": run_id,
        "item_id": "item1",
        "kind": RunKind.NOW,
        "steps": ("tests.record", "tests.echo"),
        "params": {"label": "x"},
        "source": "poller",
        "reason": "Queued: test",
    }
    fields.update(extra)
    return RunRequest(**fields)


def outbox(client: redis.Redis) -> list[dict[str, str]]:
    """The outbox entries' fields, oldest first."""
    entries: Any = client.xrange(keys.OUTBOX)
    return [fields for _entry_id, fields in entries]


LATER = 4_102_444_800_000  # a step deadline far in the future (2100)


def started(item: str = "item1") -> Event:
    return Event(item, "started", {"status": Status.RUNNING})


def test_run_ids_are_deterministic() -> None:
    at = datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
    assert run_id_for(RunKind.NOW, "i", version=3) == "now:i:v3"
    assert run_id_for(RunKind.REQUEST, "i", request=2) == "req:i:2"
    assert run_id_for(RunKind.CRON, "i", scheduled_at=at) == "cron:i:2026-03-29T01:00:00.000Z"
    with pytest.raises(ValueError, match="scheduled time"):
        run_id_for(RunKind.AT, "i")


def test_submit_is_idempotent(runs: RunQueue, redis_client: redis.Redis) -> None:
    assert runs.submit(request()) is True
    assert runs.submit(request()) is False
    messages = queued_messages(redis_client)
    assert len(messages) == 1
    assert messages[0].actor_name == ACTOR_NAME and messages[0].args == ("now:item1:v1", 0)
    assert messages[0].options["max_retries"] == 0  # tests.record's own option
    assert redis_client.zcard(keys.RUNS_PENDING) == 0
    events = outbox(redis_client)
    assert len(events) == 1 and json.loads(events[0]["attrs"])["status"] == "Queued"
    assert redis_client.lrange(keys.job_runs("item1"), 0, -1) == ["now:item1:v1"]


def test_the_jobs_run_history_keeps_the_newest_runs_up_to_its_length(
    runs: RunQueue, redis_client: redis.Redis, settings: Settings
) -> None:
    history = settings.run_history
    ids = [f"now:item1:v{n}" for n in range(1, history + 4)]
    runs.submit_many([request(run_id) for run_id in ids[:2]])  # one batch: both in order
    for run_id in ids[2:]:
        runs.submit(request(run_id))
    assert redis_client.lrange(keys.job_runs("item1"), 0, -1) == list(reversed(ids))[:history]


def test_recover_resends_a_run_whose_enqueue_was_lost(runs: RunQueue, redis_client: redis.Redis) -> None:
    runs.submit(request())
    redis_client.delete("dramatiq:default", "dramatiq:default.msgs")  # the message never made it
    redis_client.zadd(keys.RUNS_PENDING, {"now:item1:v1": int((time.time() - 60) * 1000)})  # creator died
    assert runs.recover(older_than=30) == 1
    assert [m.args for m in queued_messages(redis_client)] == [("now:item1:v1", 0)]
    assert redis_client.zcard(keys.RUNS_PENDING) == 0
    assert runs.recover(older_than=30) == 0


def test_claim_drops_duplicates_and_lets_redeliveries_through(
    runs: RunQueue, redis_client: redis.Redis
) -> None:
    state = RunState(redis_client)
    runs.submit(request())
    now = "2026-11-21T10:00:00.000Z"
    loaded = state.load("now:item1:v1")
    assert loaded is not None
    record = loaded

    def claim(step: int, message: str) -> Claim:
        return state.claim(record, step, message, now, "w", LATER, started())

    assert claim(0, "message-a") is Claim.FIRST
    assert claim(0, "message-b") is Claim.DUPLICATE
    assert claim(0, "message-a") is Claim.REDELIVERED
    assert len(outbox(redis_client)) == 2  # Queued and one Running, not three
    assert redis_client.zscore(keys.RUNS_RUNNING, "now:item1:v1") == LATER
    assert state.finish_step(record, 0, "message-b", now, '"r"', 0, started()) == -1  # not the owner
    assert state.finish_step(record, 0, "message-a", now, '"r"', 0, started()) == 0  # next step pending
    assert redis_client.zscore(keys.RUNS_RUNNING, "now:item1:v1") is None
    assert claim(0, "message-a") is Claim.STALE
    assert claim(1, "message-c") is Claim.FIRST
    run = state.load("now:item1:v1")
    assert run is not None and run.step_results == {0: "r"}
    done = Event("item1", "succeeded", {"status": Status.SUCCEEDED})
    assert state.finish_step(run, 1, "message-c", now, '"r2"', 0, done) == 1  # the run count
    assert claim(1, "message-c") is Claim.DONE
    assert redis_client.hget(keys.job("item1"), "run_count") == "1"
    assert Event.from_fields(outbox(redis_client)[-1]).attributes == {
        "status": "Succeeded",
        "run_count": 1,
        "consecutive_failures": 0,  # the end of a run also carries the streak and the last success
        "last_succeeded": now,
    }
    other = state.load("now:item1:v1")
    assert other is not None
    redis_client.delete(keys.run("now:item1:v1"))
    assert state.claim(other, 0, "m", now, "w", LATER, started()) is Claim.MISSING


def job(client: redis.Redis, state: str, version: int) -> None:
    client.hset(keys.job("item1"), mapping={"state": state, "version": str(version)})


def test_a_paused_jobs_queued_run_is_cancelled_not_run(runs: RunQueue, redis_client: redis.Redis) -> None:
    state = RunState(redis_client)
    job(redis_client, "valid", 1)
    runs.submit(request(version=1))
    job(redis_client, "disabled", 2)  # the user paused the job while the run waited
    run = state.load("now:item1:v1")
    assert run is not None
    assert state.claim(run, 0, "m", "2026-11-21T10:00:00.000Z", "w", LATER, started()) is Claim.CANCELLED
    record = redis_client.hgetall(keys.run("now:item1:v1"))
    assert record["state"] == "skipped" and record["error"] == "the job was paused before the run started"
    assert [Event.from_fields(e).kind for e in outbox(redis_client)] == [
        "queued"
    ]  # no status written over "Paused"


def test_a_run_of_an_old_definition_never_overwrites_the_current_status(
    runs: RunQueue, redis_client: redis.Redis
) -> None:
    state = RunState(redis_client)
    job(redis_client, "valid", 1)
    runs.submit(request(version=1))
    run = state.load("now:item1:v1")
    assert run is not None
    now = "2026-11-21T10:00:00.000Z"
    assert state.claim(run, 0, "m", now, "w", LATER, started()) is Claim.FIRST
    job(redis_client, "invalid", 2)  # edited while the run ran
    state.finish_step(run, 0, "m", now, '"r"', 0, started())
    run = state.load("now:item1:v1")
    assert run is not None
    assert state.claim(run, 1, "m2", now, "w", LATER, started()) is Claim.FIRST  # a pipeline goes on
    done = Event(
        "item1",
        "succeeded",
        {"status": Status.SUCCEEDED, "message": "done", "result": {"n": 1}, "last_run_finished": now},
    )
    assert state.finish_step(run, 1, "m2", now, '"r2"', 0, done) == 1
    written = Event.from_fields(outbox(redis_client)[-1]).attributes
    assert written == {
        "result": {"n": 1},
        "last_run_finished": now,
        "run_count": 1,
        "consecutive_failures": 0,
        "last_succeeded": now,
    }


def test_recover_reaps_a_run_whose_worker_and_message_are_gone(
    runs: RunQueue, redis_client: redis.Redis
) -> None:
    state = RunState(redis_client)
    runs.submit(request())
    run = state.load("now:item1:v1")
    assert run is not None
    state.claim(
        run, 0, "lost-message", "2026-11-21T10:00:00.000Z", "w", int(time.time() * 1000) - 1, started()
    )
    redis_client.delete("dramatiq:default", "dramatiq:default.msgs")  # the message died with its worker
    assert runs.recover() == 1
    assert [m.args for m in queued_messages(redis_client)] == [("now:item1:v1", 0)]
    record = redis_client.hgetall(keys.run("now:item1:v1"))
    assert record["state"] == "queued" and record["owner"] == ""
    assert redis_client.zcard(keys.RUNS_RUNNING) == 0 and redis_client.zcard(keys.RUNS_PENDING) == 0
    assert runs.recover() == 0


def fire(
    runs: RunQueue, minutes_late: float, policy: MissedRunPolicy, recurring: bool = True
) -> dramatiq.Message[Any]:
    scheduled = datetime.now(UTC) - timedelta(minutes=minutes_late)
    kind = RunKind.CRON if recurring else RunKind.AT
    run_id = run_id_for(kind, "item1", scheduled_at=scheduled)
    runs.submit(request(run_id, kind=kind, scheduled_at=scheduled, recurring=recurring, missed_runs=policy))
    return queued_messages(runs.client)[-1]


@pytest.mark.parametrize(
    ("policy", "late", "newest", "skipped"),
    [
        (MissedRunPolicy.SKIP, 1, False, False),  # not stale yet (limit 300 s)
        (MissedRunPolicy.SKIP, 10, False, True),
        (MissedRunPolicy.ONCE, 10, False, True),
        (MissedRunPolicy.ONCE, 10, True, False),  # the newest fire is the one catch-up
        (MissedRunPolicy.ALL, 10, False, False),  # within the window
    ],
)
def test_stale_first_deliveries_follow_the_policy(
    runs: RunQueue,
    redis_client: redis.Redis,
    broker: AlloysyncBroker,
    policy: MissedRunPolicy,
    late: float,
    newest: bool,
    skipped: bool,
) -> None:
    skipper = StaleFireSkipper(redis_client, skip_delay=300)
    message = fire(runs, late, policy)
    if newest:
        redis_client.hset(keys.LAST_FIRE, "item1", message.options["scheduled_at"])
    if skipped:
        with pytest.raises(SkipMessage):
            skipper.before_process_message(broker, message)
        run = redis_client.hgetall(keys.run(message.args[0]))
        assert run["state"] == "skipped" and "missed-runs policy is" in run["error"]
        event = Event.from_fields(outbox(redis_client)[-1])
        assert event.kind == "skipped" and event.attributes["status"] == "Scheduled"
    else:
        skipper.before_process_message(broker, message)
        assert redis_client.hget(keys.run(message.args[0]), "state") == "queued"


def test_retries_and_run_at_fires_are_never_skipped(
    runs: RunQueue, redis_client: redis.Redis, broker: AlloysyncBroker
) -> None:
    skipper = StaleFireSkipper(redis_client, skip_delay=300)
    retry = fire(runs, 60, MissedRunPolicy.SKIP)
    retry.options["retries"] = 1
    skipper.before_process_message(broker, retry)
    run_at = fire(runs, 60, MissedRunPolicy.SKIP, recurring=False)
    skipper.before_process_message(broker, run_at)
    assert {redis_client.hget(keys.run(m.args[0]), "state") for m in (retry, run_at)} == {"queued"}


def test_once_lets_one_catch_up_through_a_backlog_that_never_clears(
    runs: RunQueue, redis_client: redis.Redis, broker: AlloysyncBroker
) -> None:
    skipper = StaleFireSkipper(redis_client, skip_delay=300)
    fires = [fire(runs, 20 - n, MissedRunPolicy.ONCE) for n in range(10)]  # every one stale on arrival
    ran = []
    for n, message in enumerate(fires):
        # the scheduler is always three fires ahead of the workers
        redis_client.hset(keys.LAST_FIRE, "item1", fires[min(n + 3, 9)].options["scheduled_at"])
        try:
            skipper.before_process_message(broker, message)
            ran.append(n)
        except SkipMessage:
            pass
    assert ran == [3, 7, 9]  # each skip deferred to the newest fire of its moment, which then ran


def test_a_pipeline_that_never_retried_shows_one_attempt(runs: RunQueue, redis_client: redis.Redis) -> None:
    state = RunState(redis_client)
    runs.submit(request())  # two steps: tests.record | tests.echo
    now = "2026-11-21T10:00:00.000Z"
    for step, message in enumerate(("message-a", "message-b")):
        run = state.load("now:item1:v1")
        assert run is not None
        assert state.claim(run, step, message, now, "w", LATER, started()) is Claim.FIRST
        state.finish_step(run, step, message, now, '"r"', 0, started())
    finished = state.load("now:item1:v1")
    assert finished is not None and run_summary(finished)["attempts"] == 1


def test_a_retried_step_counts_its_attempts(runs: RunQueue, redis_client: redis.Redis) -> None:
    state = RunState(redis_client)
    runs.submit(request())
    now = "2026-11-21T10:00:00.000Z"
    run = state.load("now:item1:v1")
    assert run is not None
    for _attempt in range(3):  # the first delivery and two retries of the same message
        state.claim(run, 0, "message-a", now, "w", LATER, started())
    state.finish_step(run, 0, "message-a", now, '"r"', 0, started())
    assert state.claim(run, 1, "message-b", now, "w", LATER, started()) is Claim.FIRST
    loaded = state.load("now:item1:v1")
    assert loaded is not None and run_summary(loaded)["attempts"] == 3


def test_a_finished_step_acknowledges_its_message_in_the_same_script(
    runs: RunQueue, redis_client: redis.Redis, broker: AlloysyncBroker
) -> None:
    state = RunState(redis_client)
    runs.submit(request())
    [body] = broker.do_fetch("default", 5)  # this worker now holds the message
    message = dramatiq.Message.decode(body)
    ack = broker.message_ack(message)
    assert ack is not None and redis_client.sismember(ack.acks_key, ack.storage_id)
    run = state.load("now:item1:v1")
    assert run is not None
    now = "2026-11-21T10:00:00.000Z"
    assert state.claim(run, 0, message.message_id, now, "w", LATER, started()) is Claim.FIRST
    done = Event("item1", "succeeded", {"status": Status.SUCCEEDED})
    lost = state.finish_step_and_admit(run, 0, "someone-else", now, '"r"', 0, done, ack=ack)
    assert int(lost.code) == -1 and redis_client.sismember(ack.acks_key, ack.storage_id)  # not ours: kept
    outcome = state.finish_step_and_admit(run, 0, message.message_id, now, '"r"', 0, done, ack=ack)
    assert int(outcome.code) >= 0  # the step is over (its run pending for the next, or ended)
    assert not redis_client.exists(ack.acks_key)
    assert not redis_client.hexists(ack.messages_key, ack.storage_id)
    broker.acked_by_script.add(ack.storage_id)  # as the actor does
    calls = redis_client.info("commandstats")["cmdstat_evalsha"]["calls"]
    broker.do_ack("default", ack.storage_id)  # the consumer's ack: nothing left to do
    assert redis_client.info("commandstats")["cmdstat_evalsha"]["calls"] == calls
    assert ack.storage_id not in broker.acked_by_script

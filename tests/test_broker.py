"""The broker's heartbeat and maintenance against real Redis and Dramatiq's own Lua: a dead worker's
messages come back; a Redis outage does not make live workers look dead."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis
import structlog
from dramatiq.common import current_millis

from alloysync.broker import AlloysyncBroker, build_broker
from alloysync.local.redis_server import RedisServer
from alloysync.settings import Settings
from alloysync.worker.middleware import WorkerHeartbeat

TIMEOUT = 1.0  # heartbeat timeout of this test's broker, seconds


@pytest.fixture
def broker(settings: Settings) -> Iterator[AlloysyncBroker]:
    broker = build_broker(settings.model_copy(update={"worker_heartbeat_timeout": TIMEOUT}))
    broker.declare_queue("default")
    yield broker
    broker.close()


def other_worker_holding(client: redis.Redis, message_id: str, heartbeat_age_ms: int) -> None:
    """Another worker, its last heartbeat `heartbeat_age_ms` ago, holding a fetched message."""
    client.zadd("dramatiq:__heartbeats__", {"other": current_millis() - heartbeat_age_ms})
    client.sadd("dramatiq:__acks__.other.default", message_id)
    client.hset("dramatiq:default.msgs", message_id, b"payload")


def test_a_silent_workers_messages_are_requeued(broker: AlloysyncBroker) -> None:
    other_worker_holding(broker.client, "m1", heartbeat_age_ms=int(TIMEOUT * 1000) + 500)
    WorkerHeartbeat(interval=0.1, heartbeat_timeout=TIMEOUT).pass_once(broker)
    assert broker.client.lrange("dramatiq:default", 0, -1) == [b"m1"]


def test_after_a_redis_outage_live_workers_get_time_to_heartbeat(
    broker: AlloysyncBroker, redis_server: RedisServer
) -> None:
    heartbeat = WorkerHeartbeat(interval=0.1, heartbeat_timeout=TIMEOUT)
    other_worker_holding(broker.client, "m1", heartbeat_age_ms=0)
    redis_server.stop()
    heartbeat.pass_once(broker)  # fails: Redis is away
    time.sleep(TIMEOUT + 0.5)  # meanwhile nobody's heartbeat lands
    redis_server.start()
    heartbeat.pass_once(broker)  # back: heartbeats only, although "other" looks silent
    heartbeat.pass_once(broker)
    assert broker.client.llen("dramatiq:default") == 0
    time.sleep(TIMEOUT + 0.2)  # "other" had its chance to heartbeat and did not: it is dead
    heartbeat.pass_once(broker)
    assert broker.client.lrange("dramatiq:default", 0, -1) == [b"m1"]


def test_a_worker_stopping_while_redis_is_away_logs_one_warning(
    broker: AlloysyncBroker, redis_server: RedisServer
) -> None:
    heartbeat = WorkerHeartbeat(interval=0.1, heartbeat_timeout=TIMEOUT)
    heartbeat.pass_once(broker)
    redis_server.stop()
    with structlog.testing.capture_logs() as logged:
        heartbeat.before_worker_shutdown(broker, worker=None)  # type: ignore[arg-type]
    assert [(line["log_level"], line["event"]) for line in logged] == [
        ("warning", "cannot reach Redis to unregister the stopping worker")
    ]
    assert "exc_info" not in logged[0]


def test_a_worker_beating_on_its_own_fetches_and_acks_without_heartbeats_and_its_messages_come_back(
    broker: AlloysyncBroker, settings: Settings
) -> None:
    client = broker.client
    for n in range(3):
        client.hset("dramatiq:default.msgs", f"m{n}", f"body{n}".encode())
        client.rpush("dramatiq:default", f"m{n}")
    assert not broker.beats_on_its_own
    WorkerHeartbeat(interval=0.1, heartbeat_timeout=TIMEOUT).pass_once(broker)  # the thread's first beat
    assert broker.beats_on_its_own
    beat = client.zscore("dramatiq:__heartbeats__", broker.broker_id)
    assert beat is not None
    time.sleep(0.05)
    assert broker.do_fetch("default", 2) == [b"body0", b"body1"]
    broker.do_ack("default", "m0")
    assert client.zscore("dramatiq:__heartbeats__", broker.broker_id) == beat  # none recorded
    acks = f"dramatiq:__acks__.{broker.broker_id}.default"
    assert client.smembers(acks) == {b"m1"} and client.hkeys("dramatiq:default.msgs") == [b"m1", b"m2"]
    assert broker.do_fetch("default", 5) == [b"body2"] and broker.do_fetch("default", 5) == []
    # The worker dies holding m1 and m2; once its heartbeat is old, another's maintenance puts
    # them back (Dramatiq's own dispatch.lua reads the same keys).
    other = build_broker(settings.model_copy(update={"worker_heartbeat_timeout": TIMEOUT}))
    other.declare_queue("default")
    time.sleep(TIMEOUT + 0.2)
    WorkerHeartbeat(interval=0.1, heartbeat_timeout=TIMEOUT).pass_once(other)
    assert sorted(client.lrange("dramatiq:default", 0, -1)) == [b"m1", b"m2"]
    other.close()


def test_a_nack_of_a_message_a_run_script_acknowledged_dead_letters_nothing(broker: AlloysyncBroker) -> None:
    client = broker.client
    for n in range(2):
        client.hset("dramatiq:default.msgs", f"m{n}", f"body{n}".encode())
        client.rpush("dramatiq:default", f"m{n}")
    assert broker.do_fetch("default", 2) == [b"body0", b"body1"]
    acks = f"dramatiq:__acks__.{broker.broker_id}.default"
    # m0's run script acknowledged it as finish_step.lua does (from the acks set, its body deleted),
    # and told the broker so; then its consumer nacks it (the step raised after the script ran).
    client.srem(acks, "m0")
    client.hdel("dramatiq:default.msgs", "m0")
    broker.acked_by_script.add("m0")
    broker.do_nack("default", "m0")
    assert broker.acked_by_script == set()
    assert client.zrange("dramatiq:default.XQ", 0, -1) == []  # nothing dead-lettered
    # Another message is dead-lettered as Dramatiq's own nack does.
    broker.do_nack("default", "m1")
    assert client.zrange("dramatiq:default.XQ", 0, -1) == [b"m1"]
    assert client.hget("dramatiq:default.XQ.msgs", "m1") == b"body1"
    assert client.smembers(acks) == set() and client.hkeys("dramatiq:default.msgs") == []

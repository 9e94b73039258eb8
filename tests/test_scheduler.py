"""The scheduler against real Redis: DST days, two schedulers, kill and restart, restart in the same
minute. Time is simulated (SchedulerCore.tick(now), or tests/support/sim_scheduler.py processes)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis

from alloysync.broker import build_broker
from alloysync.enqueue import RunQueue
from alloysync.local.redis_server import RedisServer
from alloysync.model.fires import ScheduleEntry
from alloysync.model.jobs import ScheduleKind
from alloysync.model.registry import load_task_modules
from alloysync.scheduler import SchedulerCore
from alloysync.settings import MissedRunPolicy, Settings
from alloysync.state import keys
from tests.support.queues import queued_messages

REPO = Path(__file__).resolve().parents[1]
MINUTE = timedelta(minutes=1)


@pytest.fixture
def core(settings: Settings, redis_client: redis.Redis) -> Iterator[SchedulerCore]:
    registry = load_task_modules(settings.task_modules)
    broker = build_broker(settings)
    yield SchedulerCore(settings, redis_client, RunQueue(redis_client, broker, registry, settings))
    broker.close()


def add_schedule(
    client: redis.Redis, item_id: str, cron: str, timezone: str = "UTC", **extra: object
) -> None:
    entry = ScheduleEntry(
        item_id=item_id,
        kind=ScheduleKind.CRON,
        steps=("tests.record",),
        params={"label": item_id},
        timezone=timezone,
        since=datetime(2026, 1, 1, tzinfo=UTC),
        version=1,
        cron=cron,
        **extra,  # type: ignore[arg-type]
    )
    client.hset(keys.SCHEDULES, item_id, entry.to_json())


def fire_times(client: redis.Redis, item_id: str) -> list[datetime]:
    prefix = f"alloysync:run:cron:{item_id}:"
    stamps = [str(key)[len(prefix) :] for key in client.keys(prefix + "*")]
    return sorted(datetime.fromisoformat(stamp.replace("Z", "+00:00")) for stamp in stamps)


def queued_run_ids(client: redis.Redis) -> list[str]:
    """The run id of every message waiting on Dramatiq's default queue (one entry per message)."""
    return [str(message.args[0]) for message in queued_messages(client)]


def tick_every_minute(core: SchedulerCore, start: datetime, end: datetime) -> None:
    now = start
    while now <= end:
        core.tick(now + timedelta(milliseconds=300))
        now += MINUTE


@pytest.mark.parametrize(
    ("cron", "zone", "day", "expected"),
    [
        # spring forward: 01:30 does not exist in London, it runs once at 02:00 BST (01:00 UTC)
        ("30 1 * * *", "Europe/London", "2026-03-29", ["2026-03-29T01:00:00+00:00"]),
        # fall back: 01:30 happens twice in London, it runs once, the first time (00:30 UTC)
        ("30 1 * * *", "Europe/London", "2026-10-25", ["2026-10-25T00:30:00+00:00"]),
        # New York: 02:30 does not exist on 8 March, 01:30 repeats on 1 November
        ("30 2 * * *", "America/New_York", "2026-03-08", ["2026-03-08T07:00:00+00:00"]),
        ("30 1 * * *", "America/New_York", "2026-11-01", ["2026-11-01T05:30:00+00:00"]),
        # a normal local time keeps its local time across the change
        ("0 9 * * *", "Europe/London", "2026-03-29", ["2026-03-29T08:00:00+00:00"]),
        ("0 9 * * *", "Europe/London", "2026-10-25", ["2026-10-25T09:00:00+00:00"]),
        # @weekly fires on Sunday (2026-11-22 is a Sunday) at midnight, Sunday written as 0 or 7 or sun
        ("@weekly", "UTC", "2026-11-22", ["2026-11-22T00:00:00+00:00"]),
        ("0 0 * * 7", "UTC", "2026-11-22", ["2026-11-22T00:00:00+00:00"]),
        ("0 0 * * sun", "UTC", "2026-11-22", ["2026-11-22T00:00:00+00:00"]),
    ],
)
def test_scheduler_fires_once_on_dst_days(
    core: SchedulerCore, redis_client: redis.Redis, cron: str, zone: str, day: str, expected: list[str]
) -> None:
    add_schedule(redis_client, "job", cron, zone)
    start = datetime.fromisoformat(day).replace(tzinfo=UTC) - timedelta(hours=6)
    redis_client.hset(keys.LAST_FIRE, "job", start.strftime("%Y-%m-%dT%H:%M:%S.000Z"))  # up to date
    # A pass every simulated minute for 30 hours around the day.
    tick_every_minute(core, start, start + timedelta(hours=30))
    assert [moment.isoformat() for moment in fire_times(redis_client, "job")] == expected


def sim(
    name: str, redis_url: str, start: datetime, epoch: float | None, speed: float, end: datetime
) -> subprocess.Popen[bytes]:
    """A sim_scheduler process; with `epoch` None the processes start their clocks together (barrier of 2)."""
    env = {
        **os.environ,
        "ALLOYSYNC_REDIS_URL": redis_url,
        "ALLOYSYNC_TASK_MODULES": "tests.support.tasks",
        "ALLOYSYNC_LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(REPO),
    }
    command = [
        sys.executable, "-m", "tests.support.sim_scheduler", "--name", name, "--start", start.isoformat(),
        "--speed", str(speed), "--end", end.isoformat(),
    ]  # fmt: skip
    command += ["--epoch", str(epoch)] if epoch is not None else ["--barrier", "2"]
    return subprocess.Popen(command, env=env, cwd=REPO)


def test_two_schedulers_fire_each_of_1000_fires_once(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    for n in range(50):
        add_schedule(redis_client, f"job{n:02d}", "* * * * *")
    start = datetime(2026, 11, 21, 9, 59, 30, tzinfo=UTC)
    end = start + timedelta(minutes=20)  # 10:00 .. 10:19: 20 fires x 50 jobs
    redis_client.hset(keys.LAST_FIRE, mapping={f"job{n:02d}": "2026-11-21T09:59:00.000Z" for n in range(50)})
    processes = [sim(name, redis_server.url, start, None, 300.0, end) for name in ("a", "b")]
    for process in processes:
        assert process.wait(60) == 0
    runs = redis_client.keys("alloysync:run:cron:*")
    assert len(runs) == 1000
    assert redis_client.llen("dramatiq:default") == 1000  # one message per run, never two
    enqueued = [int(redis_client.get(f"test:sim:{name}:enqueued") or 0) for name in ("a", "b")]
    duplicates = [int(redis_client.get(f"test:sim:{name}:duplicates") or 0) for name in ("a", "b")]
    assert sum(enqueued) == 1000
    assert all(count > 0 for count in enqueued), enqueued  # both schedulers really fired
    print(f"enqueued by a/b: {enqueued}, refused as duplicates: {duplicates}")
    for n in range(50):
        assert len(fire_times(redis_client, f"job{n:02d}")) == 20


def test_killed_scheduler_restarts_without_duplicates_and_applies_missed_run_policies(
    redis_server: RedisServer, redis_client: redis.Redis, core: SchedulerCore
) -> None:
    add_schedule(redis_client, "skip", "* * * * *", missed_runs=MissedRunPolicy.SKIP)
    add_schedule(redis_client, "once", "* * * * *", missed_runs=MissedRunPolicy.ONCE)
    add_schedule(redis_client, "all", "* * * * *", missed_runs=MissedRunPolicy.ALL, missed_window=86_400.0)
    start = datetime(2026, 11, 21, 9, 59, 50, tzinfo=UTC)
    redis_client.hset(
        keys.LAST_FIRE, mapping=dict.fromkeys(("skip", "once", "all"), "2026-11-21T09:59:00.000Z")
    )
    speed = 60.0  # one simulated minute per real second
    epoch = time.time() + 2
    end = start + timedelta(minutes=30)
    first = sim("first", redis_server.url, start, epoch, speed, end)
    deadline = time.monotonic() + 30
    while len(fire_times(redis_client, "all")) < 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    first.kill()  # SIGKILL, possibly in the middle of a pass
    first.wait()
    killed_at = datetime.fromisoformat(str(redis_client.get("test:sim:first")))
    time.sleep(8)  # eight simulated minutes with no scheduler
    second = sim("second", redis_server.url, start, epoch, speed, killed_at + timedelta(minutes=14))
    assert second.wait(60) == 0
    restarted_at = datetime.fromisoformat(str(redis_client.get("test:sim:second")))

    all_fires = fire_times(redis_client, "all")
    # `all` ran every minute, before, during (as catch-up) and after the outage.
    expected_all = []
    moment = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
    while moment <= restarted_at:
        expected_all.append(moment)
        moment += MINUTE
    assert all_fires == expected_all
    skip_fires = fire_times(redis_client, "skip")
    once_fires = fire_times(redis_client, "once")
    missed = [t for t in expected_all if t not in skip_fires]
    assert len(missed) >= 5, (missed, killed_at)  # skip: the outage's fires never ran
    assert missed == expected_all[expected_all.index(missed[0]) : expected_all.index(missed[-1]) + 1]
    catch_up = [t for t in once_fires if t in missed]
    assert catch_up == [missed[-1]]  # once: a single catch-up, for the newest missed fire
    assert sorted(set(once_fires) | set(missed)) == expected_all
    # A run's first message is filed in the script that creates it, so a kill leaves no run without
    # its message (a run in runs:pending would be sent by serve's recovery, run here by hand).
    # Then: one Dramatiq message per run, none twice.
    run_ids = sorted(
        str(key).removeprefix("alloysync:run:") for key in redis_client.keys("alloysync:run:cron:*")
    )
    assert set(queued_run_ids(redis_client)) | set(redis_client.zrange(keys.RUNS_PENDING, 0, -1)) == set(
        run_ids
    )
    core.runs.recover(older_than=0)
    assert sorted(queued_run_ids(redis_client)) == run_ids


def test_restart_within_the_same_minute_fires_nothing_again(
    core: SchedulerCore, redis_client: redis.Redis
) -> None:
    add_schedule(redis_client, "job", "*/5 * * * *")
    redis_client.hset(keys.LAST_FIRE, "job", "2026-11-21T09:55:00.000Z")
    moment = datetime(2026, 11, 21, 10, 0, 0, 200_000, tzinfo=UTC)
    assert core.tick(moment).enqueued == 1
    restarted = SchedulerCore(core.settings, redis_client, core.runs)
    assert restarted.tick(moment + timedelta(seconds=40)).enqueued == 0
    redis_client.hset(
        keys.LAST_FIRE, "job", "2026-11-21T09:55:00.000Z"
    )  # as if the pass died before recording
    report = restarted.tick(moment + timedelta(seconds=45))
    assert (report.enqueued, report.duplicates) == (0, 1)
    assert redis_client.llen("dramatiq:default") == 1

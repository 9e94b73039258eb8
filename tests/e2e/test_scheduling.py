"""Cron and run-at jobs through the poller, the schedule store, the scheduler and the workers."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import redis

from alloysync.broker import build_broker
from alloysync.enqueue import RunQueue
from alloysync.model.cron import CronExpression
from alloysync.model.registry import load_task_modules
from alloysync.model.times import format_alloy_datetime as format_time
from alloysync.scheduler import SchedulerCore
from alloysync.settings import Settings
from alloysync.state import keys
from tests.support.system import System


def next_fire(cron: str, zone: str = "UTC") -> str:
    from alloysync.model.cron import parse_timezone

    return format_time(CronExpression.parse(cron).next_fire(datetime.now(UTC), parse_timezone(zone)))


def scheduler_core(system: System) -> SchedulerCore:
    settings = Settings(redis_url=system.redis_server.url, task_modules=["tests.support.tasks"])
    client = redis.Redis.from_url(system.redis_server.url, decode_responses=True)
    runs = RunQueue(client, build_broker(settings), load_task_modules(settings.task_modules), settings)
    return SchedulerCore(settings, client, runs)


def test_cron_edit_changes_next_run_and_next_fire_without_restart(system: System) -> None:
    system.start_serve()
    item = system.create_job(
        "daily", "tests.record", params={"label": "d"}, schedule="0 9 * * *", timezone="UTC"
    )
    system.wait_until(lambda: system.job(item)["next_run"] == next_fire("0 9 * * *"), 20, "NextRun for 09:00")
    assert system.job(item)["status"] == "Scheduled"

    system.edit_job(item, schedule="30 10 * * *", timezone="Europe/London")
    expected = next_fire("30 10 * * *", "Europe/London")
    system.wait_until(lambda: system.job(item)["next_run"] == expected, 20, "NextRun to follow the edit")
    assert "30 10 * * *" in system.job(item)["message"]

    core = scheduler_core(system)
    new_fire = datetime.fromisoformat(expected.replace("Z", "+00:00"))
    old_fire = datetime.fromisoformat(next_fire("0 9 * * *").replace("Z", "+00:00"))
    if old_fire < new_fire:
        assert core.tick(old_fire + timedelta(seconds=0.3)).enqueued == 0  # the old time no longer fires
    assert core.tick(new_fire + timedelta(seconds=0.3)).enqueued == 1
    assert system.redis.exists(keys.run(f"cron:{item}:{expected}"))

    system.edit_job(item, enabled=False)  # pausing clears NextRun and the schedule
    system.wait_until(lambda: system.job(item)["next_run"] is None, 20, "NextRun to be cleared")
    assert "Paused" in system.job(item)["message"]
    assert core.tick(new_fire + timedelta(days=1, seconds=1)).enqueued == 0
    system.edit_job(item, enabled=True)  # resuming schedules it again
    system.wait_until(
        lambda: system.job(item)["next_run"] == next_fire("30 10 * * *", "Europe/London"), 20, "resume"
    )


def test_run_at_job_fires_once_at_its_time(system: System) -> None:
    system.start_serve()
    system.start_worker()
    system.start_scheduler()
    at = (datetime.now(UTC) + timedelta(seconds=6)).replace(microsecond=0)
    item = system.create_job("at once", "tests.record", params={"label": "at"}, schedule=format_time(at))
    system.wait_until(lambda: system.job(item)["next_run"] == format_time(at), 5, "NextRun to show the time")
    assert system.job(item)["status"] == "Scheduled"
    job = system.wait_for_status(item, "Succeeded", timeout=30)
    started = system.executions("at")[0]["at"]
    lateness = started - at.timestamp()
    assert 0 <= lateness < 3, lateness
    assert job["next_run"] is None and job["run_count"] == 1
    time.sleep(3)
    assert len(system.executions("at")) == 1


def test_cron_job_fires_at_the_real_minute_boundary(system: System) -> None:
    """The one test that waits for a real minute boundary."""
    system.start_serve()
    system.start_worker()
    system.start_scheduler()
    item = system.create_job(
        "every minute", "tests.record", params={"label": "m", "sleep": 2}, schedule="* * * * *"
    )
    first = system.wait_until(lambda: system.job(item)["next_run"], 10, "NextRun")
    watcher = system.watch(item)
    boundary = datetime.fromisoformat(first.replace("Z", "+00:00"))
    system.wait_until(lambda: system.executions("m"), 75, "the fire at the minute boundary")
    lateness = system.executions("m")[0]["at"] - boundary.timestamp()
    assert 0 <= lateness < 3, lateness
    system.wait_until(lambda: system.job(item)["run_count"] == 1, 20, "the run to be reported")
    system.wait_until(lambda: "Running" in watcher.seen, 5, "Running to show")
    seen = watcher.until("Scheduled", timeout=20)
    job = system.job(item)
    assert seen[0] == "Scheduled" and seen[-1] == "Scheduled" and "Running" in seen, seen
    assert job["status"] == "Scheduled"
    assert job["message"].startswith("Last run ") and "succeeded" in job["message"]
    assert job["next_run"] == format_time(boundary + timedelta(minutes=1))

"""Which due fires run: on time, and after downtime per missed-runs policy (pure decisions)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from alloysync.model.fires import ScheduleEntry, plan_fires
from alloysync.model.jobs import ScheduleKind
from alloysync.settings import MissedRunPolicy

T0 = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def entry(
    cron: str = "* * * * *", since: datetime = T0 - timedelta(hours=1), **extra: object
) -> ScheduleEntry:
    return ScheduleEntry(
        item_id="job", kind=ScheduleKind.CRON, steps=("tests.record",), params={}, timezone="UTC",
        since=since, version=1, cron=cron, **extra,  # type: ignore[arg-type]
    )  # fmt: skip


def test_the_fire_of_this_minute_runs() -> None:
    plan = plan_fires(entry(), T0 - MINUTE, T0 + timedelta(seconds=0.3), MissedRunPolicy.SKIP, 3600)
    assert plan.run == [T0] and plan.skipped == [] and plan.handled_until == T0


def test_nothing_due_twice() -> None:
    plan = plan_fires(entry(), T0, T0 + timedelta(seconds=40), MissedRunPolicy.ALL, 3600)
    assert plan.run == [] and plan.handled_until is None


@pytest.mark.parametrize(
    ("policy", "window", "expected"),
    [
        (MissedRunPolicy.SKIP, 3600, []),
        (MissedRunPolicy.ONCE, 3600, [T0 + 8 * MINUTE]),
        (MissedRunPolicy.ALL, 3600, [T0 + n * MINUTE for n in range(1, 9)]),
        (MissedRunPolicy.ALL, 300, [T0 + n * MINUTE for n in range(6, 9)]),  # 10:05 is 301 s old
    ],
)
def test_missed_fires_follow_the_policy(
    policy: MissedRunPolicy, window: float, expected: list[datetime]
) -> None:
    now = T0 + 10 * MINUTE + timedelta(seconds=1)  # down from 10:00 to 10:10
    plan = plan_fires(entry(), T0, now, policy, window)
    on_time = [T0 + 9 * MINUTE, T0 + 10 * MINUTE]  # less than 90 s old: not missed
    assert plan.run == expected + on_time
    assert sorted(plan.skipped + expected) == [T0 + n * MINUTE for n in range(1, 9)]
    assert plan.handled_until == T0 + 10 * MINUTE


def test_the_job_policy_overrides_the_default() -> None:
    job = entry(missed_runs=MissedRunPolicy.ALL, missed_window=120.0)
    plan = plan_fires(job, T0, T0 + 10 * MINUTE, MissedRunPolicy.SKIP, 86_400)
    assert plan.run == [T0 + 8 * MINUTE, T0 + 9 * MINUTE, T0 + 10 * MINUTE]  # 10:08 is 120 s old


def test_fires_before_the_schedule_existed_are_not_missed() -> None:
    job = entry(since=T0 + 5 * MINUTE + timedelta(seconds=20))
    plan = plan_fires(job, None, T0 + 10 * MINUTE, MissedRunPolicy.ALL, 86_400)
    assert plan.run[0] == T0 + 6 * MINUTE


def test_a_schedule_stored_on_a_minute_boundary_fires_that_minute() -> None:
    plan = plan_fires(entry(since=T0), None, T0 + timedelta(seconds=0.5), MissedRunPolicy.SKIP, 3600)
    assert plan.run == [T0]


def test_a_run_at_time_is_never_dropped() -> None:
    job = ScheduleEntry(
        item_id="once", kind=ScheduleKind.AT, steps=("tests.record",), params={}, timezone="UTC",
        since=T0 - timedelta(hours=2), version=1, run_at=T0 - timedelta(hours=1),
    )  # fmt: skip
    plan = plan_fires(job, None, T0, MissedRunPolicy.SKIP, 60)
    assert plan.run == [T0 - timedelta(hours=1)]
    assert plan_fires(job, T0 - timedelta(hours=1), T0, MissedRunPolicy.SKIP, 60).run == []


def test_entries_round_trip_through_json() -> None:
    job = entry(missed_runs=MissedRunPolicy.ONCE, missed_window=60.0)
    assert ScheduleEntry.from_json(job.to_json()) == job

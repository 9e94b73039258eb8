"""What a new definition version and a RunRequested mean (pure decisions: no Redis, no Alloy)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from alloysync.model.events import Status
from alloysync.model.jobs import DisabledJob, InvalidJob, JobSpec, Schedule, ScheduleKind
from alloysync.model.runs import RunKind
from alloysync.model.versions import PAUSED_MESSAGE, plan_request, plan_version

NOW = datetime(2026, 11, 21, 10, 0, 30, tzinfo=UTC)
SEEN = NOW - timedelta(seconds=20)


def spec(schedule: Schedule) -> JobSpec:
    return JobSpec("item", "title", ("tests.record", "tests.echo"), {"label": "x"}, schedule, "fp")


def test_a_once_now_job_runs_once_per_version_and_has_no_schedule() -> None:
    plan = plan_version(spec(Schedule(ScheduleKind.NOW)), 3, SEEN, NOW)
    assert plan.remove_schedule and plan.schedule is None and plan.events == []
    [run] = plan.runs
    assert (run.run_id, run.kind, run.version, run.source) == ("now:item:v3", RunKind.NOW, 3, "poller")
    assert run.steps == ("tests.record", "tests.echo") and run.params == {"label": "x"}
    assert run.reason == "Queued: definition changed (version 3)"
    assert plan_version(spec(Schedule(ScheduleKind.NOW)), 1, SEEN, NOW).runs[0].reason == "Queued: new job"


def test_a_cron_job_gets_a_schedule_from_when_its_version_appeared_and_shows_its_next_run() -> None:
    cron = Schedule(ScheduleKind.CRON, "*/5 * * * *", "Europe/London")
    plan = plan_version(spec(cron), 2, SEEN, NOW)
    assert plan.runs == [] and not plan.remove_schedule
    assert plan.schedule is not None and plan.schedule.since == SEEN and plan.schedule.version == 2
    [event] = plan.events
    assert event.kind == "scheduled" and event.attributes == {
        "status": Status.SCHEDULED,
        "message": "Next run 2026-11-21T10:05:00.000Z (*/5 * * * *, Europe/London)",
        "next_run": "2026-11-21T10:05:00.000Z",
    }


def test_a_run_at_time_in_the_future_is_scheduled_and_a_past_one_runs_at_once() -> None:
    later = NOW + timedelta(hours=1)
    plan = plan_version(spec(Schedule(ScheduleKind.AT, "x", run_at=later)), 1, SEEN, NOW)
    assert plan.runs == [] and plan.schedule is not None and plan.schedule.run_at == later
    assert plan.events[0].attributes["next_run"] == "2026-11-21T11:00:30.000Z"
    earlier = NOW - timedelta(minutes=1)
    plan = plan_version(spec(Schedule(ScheduleKind.AT, "x", run_at=earlier)), 1, SEEN, NOW)
    [run] = plan.runs
    assert run.run_id == "at:item:2026-11-21T09:59:30.000Z" and run.scheduled_at == earlier
    assert run.reason == "Queued: its run-at time 2026-11-21T09:59:30.000Z has passed"
    assert plan.schedule is not None and plan.events == []  # the entry stays: the scheduler marks it fired


def test_invalid_and_disabled_jobs_lose_their_schedule_and_say_why() -> None:
    invalid = plan_version(InvalidJob("item", "t", "fp", "task", "unknown task 'x'"), 4, SEEN, NOW)
    assert invalid.remove_schedule and invalid.runs == []
    assert [(e.kind, e.attributes) for e in invalid.events] == [
        ("invalid", {"status": Status.INVALID, "message": "unknown task 'x'", "next_run": None})
    ]
    paused = plan_version(DisabledJob("item", "t", "fp"), 5, SEEN, NOW)
    assert paused.remove_schedule and paused.runs == []
    assert [(e.kind, e.attributes) for e in paused.events] == [
        ("paused", {"message": PAUSED_MESSAGE, "next_run": None})
    ]


def test_run_requested_runs_a_valid_job_and_always_resets_the_flag() -> None:
    plan = plan_request(spec(Schedule(ScheduleKind.NOW)), 2, 7)
    assert plan.run is not None and (plan.run.run_id, plan.run.source) == ("req:item:7", "request")
    assert plan.reset.kind == "request_reset" and plan.reset.attributes == {"run_requested": False}
    disabled = plan_request(DisabledJob("item", "t", "fp"), 2, 8)
    assert disabled.run is None
    assert disabled.reset.attributes == {
        "run_requested": False,
        "message": "RunRequested ignored: the job is disabled",
    }
    invalid = plan_request(InvalidJob("item", "t", "fp", "params", "Params are not JSON"), 2, 9)
    assert (
        invalid.run is None
        and invalid.reset.attributes["message"] == "RunRequested ignored: Params are not JSON"
    )

"""What to do about a job: for a new definition version, and for a RunRequested (pure decisions).

The poller reads a record, validates it (`jobs.validate_job`) and, when the definition is a version
it has not acted upon, asks `plan_version` what that version means; it then carries the plan out
(schedule store, run queue, outbox) in the plan's order. Like `fires.plan_fires`, this is a pure
function of its arguments, so every decision is tested without Redis or Alloy.

  invalid       → the schedule goes; an `invalid` event (Status Invalid, the message, no NextRun)
  disabled      → the schedule goes; a `paused` event (Message says how to resume, no NextRun)
  once, now     → the schedule goes; a run `now:{item}:v{version}`
  run-at        → a schedule entry; a run at once if the time has passed, else a `scheduled` event
  cron          → a schedule entry; a `scheduled` event with the next fire
A RunRequested (`plan_request`) becomes a run `req:{item}:{n}` of a valid job, and always the
reset of the flag (with a Message saying why nothing ran, for a job that cannot run).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from alloysync.model.cron import CronExpression
from alloysync.model.events import Event, Status
from alloysync.model.fires import ScheduleEntry
from alloysync.model.jobs import DisabledJob, InvalidJob, JobSpec, JobState, ScheduleKind
from alloysync.model.params import StepParams
from alloysync.model.runs import RunKind, RunRequest, run_id_for
from alloysync.model.times import format_alloy_datetime

PAUSED_MESSAGE = "Paused: Enabled is false. Set it to true to run or schedule this job."


@dataclass(frozen=True)
class VersionPlan:
    """What acting on one definition version takes, in the order to carry it out."""

    item_id: str
    schedule: ScheduleEntry | None = None  # the entry to store; None with remove_schedule: drop it
    remove_schedule: bool = False
    runs: list[RunRequest] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)


@dataclass(frozen=True)
class RequestPlan:
    """What a RunRequested takes: maybe a run, and always the reset of the flag."""

    run: RunRequest | None
    reset: Event


def plan_version(
    state: JobState, version: int, seen_at: datetime, now: datetime, now_run_created: bool = False
) -> VersionPlan:
    """Decide what `version` of a job means (see the module docstring).

    `seen_at` is when the version was first seen (a new schedule is handled from then); `now`
    decides whether a run-at time has passed and which cron fire is next. `now_run_created` says
    the once-now run of this version exists already (the version is acted upon again because an
    optional attribute or the task registry changed): it is not created again."""
    item_id = state.item_id
    if isinstance(state, InvalidJob):
        invalid = _event(item_id, "invalid", status=Status.INVALID, message=state.message, next_run=None)
        return VersionPlan(item_id, remove_schedule=True, events=[invalid])
    if isinstance(state, DisabledJob):
        paused = _event(item_id, "paused", message=PAUSED_MESSAGE, next_run=None)
        return VersionPlan(item_id, remove_schedule=True, events=[paused])
    schedule = state.schedule
    if schedule.kind is ScheduleKind.NOW and now_run_created:
        return VersionPlan(item_id, remove_schedule=True)
    if schedule.kind is ScheduleKind.NOW:
        reason = "Queued: new job" if version == 1 else f"Queued: definition changed (version {version})"
        run = _run(state, version, RunKind.NOW, run_id_for(RunKind.NOW, item_id, version=version), reason)
        return VersionPlan(item_id, remove_schedule=True, runs=[run])
    entry = ScheduleEntry.from_spec(state, version, since=seen_at)
    if schedule.kind is ScheduleKind.AT:
        assert schedule.run_at is not None
        at = format_alloy_datetime(schedule.run_at)
        if schedule.run_at <= now:
            run_id = run_id_for(RunKind.AT, item_id, scheduled_at=schedule.run_at)
            reason = f"Queued: its run-at time {at} has passed"
            run = _run(state, version, RunKind.AT, run_id, reason, scheduled_at=schedule.run_at)
            return VersionPlan(item_id, schedule=entry, runs=[run])
        scheduled = _event(
            item_id, "scheduled", status=Status.SCHEDULED, message=f"Runs once at {at}", next_run=at
        )
        return VersionPlan(item_id, schedule=entry, events=[scheduled])
    next_fire = entry.next_fire(now)
    assert next_fire is not None, "a cron expression always fires again"
    following = format_alloy_datetime(next_fire)
    message = f"Next run {following} ({schedule.text}, {schedule.timezone})"
    scheduled = _event(item_id, "scheduled", status=Status.SCHEDULED, message=message, next_run=following)
    return VersionPlan(item_id, schedule=entry, events=[scheduled])


def plan_request(
    state: JobState,
    version: int,
    request: int,
    run_params: StepParams | None = None,
    run_params_problem: str = "",
    clear_run_params: bool = False,
) -> RequestPlan:
    """Decide what RunRequested number `request` of a job means (see the module docstring).

    With RunParams (`run_params`, already checked like Params), that one run uses them; Params and
    the definition are unchanged. RunParams that do not fit (`run_params_problem`) fail the request
    with that message: nothing runs, the job stays valid. RunParams is cleared with the reset."""
    attributes: dict[str, Any] = {"run_requested": False}
    if clear_run_params or run_params is not None or run_params_problem:
        attributes["run_params"] = None  # RunParams was given: cleared with the flag
    run = None
    if isinstance(state, JobSpec) and run_params_problem:
        attributes["message"] = f"RunRequested not run: {run_params_problem}"
    elif isinstance(state, JobSpec):
        run_id = run_id_for(RunKind.REQUEST, state.item_id, request=request)
        reason = "Queued: RunRequested" + (" with RunParams" if run_params is not None else "")
        run = _run(state, version, RunKind.REQUEST, run_id, reason, source="request", params=run_params)
    elif isinstance(state, DisabledJob):
        attributes["message"] = "RunRequested ignored: the job is disabled"
    else:
        attributes["message"] = f"RunRequested ignored: {state.message}"
    return RequestPlan(run, Event(state.item_id, "request_reset", attributes))


@dataclass(frozen=True)
class BackfillPlan:
    """The runs a Backfill asks for, oldest first, and the event that clears the attribute."""

    runs: list[RunRequest]
    clear: Event
    span: str = ""  # FROM..TO, as Alloy DateTime text


def plan_backfill(spec: JobSpec, version: int) -> BackfillPlan | None:
    """One run per cron fire in the job's Backfill range (both ends inclusive), oldest first.

    Each run is the fire's own run (`cron:{item}:{time}`): a fire that already ran, or that an
    earlier identical backfill created, is not run again. None when there is nothing to backfill."""
    window = spec.control.backfill
    if window is None or spec.schedule.kind is not ScheduleKind.CRON:
        return None
    start, end = window
    expression = CronExpression.parse(spec.schedule.text)
    fires = list(expression.fires_between(start - timedelta(microseconds=1), end, spec.schedule.zone))
    total = len(fires)
    runs = []
    for number, fire in enumerate(fires, start=1):
        progress = f"backfill {number}/{total}"
        due = format_alloy_datetime(fire)
        run_id = run_id_for(RunKind.BACKFILL, spec.item_id, scheduled_at=fire)
        run = _run(spec, version, RunKind.BACKFILL, run_id, f"Queued: {progress}, the run due at {due}",
                   source="backfill", scheduled_at=fire, progress=progress)  # fmt: skip
        runs.append(run)
    span = f"{format_alloy_datetime(start)}..{format_alloy_datetime(end)}"
    message = f"Backfill {span}: {total} run(s) of {spec.schedule.text!r} queued, oldest first, one at a time"
    return BackfillPlan(runs, Event(spec.item_id, "backfill", {"backfill": None, "message": message}), span)


def _run(
    spec: JobSpec,
    version: int,
    kind: RunKind,
    run_id: str,
    reason: str,
    source: str = "poller",
    scheduled_at: datetime | None = None,
    params: StepParams | None = None,
    progress: str = "",
) -> RunRequest:
    """A run of the job's steps with its Params (or `params`), for its current `version`."""
    first, later = (spec.params, spec.later_params) if params is None else (params.first, params.later)
    return RunRequest(
        run_id,
        spec.item_id,
        kind,
        spec.steps,
        first,
        source,
        reason,
        scheduled_at=scheduled_at,
        version=version,
        recurring=kind is RunKind.BACKFILL,
        progress=progress,
        later_params=later,
        concurrency_key=spec.control.concurrency_key,
        title=spec.title,
    )


def _event(item_id: str, kind: str, **attributes: Any) -> Event:
    return Event(item_id, kind, attributes)

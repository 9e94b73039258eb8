"""Schedule entries and scheduling decisions: which fires are due, and what the missed-runs policy keeps.

The poller writes one `ScheduleEntry` per cron or run-at job into the schedule store (Redis hash
`alloysync:schedules`); the scheduler reads them. Decisions here are pure functions of an entry, the
newest time already fired for the job, and "now", so they are tested with any clock.

Due fires are the fire instants in (last handled, now]. The newest due fire that is less than
`ON_TIME_GRACE` old is *on time* and always runs. Older due fires were *missed* (the scheduler was
down or stalled) and the policy decides:
  skip  run none of them;
  once  run a single catch-up, for the newest missed fire;
  all   run every missed fire not older than the window (default ALLOYSYNC_MISSED_RUNS_WINDOW).
A new or changed schedule is handled from the moment the poller stored it (`since`): fires before a
job existed or before its edit are never "missed".
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any

from alloysync.model.cron import CronExpression, parse_timezone
from alloysync.model.jobs import JobSpec, ScheduleKind
from alloysync.model.times import format_alloy_datetime, parse_alloy_datetime
from alloysync.settings import MissedRunPolicy

ON_TIME_GRACE = timedelta(seconds=90)
MAX_FIRES_PER_TICK = 10_000  # a bound for `all` over a long window


@dataclass(frozen=True)
class ScheduleEntry:
    """What the scheduler needs to fire a job: when, and what to run."""

    item_id: str
    kind: ScheduleKind  # CRON or AT
    steps: tuple[str, ...]
    params: dict[str, Any]
    timezone: str
    since: datetime
    version: int
    cron: str = ""
    run_at: datetime | None = None
    missed_runs: MissedRunPolicy | None = None
    missed_window: float | None = None
    later_params: tuple[dict[str, Any], ...] = ()  # options of steps 2.. (Params' per-step form)
    overlap: str = ""  # the job's Overlap policy ('' = the feature is off: fires overlap freely)
    concurrency_key: str = ""
    title: str = ""

    @classmethod
    def from_spec(cls, spec: JobSpec, version: int, since: datetime) -> ScheduleEntry:
        schedule = spec.schedule
        if schedule.kind is ScheduleKind.NOW:
            raise ValueError("a once-now job has no schedule entry")
        return cls(
            item_id=spec.item_id,
            kind=schedule.kind,
            steps=spec.steps,
            params=spec.params,
            timezone=schedule.timezone,
            since=since,
            version=version,
            cron=schedule.text if schedule.kind is ScheduleKind.CRON else "",
            run_at=schedule.run_at,
            missed_runs=schedule.missed_runs,
            missed_window=schedule.missed_window,
            later_params=spec.later_params,
            overlap=spec.control.overlap,
            concurrency_key=spec.control.concurrency_key,
            title=spec.title,
        )

    def to_json(self) -> str:
        return json.dumps(
            {
                "item": self.item_id,
                "kind": self.kind.value,
                "steps": list(self.steps),
                "params": self.params,
                "timezone": self.timezone,
                "since": format_alloy_datetime(self.since),
                "version": self.version,
                "cron": self.cron,
                "run_at": format_alloy_datetime(self.run_at) if self.run_at else None,
                "missed_runs": self.missed_runs.value if self.missed_runs else None,
                "missed_window": self.missed_window,
                "later_params": list(self.later_params),
                "overlap": self.overlap,
                "concurrency_key": self.concurrency_key,
                "title": self.title,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> ScheduleEntry:
        data = json.loads(text)
        return cls(
            item_id=data["item"],
            kind=ScheduleKind(data["kind"]),
            steps=tuple(data["steps"]),
            params=data["params"],
            timezone=data["timezone"],
            since=parse_alloy_datetime(data["since"]),
            version=int(data["version"]),
            cron=data.get("cron") or "",
            run_at=parse_alloy_datetime(data["run_at"]) if data.get("run_at") else None,
            missed_runs=MissedRunPolicy(data["missed_runs"]) if data.get("missed_runs") else None,
            missed_window=data.get("missed_window"),
            later_params=tuple(data.get("later_params") or ()),
            overlap=data.get("overlap") or "",
            concurrency_key=data.get("concurrency_key") or "",
            title=data.get("title") or "",
        )

    @cached_property
    def expression(self) -> CronExpression:
        return CronExpression.parse(self.cron)

    def next_fire(self, after: datetime) -> datetime | None:
        """The first fire strictly after `after`, or None (a run-at job whose time has passed)."""
        if self.kind is ScheduleKind.AT:
            assert self.run_at is not None
            return self.run_at if self.run_at > after else None
        return self.expression.next_fire(after, parse_timezone(self.timezone))

    def fires_between(self, start: datetime, end: datetime) -> list[datetime]:
        """Fires in (start, end], oldest first, at most MAX_FIRES_PER_TICK (the newest ones)."""
        if self.kind is ScheduleKind.AT:
            assert self.run_at is not None
            return [self.run_at] if start < self.run_at <= end else []
        fires: list[datetime] = []
        for fire in self.expression.fires_between(start, end, parse_timezone(self.timezone)):
            fires.append(fire)
            if len(fires) > MAX_FIRES_PER_TICK:
                fires.pop(0)
        return fires


@dataclass(frozen=True)
class FirePlan:
    """What one scheduler pass does for one entry."""

    run: list[datetime]  # fires to run, oldest first
    skipped: list[datetime]  # missed fires the policy drops
    handled_until: datetime | None  # the newest due fire (the new "last fire"), None if nothing was due


def plan_fires(
    entry: ScheduleEntry,
    last_fire: datetime | None,
    now: datetime,
    default_policy: MissedRunPolicy,
    default_window: float,
) -> FirePlan:
    """Decide which due fires of `entry` run at `now` (see the module docstring)."""
    start = entry.since if last_fire is None else max(last_fire, entry.since)
    # Fires at the moment the schedule was stored count: the poller stores a few ms after a
    # minute boundary as easily as before it.
    due = entry.fires_between(start - timedelta(microseconds=1) if last_fire is None else start, now)
    if not due:
        return FirePlan([], [], None)
    policy = entry.missed_runs or default_policy
    window = timedelta(seconds=entry.missed_window or default_window)
    on_time = [fire for fire in due if now - fire <= ON_TIME_GRACE]
    missed = [fire for fire in due if now - fire > ON_TIME_GRACE]
    if entry.kind is ScheduleKind.AT:
        # A run-at job's single run is never dropped: it is what the user asked for.
        return FirePlan(due, [], due[-1])
    if policy is MissedRunPolicy.SKIP:
        kept: list[datetime] = []
    elif policy is MissedRunPolicy.ONCE:
        kept = missed[-1:]
    else:
        kept = [fire for fire in missed if now - fire <= window]
    skipped = [fire for fire in missed if fire not in kept]
    return FirePlan(kept + on_time, skipped, due[-1])

"""The job model: an Alloy item of the jobs design → a validated `JobSpec`, a `DisabledJob`, or an
`InvalidJob` whose message names the attribute and says how to fix it.

Only the user-written definition attributes (task, params, schedule, timezone, missed runs, enabled)
make up a job's *definition*; their fingerprint decides whether a record changed. alloysync's own
attributes (status, message, result, run times, run count) never take part, so alloysync's writes
can never look like a definition change. RunRequested is read separately: it is a request, not
part of the definition.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from alloysync.alloy.models import Item
from alloysync.model.cron import CronError, CronExpression, parse_timezone
from alloysync.model.job_options import (
    ALL_FEATURES,
    OptionProblem,
    RunControl,
    options_fingerprint,
    parse_control,
    read_options,
)
from alloysync.model.params import ParamsProblem, StepParams, json_kind, parse_params
from alloysync.model.registry import TaskRegistry
from alloysync.model.times import parse_alloy_datetime
from alloysync.settings import JobAttributeCodes, MissedRunPolicy, Settings

MAX_STEPS = 10
MAX_TASK_TEXT = 1000
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd]?)$")
_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


class ScheduleKind(StrEnum):
    NOW = "now"  # empty Schedule: run once, now
    AT = "at"  # an ISO-8601 date-time: run once, at that time
    CRON = "cron"  # a cron expression: recurring


@dataclass(frozen=True)
class Schedule:
    """When a job runs. `timezone` is an IANA name; `run_at` is UTC."""

    kind: ScheduleKind
    text: str = ""
    timezone: str = "UTC"
    run_at: datetime | None = None
    missed_runs: MissedRunPolicy | None = None  # None: the deployment default
    missed_window: float | None = None  # seconds, for `all`; None: the deployment default

    @property
    def zone(self) -> ZoneInfo:
        return parse_timezone(self.timezone)


@dataclass(frozen=True)
class JobDefinition:
    """The user-written attributes of a job record, as found on the item."""

    item_id: str
    title: str
    enabled: Any
    task: Any
    params: Any
    schedule: Any
    timezone: Any
    missed_runs: Any
    run_requested: bool
    run_count: int | None
    options: dict[str, Any] = field(default_factory=dict)  # optional attributes (model/job_options.py)
    run_params: Any = None  # RunParams: the params of the requested run
    cancel_requested: bool = False

    @property
    def options_fingerprint(self) -> str:
        """A digest of the optional attributes: they change how the job runs, not what it is."""
        # Backfill is a request (handled once per value, then cleared), not an option to follow.
        return options_fingerprint(
            {name: value for name, value in self.options.items() if name != "backfill"}
        )

    @property
    def fingerprint(self) -> str:
        """A digest of the definition attributes: equal fingerprints mean nothing to do."""
        canonical = json.dumps(
            [self.enabled, self.task, self.params, self.schedule, self.timezone, self.missed_runs],
            sort_keys=True,
            separators=(",", ":"),
            default=str,
        )
        return hashlib.sha256(canonical.encode()).hexdigest()[:24]


@dataclass(frozen=True)
class JobSpec:
    """A valid, enabled job."""

    item_id: str
    title: str
    steps: tuple[str, ...]
    params: dict[str, Any]  # the first step's options
    schedule: Schedule
    fingerprint: str
    later_params: tuple[dict[str, Any], ...] = ()  # options of steps 2.. (Params' per-step form)
    control: RunControl = field(default_factory=RunControl)  # the optional attributes (job_options.py)


@dataclass(frozen=True)
class DisabledJob:
    """A record whose Enabled is not true: paused, nothing runs."""

    item_id: str
    title: str
    fingerprint: str


@dataclass(frozen=True)
class InvalidJob:
    """A record that cannot run; `message` tells the user what to fix."""

    item_id: str
    title: str
    fingerprint: str
    attribute: str
    message: str


JobState = JobSpec | DisabledJob | InvalidJob


@dataclass
class _Problem(Exception):
    attribute: str
    message: str


def read_definition(
    item: Item, codes: JobAttributeCodes, features: frozenset[str] = ALL_FEATURES
) -> JobDefinition:
    """Pick the definition attributes off an item (no validation yet); of the optional attributes,
    only those of the `features` the design has."""
    run_count = item.value(codes.run_count)
    return JobDefinition(
        item_id=item.itemId,
        title=str(item.value(codes.title) or ""),
        enabled=item.value(codes.enabled),
        task=item.value(codes.task),
        params=item.value(codes.params),
        schedule=item.value(codes.schedule),
        timezone=item.value(codes.timezone),
        missed_runs=item.value(codes.missed_runs),
        run_requested=item.value(codes.run_requested) is True,
        run_count=int(run_count)
        if isinstance(run_count, int | float) and not isinstance(run_count, bool)
        else None,
        options=read_options(item, codes, features),
        run_params=item.value(codes.run_params) if "run_params" in features else None,
        cancel_requested="cancel_requested" in features and item.value(codes.cancel_requested) is True,
    )


def validate_job(
    definition: JobDefinition,
    registry: TaskRegistry,
    settings: Settings,
    now: datetime,
    features: frozenset[str] = ALL_FEATURES,
) -> JobState:
    """Validate a definition against the task registry and settings at time `now` (aware)."""
    codes = settings.attributes
    if definition.enabled is not True:
        return DisabledJob(definition.item_id, definition.title, definition.fingerprint)
    try:
        steps = _parse_task(definition.task, registry, codes)
        step_params = _parse_params(definition.params, steps, registry, settings)
        schedule = _parse_schedule(definition, settings, now)
        cron = schedule.text if schedule.kind is ScheduleKind.CRON else None
        control = parse_control(definition.options, settings, schedule.timezone, cron, features)
    except (_Problem, OptionProblem) as problem:
        return InvalidJob(
            definition.item_id, definition.title, definition.fingerprint, problem.attribute, problem.message
        )
    return JobSpec(
        definition.item_id,
        definition.title,
        steps,
        step_params.first,
        schedule,
        definition.fingerprint,
        later_params=step_params.later,
        control=control,
    )


def _parse_task(value: Any, registry: TaskRegistry, codes: JobAttributeCodes) -> tuple[str, ...]:
    where = f"Task ({codes.task})"
    if not isinstance(value, str) or not value.strip():
        raise _Problem(codes.task, f"{where} is empty: name a registered task, e.g. {_examples(registry)}")
    if len(value) > MAX_TASK_TEXT:
        raise _Problem(codes.task, f"{where} is {len(value)} characters long; the limit is {MAX_TASK_TEXT}")
    steps = tuple(step.strip() for step in value.split("|"))
    if any(not step for step in steps):
        raise _Problem(codes.task, f"{where} {value!r} has an empty step: write steps as 'a | b | c'")
    if len(steps) > MAX_STEPS:
        raise _Problem(codes.task, f"{where} has {len(steps)} steps; a pipeline may have at most {MAX_STEPS}")
    for position, step in enumerate(steps):
        registered = registry.get(step)
        if registered is None:
            raise _Problem(
                codes.task,
                f"{where}: unknown task {step!r}. Only registered tasks can run; "
                f"registered tasks are: {', '.join(registry.names()) or '(none)'}",
            )
        if position > 0 and registered.input_parameter is None:
            raise _Problem(
                codes.task,
                f"{where}: {step} cannot follow another step: a later pipeline step must take the "
                "previous step's result as its first parameter",
            )
    return steps


def _parse_params(
    value: Any, steps: tuple[str, ...], registry: TaskRegistry, settings: Settings
) -> StepParams:
    codes = settings.attributes
    try:
        return parse_params(value, steps, registry, settings, f"Params ({codes.params})")
    except ParamsProblem as problem:
        if problem.step and not problem.per_step:
            # A later step that needs options of its own, in a job whose Params only feed step 1.
            raise _Problem(
                codes.task,
                f"Task ({codes.task}): {steps[problem.step]} cannot follow another step without options "
                f'of its own ({problem}); give every step its options: {{"steps": [{{...}}, {{...}}]}}',
            ) from None
        raise _Problem(codes.params, str(problem)) from None


def _parse_schedule(definition: JobDefinition, settings: Settings, now: datetime) -> Schedule:
    codes = settings.attributes
    timezone = _parse_timezone(definition.timezone, codes)
    missed_runs, missed_window = _parse_missed_runs(definition.missed_runs, codes)
    value = definition.schedule
    where = f"Schedule ({codes.schedule})"
    if value is None or (isinstance(value, str) and not value.strip()):
        return Schedule(ScheduleKind.NOW, "", timezone, missed_runs=missed_runs, missed_window=missed_window)
    if not isinstance(value, str):
        raise _Problem(codes.schedule, f"{where} must be text, not {json_kind(value)}")
    text = value.strip()
    run_at = _parse_datetime(text, timezone)
    if run_at is None and (text.startswith("@") or len(text.split()) > 1):
        # Not a date-time and shaped like a cron expression: the cron parser says what is wrong.
        try:
            CronExpression.parse(text)
        except CronError as error:
            raise _Problem(codes.schedule, f"{where}: {error}") from None
        return Schedule(
            ScheduleKind.CRON, text, timezone, missed_runs=missed_runs, missed_window=missed_window
        )
    if run_at is None:
        raise _Problem(
            codes.schedule,
            f"{where} {text!r} is neither an ISO-8601 date-time (e.g. 2026-07-02T09:30:00+01:00) nor a cron "
            "expression (5 fields such as '*/15 * * * *', or @hourly, @daily, @weekly, @monthly, @yearly); "
            "leave it empty to run once now",
        )
    late = (now - run_at).total_seconds()
    if late > settings.run_at_horizon:
        raise _Problem(
            codes.schedule,
            f"{where} {text} is {_duration_text(late)} in the past, beyond the run-at horizon of "
            f"{_duration_text(settings.run_at_horizon)} (ALLOYSYNC_RUN_AT_HORIZON): set a future time, "
            "or clear Schedule to run once now",
        )
    return Schedule(
        ScheduleKind.AT, text, timezone, run_at=run_at, missed_runs=missed_runs, missed_window=missed_window
    )


def _parse_timezone(value: Any, codes: JobAttributeCodes) -> str:
    if value is None or (isinstance(value, str) and not value.strip()):
        return "UTC"
    where = f"Timezone ({codes.timezone})"
    if not isinstance(value, str):
        raise _Problem(codes.timezone, f"{where} must be text such as Europe/London, not {json_kind(value)}")
    try:
        parse_timezone(value.strip())
    except ValueError as error:
        raise _Problem(codes.timezone, f"{where}: {error}") from None
    return value.strip()


def _parse_missed_runs(value: Any, codes: JobAttributeCodes) -> tuple[MissedRunPolicy | None, float | None]:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None, None
    where = f"MissedRuns ({codes.missed_runs})"
    hint = "use skip, once, all, or all with a window such as 'all 6h' (leave empty for the default)"
    if not isinstance(value, str):
        raise _Problem(codes.missed_runs, f"{where} must be text: {hint}")
    words = value.strip().lower().split()
    try:
        policy = MissedRunPolicy(words[0])
    except ValueError:
        raise _Problem(codes.missed_runs, f"{where} {value!r} is not a policy: {hint}") from None
    if len(words) == 1:
        return policy, None
    match = _DURATION.match("".join(words[1:]))
    if policy is not MissedRunPolicy.ALL or match is None:
        raise _Problem(codes.missed_runs, f"{where} {value!r}: {hint}")
    window = float(match.group(1)) * _DURATION_UNITS[match.group(2)]
    if window <= 0:
        raise _Problem(codes.missed_runs, f"{where} {value!r}: the window must be longer than 0")
    return policy, window


def _parse_datetime(text: str, timezone: str) -> datetime | None:
    """A user's run-at time; without an offset it is read in the job's zone."""
    try:
        return parse_alloy_datetime(text, naive_zone=parse_timezone(timezone))
    except ValueError:
        return None


def _duration_text(seconds: float) -> str:
    delta = timedelta(seconds=round(seconds))
    if delta >= timedelta(days=2):
        return f"{delta.days} days"
    if delta >= timedelta(hours=2):
        return f"{delta.total_seconds() / 3600:.0f} hours"
    if delta >= timedelta(minutes=2):
        return f"{delta.total_seconds() / 60:.0f} minutes"
    return f"{delta.total_seconds():.0f} seconds"


def _examples(registry: TaskRegistry) -> str:
    names = registry.names()[:2]
    return " or ".join(repr(name) for name in names) if names else "'package.task'"

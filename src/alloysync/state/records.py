"""Typed records of the run and job hashes (`alloysync:run:{id}`, `alloysync:job:{item}`), their
phase enums, and the one codec between them and the hash fields.

Decoding is lenient (a field that is missing reads as its default), so a record written by an
older alloysync, or half-written by a test, still reads. Values are stored as text.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, get_type_hints

from alloysync.model.json_text import compact_json
from alloysync.model.runs import RunRequest, task_label
from alloysync.model.times import format_alloy_datetime, now_iso
from alloysync.settings import DEFAULT_MISSED_RUNS_WINDOW, MissedRunPolicy

RUN_TTL = 7 * 86_400  # seconds an ended run's record is kept (history, duplicate suppression)


class RunPhase(StrEnum):
    """The `state` field of a run record (see docs/architecture.md for the transitions)."""

    QUEUED = "queued"  # created, or between steps: a message for its current step is on a queue
    RUNNING = "running"  # a message owns the current step
    WAITING = "waiting"  # for its job's previous run (Overlap, backfill) or a concurrency-key slot
    SUCCEEDED = "succeeded"  # the last step returned
    FAILED = "failed"  # a step failed for good
    SKIPPED = "skipped"  # never ran: a stale fire, Overlap skip, or its job was paused first
    CANCELLED = "cancelled"  # CancelRequested or Overlap replace stopped it (not retried)

    @property
    def ended(self) -> bool:
        return self in (RunPhase.SUCCEEDED, RunPhase.FAILED, RunPhase.SKIPPED, RunPhase.CANCELLED)


class JobPhase(StrEnum):
    """The `state` field of a job record: what the poller decided about the definition."""

    VALID = "valid"  # enabled and valid: it runs
    DISABLED = "disabled"  # Enabled is not true: paused
    INVALID = "invalid"  # cannot run; `invalid` says why
    GONE = "gone"  # deleted from Alloy (counters kept, so run ids stay unique if it returns)


def _phase(enum: type[RunPhase] | type[JobPhase], text: str | None) -> Any:
    try:
        return enum(text) if text else None
    except ValueError:
        return None


def _float(text: str | None) -> float | None:
    try:
        return float(text) if text else None
    except ValueError:
        return None


def _int(text: str | None, default: int = 0) -> int:
    try:
        return int(text) if text else default
    except ValueError:
        return default


@dataclass(frozen=True)
class RunRecord:
    """One run: what it runs, where it stands, and what its steps returned."""

    run_id: str
    item_id: str = ""
    kind: str = ""
    task: str = ""
    steps: tuple[str, ...] = ()
    params: dict[str, Any] = field(default_factory=dict)
    scheduled_at: str = ""
    recurring: bool = False
    missed_runs: MissedRunPolicy = MissedRunPolicy.ONCE
    missed_window: float = DEFAULT_MISSED_RUNS_WINDOW
    source: str = ""
    version: int | None = None
    created: str = ""
    phase: RunPhase | None = None
    step: int = 0
    owner: str = ""  # the Dramatiq message id that owns the current step ('' = none)
    worker: str = ""
    started: str = ""
    step_started: str = ""
    finished: str = ""
    error: str = ""
    attempts: int = 0  # attempts of the step that needed most (retries + 1)
    step_results: dict[int, Any] = field(default_factory=dict)
    later_params: tuple[dict[str, Any], ...] = ()  # options of steps 2..
    overlap: str = ""
    concurrency_key: str = ""
    title: str = ""  # the job's title when the run was created
    cancel_reason: str = ""  # set when the run is being cancelled (the worker interrupts it)
    waits_for: str = ""  # while waiting: 'job' (its job's previous run) or 'slot' (its concurrency key)
    progress: str = ""  # e.g. "backfill 3/6"

    def options_for(self, step: int) -> dict[str, Any]:
        """The options step `step` is called with (step 0: the first step's Params)."""
        if step == 0:
            return self.params
        return self.later_params[step - 1] if step - 1 < len(self.later_params) else {}

    @property
    def task_label(self) -> str:
        return self.task or task_label(self.steps)

    @property
    def unclaimed(self) -> bool:
        """Queued and owned by no message (a stale fire may still be skipped)."""
        return self.phase is RunPhase.QUEUED and not self.owner

    @classmethod
    def from_hash(cls, fields: dict[str, str]) -> RunRecord:
        results = {
            int(name.split(":", 1)[1]): json.loads(value)
            for name, value in fields.items()
            if name.startswith("result:")
        }
        version = fields.get("version", "")
        try:
            policy = MissedRunPolicy(fields.get("missed_runs") or MissedRunPolicy.ONCE.value)
        except ValueError:
            policy = MissedRunPolicy.ONCE
        # Every text attribute is stored as it is, under its own name or the one in RUN_HASH_NAMES.
        texts: dict[str, Any] = {name: fields.get(RUN_HASH_NAMES.get(name, name), "") for name in _RUN_TEXTS}
        return cls(
            **texts,
            steps=tuple(json.loads(fields.get("steps") or "[]")),
            params=json.loads(fields.get("params") or "{}"),
            recurring=fields.get("recurring") == "1",
            missed_runs=policy,
            missed_window=float(fields.get("missed_window") or DEFAULT_MISSED_RUNS_WINDOW),
            version=int(version) if version else None,
            phase=_phase(RunPhase, fields.get("state")),
            step=_int(fields.get("step")),
            attempts=_int(fields.get("attempts")),
            step_results=results,
            later_params=tuple(json.loads(fields.get("later_params") or "[]")),
        )


def _text_attributes(record: type[Any]) -> tuple[str, ...]:
    """The names of the attributes of dataclass `record` whose type is `str`."""
    hints = get_type_hints(record)
    return tuple(attribute.name for attribute in dataclasses.fields(record) if hints[attribute.name] is str)


_RUN_TEXTS = _text_attributes(RunRecord)
RUN_HASH_NAMES = {"item_id": "item", "cancel_reason": "cancel"}  # text attributes stored by another name


def new_run_hash(request: RunRequest) -> dict[str, str]:
    """The fields of a new `run:{id}` hash for `request` (queued, at its first step)."""
    return {
        "run_id": request.run_id,
        "item": request.item_id,
        "kind": request.kind.value,
        "task": request.task_label,
        "steps": json.dumps(list(request.steps)),
        "params": json.dumps(request.params, separators=(",", ":")),
        "scheduled_at": format_alloy_datetime(request.scheduled_at) if request.scheduled_at else "",
        "recurring": "1" if request.recurring else "0",
        "missed_runs": request.missed_runs.value,
        "missed_window": str(request.missed_window),
        "source": request.source,
        "version": "" if request.version is None else str(request.version),
        "created": now_iso(),
        "state": RunPhase.QUEUED.value,
        "step": "0",
        "owner": "",
        "later_params": json.dumps(list(request.later_params), separators=(",", ":")),
        "overlap": request.overlap,
        "concurrency_key": request.concurrency_key,
        "title": request.title,
        "progress": request.progress,
    }


@dataclass(frozen=True)
class JobView:
    """The job's latest reported state, kept by the reporter for the jobs page."""

    status: str = ""
    message: str = ""
    last_run_started: str = ""
    last_run_finished: str = ""
    next_run: str = ""
    run_count: int | None = None
    event: str = ""
    event_at: str = ""


VIEW_FIELDS = ("status", "message", "last_run_started", "last_run_finished", "next_run", "run_count")


@dataclass(frozen=True)
class JobDecision:
    """What the poller decided about a job's definition: its phase and a summary for the page."""

    title: str
    phase: JobPhase
    task: str
    schedule: str
    timezone: str
    invalid: str  # why the job is invalid ('' otherwise)
    overlap: str = ""
    concurrency_key: str = ""
    max_age: float | None = None
    notify: str = ""  # the targets, comma-separated
    notify_on: str = ""
    now_version: int | None = None  # set when a once-now run of a version was created

    def to_hash(self) -> dict[str, str]:
        fields = {
            "title": self.title,
            "state": self.phase.value,
            "task": self.task,
            "schedule": self.schedule,
            "timezone": self.timezone,
            "invalid": self.invalid,
            "overlap": self.overlap,
            "concurrency_key": self.concurrency_key,
            "max_age": "" if self.max_age is None else repr(self.max_age),
            "notify": self.notify,
            "notify_on": self.notify_on,
        }
        if self.now_version is not None:
            fields["now_version"] = str(self.now_version)
        return fields


@dataclass(frozen=True)
class JobRecord:
    """One job record as the store holds it."""

    item_id: str
    title: str = ""
    phase: JobPhase | None = None
    task: str = ""
    schedule: str = ""
    timezone: str = ""
    invalid: str = ""
    version: int = 0
    run_count: int = 0
    signature: str = ""
    # Run control (decided by the poller from the optional attributes; '' where absent).
    overlap: str = ""
    concurrency_key: str = ""
    # Outcomes and freshness (kept by the run scripts and serve's freshness check).
    consecutive_failures: int = 0
    last_succeeded: str = ""  # Alloy DateTime text of the last success ('' = none yet)
    first_seen: str = ""  # when alloysync first saw the job (MaxAge counts from here before a success)
    max_age_seconds: float | None = None  # MaxAge, None = no freshness deadline
    overdue: bool = False
    notify: tuple[str, ...] = ()
    notify_on: str = ""
    waiting_runs: int = 0  # runs waiting for the job's running run (Overlap, backfill)
    backfill_waiting: int = 0  # backfill runs not started yet
    backfill_total: int = 0  # runs of the latest backfill
    backfill_span: str = ""

    @property
    def backfill_progress(self) -> str:
        """`backfill 3/6` while a backfill is under way ('' otherwise)."""
        if not self.backfill_total or not self.backfill_waiting:
            return ""
        return f"backfill {self.backfill_total - self.backfill_waiting}/{self.backfill_total}"

    view: JobView = JobView()

    @classmethod
    def from_hash(cls, item_id: str, fields: dict[str, str]) -> JobRecord:
        view_count = fields.get("view_run_count", "")
        return cls(
            item_id=item_id,
            title=fields.get("title", ""),
            phase=_phase(JobPhase, fields.get("state")),
            task=fields.get("task", ""),
            schedule=fields.get("schedule", ""),
            timezone=fields.get("timezone", ""),
            invalid=fields.get("invalid", ""),
            version=_int(fields.get("version")),
            run_count=_int(fields.get("run_count")),
            signature=fields.get("signature", ""),
            overlap=fields.get("overlap", ""),
            concurrency_key=fields.get("concurrency_key", ""),
            consecutive_failures=_int(fields.get("consecutive_failures")),
            last_succeeded=fields.get("last_succeeded", ""),
            first_seen=fields.get("first_seen", ""),
            max_age_seconds=_float(fields.get("max_age")),
            overdue=fields.get("overdue") == "1",
            notify=tuple(target for target in fields.get("notify", "").split(",") if target),
            notify_on=fields.get("notify_on", ""),
            backfill_total=_int(fields.get("backfill_total")),
            backfill_span=fields.get("backfill_span", ""),
            view=JobView(
                status=fields.get("view_status", ""),
                message=fields.get("view_message", ""),
                last_run_started=fields.get("view_last_run_started", ""),
                last_run_finished=fields.get("view_last_run_finished", ""),
                next_run=fields.get("view_next_run", ""),
                run_count=_int(view_count) if view_count else None,
                event=fields.get("view_event", ""),
                event_at=fields.get("view_event_at", ""),
            ),
        )


def view_hash(view: dict[str, Any]) -> dict[str, str]:
    """The `view_*` fields for the reported values in `view` (names of `JobView`'s fields)."""
    return {f"view_{name}": _view_text(value) for name, value in view.items()}


def _view_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return compact_json(value)

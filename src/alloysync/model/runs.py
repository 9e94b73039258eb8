"""Runs as the model sees them: their kinds, their deterministic ids, and what creating one takes.

A run id names what the run is one of (see docs/architecture.md, "Run ids"): equal ids mean the
same run, which is what makes creating a run idempotent (`state.runs`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from alloysync.model.times import format_alloy_datetime
from alloysync.settings import DEFAULT_MISSED_RUNS_WINDOW, MissedRunPolicy


class RunKind(StrEnum):
    NOW = "now"  # once, now: one run per definition version
    REQUEST = "req"  # RunRequested: one run per request
    AT = "at"  # run-at: one run per (job, time)
    CRON = "cron"  # recurring: one run per (job, scheduled time)
    BACKFILL = "backfill"  # a past cron fire run on request: shares the fire's run id (one run per fire)

    @property
    def context_name(self) -> str:
        """The name task code sees in `RunContext.kind`."""
        return {RunKind.REQUEST: "requested"}.get(self, self.value)


def run_id_for(
    kind: RunKind,
    item_id: str,
    *,
    version: int | None = None,
    request: int | None = None,
    scheduled_at: datetime | None = None,
) -> str:
    """The deterministic id of a run; equal ids mean the same run."""
    if kind is RunKind.NOW:
        return f"now:{item_id}:v{version}"
    if kind is RunKind.REQUEST:
        return f"req:{item_id}:{request}"
    if scheduled_at is None:
        raise ValueError(f"a {kind.value} run needs its scheduled time")
    prefix = RunKind.CRON.value if kind is RunKind.BACKFILL else kind.value  # a backfill run IS the fire
    return f"{prefix}:{item_id}:{format_alloy_datetime(scheduled_at)}"


def task_label(steps: tuple[str, ...] | list[str]) -> str:
    """A job's Task text for its steps: `a | b | c`."""
    return " | ".join(steps)


@dataclass(frozen=True)
class RunRequest:
    """Everything needed to create a run."""

    run_id: str
    item_id: str
    kind: RunKind
    steps: tuple[str, ...]
    params: dict[str, Any]
    source: str  # poller, request, scheduler: for metrics and logs
    reason: str  # shown in the Message attribute while queued
    scheduled_at: datetime | None = None
    next_run: datetime | None = None  # the following fire of a cron job, for NextRun
    recurring: bool = False
    missed_runs: MissedRunPolicy = MissedRunPolicy.ONCE
    missed_window: float = DEFAULT_MISSED_RUNS_WINDOW
    version: int | None = None  # the job's definition version the run belongs to
    later_params: tuple[dict[str, Any], ...] = ()  # options of steps 2..
    overlap: str = ""  # the job's Overlap policy for this run ('' = allow: no overlap check)
    concurrency_key: str = ""  # runs sharing a key run at most N at once ('' = no key)
    title: str = ""  # the job's title, for the run's context
    progress: str = ""  # shown with the run's status, e.g. "backfill 3/6"

    @property
    def task_label(self) -> str:
        return task_label(self.steps)

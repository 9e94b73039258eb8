"""The JSON shapes of jobs and runs that the jobs page and its API show (`serve/web.py` serves them,
`serve/pages.py` renders them, `serve/samplers.py` reads a job's status from them): pure functions
of the state records, so the page, the API and the per-job metrics cannot disagree."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from alloysync.model.freshness import max_age_text
from alloysync.model.times import parse_alloy_datetime
from alloysync.state.jobs import RunOutcome
from alloysync.state.records import JobPhase, JobRecord, RunPhase, RunRecord


def job_summary(job: JobRecord) -> dict[str, Any]:
    """The jobs page / API view of a job record."""
    if job.phase is JobPhase.DISABLED:
        status = "Paused"
    else:
        status = job.view.status or ("Invalid" if job.phase is JobPhase.INVALID else "")
    started = job.view.last_run_started
    finished = job.view.last_run_finished
    return {
        "item_id": job.item_id,
        "title": job.title,
        "task": job.task,
        "schedule": job.schedule,
        "timezone": job.timezone,
        "status": status,
        "message": job.view.message or job.invalid,
        "last_run_started": started,
        "last_run_finished": finished,
        "last_run_duration": _seconds_between(started, finished),
        "next_run": job.view.next_run,
        "run_count": job.view.run_count or job.run_count,
        "version": job.version,
        # Run control and outcomes ('' / 0 / False where the job has none).
        "overlap": job.overlap,
        "concurrency_key": job.concurrency_key,
        "waiting_runs": job.waiting_runs,
        "backfill": job.backfill_progress,
        "consecutive_failures": job.consecutive_failures,
        "last_succeeded": job.last_succeeded,
        "overdue": job.overdue,
        "max_age": max_age_text(job.max_age_seconds),
        "notify": ", ".join(_shown_target(target) for target in job.notify),
    }


def _shown_target(target: str) -> str:
    """A Notify target for the page: an address as is, a URL by its origin only (its path or query
    may carry a token)."""
    parts = urlsplit(target)
    if parts.scheme in ("http", "https") and parts.netloc:
        return f"{parts.scheme}://{parts.netloc}/…"
    return target


def run_summary(run: RunRecord) -> dict[str, Any]:
    """The job page / API view of a run record. `attempts` are those of the step that needed most
    (retries + 1): a pipeline whose steps each ran once shows 1."""
    shows_error = run.phase in (
        RunPhase.FAILED, RunPhase.SKIPPED, RunPhase.CANCELLED, RunPhase.RUNNING, RunPhase.QUEUED
    )  # fmt: skip
    return {
        "run_id": run.run_id,
        "kind": run.kind,
        "task": run.task,
        "state": run.phase.value if run.phase else "",
        "scheduled_at": run.scheduled_at,
        "created": run.created,
        "started": run.started,
        "finished": run.finished,
        "duration": _seconds_between(run.started, run.finished),
        "attempts": run.attempts,
        "error": run.error if shows_error else "",
    }


def outcome_summary(outcome: RunOutcome) -> dict[str, Any]:
    """The jobs page's view of a run in a strip (the keys of `run_summary` that it needs)."""
    return {
        "run_id": outcome.run_id,
        "state": outcome.state,
        "scheduled_at": outcome.scheduled_at,
        "created": outcome.created,
        "started": outcome.started,
        "duration": _seconds_between(outcome.started, outcome.finished),
        "error": outcome.error if outcome.state != RunPhase.SUCCEEDED else "",
    }


def run_detail(run: RunRecord, log: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The run page / API view of one run: its summary with its item, steps, worker, step results
    and log (`log`: `{"at", "level", "text"}` lines, empty while none are kept)."""
    detail = run_summary(run)
    detail.update(
        {
            "item_id": run.item_id,
            "steps": list(run.steps),
            "step": run.step,
            "worker": run.worker,
            "source": run.source,
            "version": run.version,
            "step_results": [
                {"step": step, "task": run.steps[step] if step < len(run.steps) else "", "result": result}
                for step, result in sorted(run.step_results.items())
            ],
        }
    )
    detail["log"] = log or []
    return detail


def _seconds_between(start: str, end: str) -> float | None:
    if not start or not end:
        return None
    seconds = (parse_alloy_datetime(end) - parse_alloy_datetime(start)).total_seconds()
    return round(seconds, 3) if seconds >= 0 else None

"""The `alloysync_run` actor: executes one step of a run on a worker and records the outcome.

Flow for message (run_id, step): read the run and claim the step in one script (see
state/claims.py) → call the registered task with
the job's Params (first step) or the previous step's result → record the result atomically with
its event → hand over to the next step, or end the run. A failing attempt is re-raised so
Dramatiq's Retries middleware schedules the next attempt with backoff; the attempt that exhausts
`max_retries` (a per-task option carried by the message) ends the run as Failed instead — a failure
is reported once, never once per attempt. Task code is at-least-once: a worker killed mid-step makes
the step run again on another worker.

Per run, the bookkeeping is two scripts (claim, finish with its log lines) and one INFO line (the
run's end; the step's start is DEBUG). Lines below the configured level are not built at all
(`logger.isEnabledFor`), since structlog would run its processors before the level check.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from dramatiq import Message
from dramatiq.middleware import CurrentMessage
from dramatiq.middleware.time_limit import TimeLimit, TimeLimitExceeded

from alloysync.enqueue import RunQueue
from alloysync.log import get_logger
from alloysync.metrics import RUN_DURATION, RUNS, RUNS_STARTED, SCHEDULE_LATENESS
from alloysync.model.events import Event, Status
from alloysync.model.outcomes import PipelineEnds, StepSleeps
from alloysync.model.registry import TaskRegistry
from alloysync.model.results import bounded_result, summarize_result, truncate
from alloysync.model.times import format_alloy_datetime, parse_alloy_datetime, utc_now
from alloysync.settings import Settings
from alloysync.state.claims import Claim, Claims, StepClaim
from alloysync.state.records import RunRecord
from alloysync.state.run_logs import encode_lines
from alloysync.worker.execution import STEPS, RunCancelled, RunningStep, call_step
from alloysync.worker.run_log import RunLogCapture
from alloysync.worker.sleeps import sleep_step

logger = get_logger(__name__)


DEADLINE_MARGIN_MS = 60_000  # slack on a step's deadline in runs:running


class PermanentRunError(Exception):
    """A failure that retrying cannot fix (unknown task, result not JSON)."""


@dataclass
class WorkerContext:
    """What the actor needs; installed once per worker process by worker/boot.py."""

    settings: Settings
    registry: TaskRegistry
    claims: Claims
    runs: RunQueue
    worker_name: str
    time_limit: TimeLimit | None = None
    run_log: RunLogCapture | None = None  # keeps each step's log lines with its run

    def disarm_time_limit(self) -> None:
        """Stop Dramatiq's time limit for the step running in this thread."""
        if self.time_limit is not None:
            self.time_limit.manager.remove_timeout(threading.get_ident())  # type: ignore[no-untyped-call]


_context: WorkerContext | None = None


def install(context: WorkerContext) -> None:
    global _context
    _context = context


def run_step(run_id: str, step: int) -> None:
    """The actor function (registered as `alloysync_run` in worker/boot.py).

    Log lines carry the run id, step and message id through the log context (worker/middleware.py)."""
    context = _context
    assert context is not None, "worker/boot.py installs the WorkerContext before messages are processed"
    message = CurrentMessage.get_current_message()
    assert message is not None
    now = utc_now()
    claimed = context.claims.load_and_claim(
        StepClaim(
            run_id,
            step,
            message.message_id,
            format_alloy_datetime(now),
            context.worker_name,
            _deadline_ms(message.options, now),
            context.settings.concurrency_limits,
        )
    )
    claim, run = claimed.claim, claimed.run
    if run is None:
        logger.warning("dropping message for an unknown run")
        return
    task_label = run.task_label
    if not claim.should_run:
        if logger.isEnabledFor(logging.INFO):
            logger.info("dropping message", reason=claim.value)
        if claim is Claim.CANCELLED:
            RUNS.labels(task=task_label, outcome="skipped").inc()
        elif claim is Claim.CALLED_OFF:
            RUNS.labels(task=task_label, outcome="cancelled").inc()
        _send_admitted(context, claimed.admitted)
        return
    if step == 0 and not run.started:
        # The record was read before the claim set its start: the run started now.
        run = replace(run, started=format_alloy_datetime(now))
        RUNS_STARTED.labels(task=task_label).inc()
        if run.scheduled_at:
            lateness = (now - parse_alloy_datetime(run.scheduled_at)).total_seconds()
            SCHEDULE_LATENESS.labels(task=task_label).observe(max(0.0, lateness))
    attempt = int(message.options.get("retries", 0)) + 1
    if context.run_log is not None:  # from here on, this thread's lines are kept with the run
        step_log = context.run_log.begin(run_id, step)
        if step == 0 and claim is Claim.FIRST:
            context.run_log.note(step_log, f"created {run.created} by the {run.source or 'poller'}")
        context.run_log.note(
            step_log, f"step {step + 1} claimed by worker {context.worker_name} (attempt {attempt})"
        )
    if logger.isEnabledFor(logging.DEBUG):  # a run's one INFO line is its end
        logger.debug("step started", task=run.steps[step], attempt=attempt, claim=claim.value)
    running = STEPS.enter(run_id)
    try:
        try:
            result_json = _execute(context, run, step, attempt, running)
        finally:
            context.disarm_time_limit()  # the step is over; only its bookkeeping is left
            STEPS.leave(running)
    except RunCancelled:
        reason = run.cancel_reason or context.claims.cancel_reason(run_id) or "Cancelled"
        _record(lambda: _end_cancelled(context, run, message.message_id, reason))
        return
    except StepSleeps as sleeps:  # wait.until: park the run, send this step again for later
        parked = sleeps  # the except clause unbinds `sleeps`; the closure keeps this name
        _record(lambda: sleep_step(context, run, step, message, parked))
        return
    except PipelineEnds as ending:  # the run ends here, succeeded; later steps do not run
        ended = replace(run, steps=run.steps[: step + 1])
        ended_json = json.dumps(ending.result, separators=(",", ":"), allow_nan=False, default=str)
        _record(lambda: _end_step(context, ended, step, message, ended_json))
        return
    except PermanentRunError as error:
        reason = str(error)
        _record(lambda: _end_failed(context, run, step, message.message_id, reason, attempts=1))
        return
    except (Exception, TimeLimitExceeded) as error:
        text = _describe(error, run.steps[step], message.options.get("time_limit"))
        if attempt <= int(message.options.get("max_retries", 0)):
            context.claims.record_attempt_error(run_id, f"attempt {attempt}: {text}")
            logger.warning("step failed, will retry", task=run.steps[step], attempt=attempt, error=text)
            raise
        _record(lambda: _end_failed(context, run, step, message.message_id, text, attempts=attempt))
        return
    _record(lambda: _end_step(context, run, step, message, result_json))


def _record(bookkeeping: Callable[[], None]) -> None:
    """Record the outcome of a step that is over. A time-limit exception that was already on its
    way when the step returned must not cut the recording short (the run would stay "running")."""
    while True:
        try:
            bookkeeping()
            return
        except TimeLimitExceeded:
            logger.info("the time limit passed as the step returned; recording its outcome anyway")


def _deadline_ms(options: dict[str, Any], now: datetime) -> int:
    """When this step must be over, however its retries go: past it, the run lost its worker."""
    remaining = max(0, int(options.get("max_retries", 0)) - int(options.get("retries", 0)))
    time_limit = int(options.get("time_limit", 600_000))
    max_backoff = int(options.get("max_backoff", 300_000))
    budget = time_limit * (remaining + 1) + max_backoff * remaining + DEADLINE_MARGIN_MS
    return int(now.timestamp() * 1000) + int(budget)


def _execute(context: WorkerContext, run: RunRecord, step: int, attempt: int, running: RunningStep) -> str:
    registered = context.registry.get(run.steps[step])
    if registered is None:
        raise PermanentRunError(
            f"task {run.steps[step]!r} is not registered on this worker: check ALLOYSYNC_TASK_MODULES "
            f"(registered: {', '.join(context.registry.names()) or 'none'})"
        )
    # The first step gets the job's Params; a later step the previous step's result and its options.
    result = call_step(registered, run, step, attempt, context.settings, running)
    try:
        return json.dumps(result, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as error:
        raise PermanentRunError(
            f"task {registered.name!r} returned a value that is not JSON ({error}): return dicts, lists, "
            "strings, numbers, booleans or None"
        ) from None


def _end_step(
    context: WorkerContext, run: RunRecord, step: int, message: Message[Any], result_json: str
) -> None:
    now = utc_now()
    task_label = run.task_label
    duration = _duration(run, now)
    result = json.loads(result_json)
    summary = summarize_result(result, context.settings.message_max_chars - 60)
    if run.recurring:
        status, text = (
            Status.SCHEDULED,
            f"Last run {format_alloy_datetime(now)} succeeded in {duration:.1f} s: {summary}",
        )
    else:
        status, text = Status.SUCCEEDED, f"Succeeded in {duration:.1f} s: {summary}"
    event = Event(
        run.item_id,
        "succeeded",
        {
            "status": status,
            "message": text,
            "result": bounded_result(result, context.settings.result_max_bytes),
            "last_run_finished": format_alloy_datetime(now),
        },
        run_id=run.run_id,
        details={"task": task_label, "outcome": "succeeded", "duration": round(duration, 3)},
    )
    now_ms = int(time.time() * 1000)
    # The step's log lines not appended yet go with its outcome, in the same script.
    log_lines = encode_lines(context.run_log.take_current()) if context.run_log is not None else []
    max_lines = context.settings.run_log_max_lines
    # The script acknowledges the message too: Dramatiq's own ack then costs no round trip.
    broker = context.runs.broker
    ack = broker.message_ack(message)
    outcome = context.claims.finish_step_and_admit(
        run, step, message.message_id, format_alloy_datetime(now), result_json, now_ms, event,
        log_lines, max_lines, ack,
    )  # fmt: skip
    count = int(outcome.code)
    if count == -1:
        logger.warning("step result discarded: another delivery owns the step now")
        return
    if ack is not None:
        broker.acked_by_script.add(ack.storage_id)
    if count == -2:
        if logger.isEnabledFor(logging.INFO):
            logger.info("run cancelled between steps", step=step)
        RUNS.labels(task=task_label, outcome="cancelled").inc()
        _send_admitted(context, outcome.admitted, outcome.score)
        return
    if count == 0:
        # Hand over to the next step. If this fails for good, the run is in runs:pending and
        # serve's recovery sends the step (enqueue.py).
        context.claims.patiently("send next step", lambda: context.runs.send_step(run, step + 1))
        context.claims.patiently("clear pending", lambda: context.runs.forget_pending(run.run_id, now_ms))
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("step succeeded", next_step=step + 1)
        return
    RUNS.labels(task=task_label, outcome="succeeded").inc()
    RUN_DURATION.labels(task=task_label).observe(duration)
    if logger.isEnabledFor(logging.INFO):
        logger.info("run succeeded", task=task_label, duration=round(duration, 3), run_count=count)
    _send_admitted(context, outcome.admitted, outcome.score)


def _end_failed(
    context: WorkerContext, run: RunRecord, step: int, message_id: str, error: str, attempts: int
) -> None:
    now = utc_now()
    task_label = run.task_label
    duration = _duration(run, now)
    where = f" at step {step + 1}/{len(run.steps)} ({run.steps[step]})" if len(run.steps) > 1 else ""
    tries = f" after {attempts} attempts" if attempts > 1 else ""
    tail = context.run_log.last_lines() if context.run_log is not None else []
    text = failure_message(f"Failed{where}{tries}: {error}", tail, context.settings.message_max_chars)
    event = Event(
        run.item_id,
        "failed",
        {"status": Status.FAILED, "message": text, "last_run_finished": format_alloy_datetime(now)},
        run_id=run.run_id,
        details={"task": task_label, "outcome": "failed", "duration": round(duration, 3), "error": error},
    )
    outcome = context.claims.fail_and_admit(run, message_id, format_alloy_datetime(now), error, event)
    if outcome.code == -1:
        logger.warning("failure discarded: another delivery owns the step now")
        return
    RUNS.labels(task=task_label, outcome="failed").inc()
    RUN_DURATION.labels(task=task_label).observe(duration)
    logger.warning("run failed", task=task_label, error=error, attempts=attempts)
    _send_admitted(context, outcome.admitted, outcome.score)


def failure_message(head: str, log_tail: list[str], limit: int) -> str:
    """A failed run's Message: what failed, ending with the last lines of its log, in `limit` chars."""
    if not log_tail:
        return truncate(head, limit)
    lines: list[str] = []
    budget = limit // 2  # at most half for the log; the error comes first
    for line in reversed(log_tail):
        if sum(len(kept) + 1 for kept in lines) + len(line) + 1 > budget:
            break
        lines.insert(0, line)
    if not lines:
        return truncate(head, limit)
    ending = "\nLast log lines:\n" + "\n".join(lines)
    return truncate(head, limit - len(ending)) + ending


def _end_cancelled(context: WorkerContext, run: RunRecord, message_id: str, reason: str) -> None:
    """The step was interrupted because the run was cancelled: end it, never retried."""
    if context.run_log is not None and (step_log := context.run_log.current()) is not None:
        context.run_log.note(step_log, f"interrupted: {reason}", level="warning")
    outcome = context.claims.cancel(run, message_id, format_alloy_datetime(utc_now()), reason)
    if outcome.code == -1:
        logger.warning("cancellation discarded: another delivery owns the step now")
        return
    RUNS.labels(task=run.task_label, outcome="cancelled").inc()
    if logger.isEnabledFor(logging.INFO):
        logger.info("run cancelled", task=run.task_label, reason=reason)
    _send_admitted(context, outcome.admitted, outcome.score)


def _send_admitted(context: WorkerContext, run_ids: tuple[str, ...], score: int = 0) -> None:
    """Send the first step of the runs whose turn this run's end (or cancel) gave them. If this
    fails, they are in runs:pending and serve's recovery sends them (enqueue.py)."""
    if run_ids:
        context.claims.patiently("send admitted runs", lambda: context.runs.send_admitted(run_ids, score))


def _duration(run: RunRecord, now: datetime) -> float:
    started = run.started or run.step_started
    if not started:
        return 0.0
    return max(0.0, (now - parse_alloy_datetime(started)).total_seconds())


def _describe(error: BaseException, task_name: str, time_limit_ms: Any) -> str:
    if isinstance(error, TimeLimitExceeded):
        limit = f" of {int(time_limit_ms) / 1000:g} s" if time_limit_ms else ""
        return f"{task_name} exceeded its time limit{limit}"
    text = str(error).strip()
    return f"{type(error).__name__}: {text}" if text else type(error).__name__

"""A step that sleeps (`StepSleeps`, raised by `wait.until`): park the run, re-send the step later.

No worker thread waits: the run is parked (state/parking.py: queued at the same step, no owner, in
`runs:pending` for recovery) and the same Dramatiq message — same message id, same retries, minus
the fire's `scheduled_at`, which would make the wake look like a stale cron fire — is enqueued with
a delay until the wake time. Dramatiq keeps a delayed message in Redis (its delay queue) until it
is due; a worker that dies while holding one gives it back through the broker's maintenance
(broker.py). When it arrives it claims the step like a first delivery and the task runs again:
`wait.until` remembers its wake time per run and step (state/builtin_memory.py), so it now returns.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dramatiq import Message
from dramatiq.common import q_name

from alloysync.log import get_logger
from alloysync.metrics import RUNS
from alloysync.model.events import Event, Status
from alloysync.model.outcomes import StepSleeps
from alloysync.model.results import truncate
from alloysync.model.times import format_alloy_datetime, utc_now
from alloysync.state.parking import Parking
from alloysync.state.records import RunRecord

if TYPE_CHECKING:
    from alloysync.worker.actor import WorkerContext

logger = get_logger(__name__)

# Options of the delivered message that must not travel with the wake-up message.
_DROPPED_OPTIONS = ("scheduled_at", "eta", "redis_message_id")


def sleep_step(
    context: WorkerContext, run: RunRecord, step: int, message: Message[Any], sleeps: StepSleeps
) -> None:
    """Park step `step` of `run` until `sleeps.until` and send its message again for then."""
    now = utc_now()
    wake = max(sleeps.until, now)
    delay_ms = int((wake - now).total_seconds() * 1000)
    where = f"step {step + 1}/{len(run.steps)} ({run.steps[step]})" if len(run.steps) > 1 else run.steps[step]
    text = f"Running: {where} sleeps until {format_alloy_datetime(wake)}"
    if sleeps.reason:
        text += f" ({sleeps.reason})"
    event = Event(
        run.item_id,
        "sleeping",
        {"status": Status.RUNNING, "message": truncate(text, context.settings.message_max_chars)},
        run_id=run.run_id,
        details={"task": run.task_label, "step": step, "wake": format_alloy_datetime(wake)},
    )
    parking = Parking(context.claims.client, context.claims)
    wake_ms = int(wake.timestamp() * 1000)
    outcome = parking.park(run, step, message.message_id, format_alloy_datetime(now), wake_ms, event)
    if outcome.code == -1:
        logger.warning("sleep discarded: another delivery owns the step now")
        return
    if outcome.code == -2:
        RUNS.labels(task=run.task_label, outcome="cancelled").inc()
        logger.info("run cancelled as its step went to sleep", task=run.task_label)
        if outcome.admitted:
            admitted, score = outcome.admitted, outcome.score
            context.claims.patiently(
                "send admitted runs", lambda: context.runs.send_admitted(admitted, score)
            )
        return
    options = {name: value for name, value in message.options.items() if name not in _DROPPED_OPTIONS}
    wake_up: Message[Any] = Message(
        queue_name=q_name(message.queue_name),
        actor_name=message.actor_name,
        args=tuple(message.args),
        kwargs=dict(message.kwargs),
        options=options,
        message_id=message.message_id,
        message_timestamp=message.message_timestamp,
    )
    context.claims.patiently(
        "send the sleeping step", lambda: context.runs.broker.enqueue(wake_up, delay=delay_ms)
    )
    logger.info("step sleeps", until=format_alloy_datetime(wake), seconds=round(delay_ms / 1000, 1))

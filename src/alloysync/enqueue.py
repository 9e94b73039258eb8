"""Enqueueing runs: creating their records (through `state.runs`) and putting their steps on
Dramatiq queues. The poller, the scheduler, the worker (a pipeline's next step) and serve's
recovery loop all go through `RunQueue`.

Guarantee (store → queue): **at-least-once enqueue, exactly-once run record**. `submit` creates
the run record with set-if-absent semantics (see `state/runs.py`); a caller that finds the record
already there stops (this is what makes two schedulers, a restarted scheduler, or a replayed poll
harmless). The creator then enqueues the Dramatiq message and removes the id from `runs:pending`.
If it dies in between, `recover()` (run periodically by `serve`) sends the message again; a second
message for the same step is dropped by the worker's claim (`state/claims.py`), so the recovery
can never make a step run twice side by side.

Pipelines: each step is its own message (own queue, retries and time limit); a finished step hands
over to the next through the same pending/recover mechanism.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import redis
from dramatiq import Broker, Message

from alloysync.log import get_logger
from alloysync.metrics import RUNS_ENQUEUED
from alloysync.model.events import Event, Status
from alloysync.model.registry import DEFAULT_QUEUE, TaskRegistry
from alloysync.model.runs import RunRequest
from alloysync.model.times import format_alloy_datetime
from alloysync.settings import Settings
from alloysync.state.records import RunPhase, RunRecord
from alloysync.state.runs import RunStore

logger = get_logger(__name__)

ACTOR_NAME = "alloysync_run"
RECOVER_AFTER = 30.0  # seconds a run may sit in runs:pending before recover() re-sends it


class RunQueue:
    """Creates runs and sends their step messages (synchronous: call it off the event loop).

    `client` must decode responses (`decode_responses=True`).
    """

    def __init__(
        self, client: redis.Redis, broker: Broker, registry: TaskRegistry, settings: Settings
    ) -> None:
        self.client = client
        self.store = RunStore(client)
        self.broker = broker
        self.registry = registry
        self.settings = settings

    def submit(self, request: RunRequest, lease: str = "") -> bool:
        """Create the run and enqueue its first step; False when the run already existed."""
        return self.submit_many([request], lease)[0]

    def submit_many(self, requests: Sequence[RunRequest], lease: str = "") -> list[bool]:
        """`submit` for many runs in a few round trips (a scheduler pass firing a thousand jobs).

        The run records are created by one pipelined batch of the create script; each created run's
        message is then enqueued, and the runs leave runs:pending together. The guarantee is the
        same as one by one: a crash in between leaves the runs pending for `recover()`.

        With `lease` (the poller's), nothing is created unless it is still the poller's lease."""
        new_runs = [RunStore.new_run(request, _queued_event(request)) for request in requests]
        now_ms = int(time.time() * 1000)
        created = self.store.create(new_runs, now_ms, self.settings.run_history, lease)
        sent: list[tuple[str, int | float]] = []
        for new_run, was_created in zip(new_runs, created, strict=True):
            if was_created:
                self.send_step(RunRecord.from_hash(new_run.record), 0)
                RUNS_ENQUEUED.labels(source=new_run.request.source).inc()
                sent.append((new_run.request.run_id, now_ms))
        self.store.forget_pending(sent)
        return created

    def forget_pending(self, run_id: str, score_ms: int) -> None:
        """A step was sent: take its run out of runs:pending, unless it was re-added since."""
        self.store.forget_pending([(run_id, score_ms)])

    def send_next_step(self, run_id: str, step: int) -> Message[Any]:
        """Put step `step` of a run on its task's queue, reading the run's record."""
        run = self.store.load(run_id)
        if run is None:
            raise LookupError(f"run {run_id} has no record (expired?)")
        return self.send_step(run, step)

    def send_step(self, run: RunRecord, step: int) -> Message[Any]:
        """Put one step of a run on its task's queue. Safe to repeat (see module docstring)."""
        registered = self.registry.get(run.steps[step])
        max_retries = self.settings.task_max_retries
        time_limit = self.settings.task_time_limit
        queue = DEFAULT_QUEUE
        if registered is not None:
            queue = registered.queue
            max_retries = max_retries if registered.max_retries is None else registered.max_retries
            time_limit = time_limit if registered.time_limit is None else registered.time_limit
        options: dict[str, Any] = {
            "max_retries": max_retries,
            "time_limit": int(time_limit * 1000),
            "min_backoff": int(self.settings.task_min_backoff * 1000),
            "max_backoff": int(self.settings.task_max_backoff * 1000),
        }
        if step == 0 and run.scheduled_at:
            # periodiq's convention: a fire carries the time it was scheduled for.
            options["scheduled_at"] = run.scheduled_at
        message: Message[Any] = Message(
            queue_name=queue, actor_name=ACTOR_NAME, args=(run.run_id, step), kwargs={}, options=options
        )
        return self.broker.enqueue(message)

    def recover(self, older_than: float = RECOVER_AFTER) -> int:
        """Re-send steps of runs left in runs:pending by a process that died, and of runs whose
        step is past its deadline in runs:running (its worker and its message are gone); returns
        how many steps were sent."""
        now_ms = int(time.time() * 1000)
        for run_id, deadline in self.store.overdue(now_ms):
            if self.store.reap(run_id, deadline):
                logger.warning("run overdue: its worker was lost; sending it again", run_id=run_id)
        resent = 0
        for run_id, score in self.store.pending_before(int((time.time() - older_than) * 1000)):
            run = self.store.load(run_id)
            if run is not None and run.phase in (RunPhase.QUEUED, RunPhase.RUNNING):
                self.send_step(run, run.step)
                RUNS_ENQUEUED.labels(source="recovery").inc()
                resent += 1
            self.store.forget_pending([(run_id, score)])
        return resent


def _queued_event(request: RunRequest) -> Event:
    return Event(
        request.item_id,
        "queued",
        {
            "status": Status.QUEUED,
            "message": request.reason,
            "next_run": format_alloy_datetime(request.next_run) if request.next_run else None,
        },
        run_id=request.run_id,
        details={"task": request.task_label, "kind": request.kind.value},
    )

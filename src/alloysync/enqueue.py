"""Enqueueing runs: creating their records (through `state.runs`) and putting their steps on
Dramatiq queues. The poller, the scheduler, the worker (a pipeline's next step) and serve's
recovery loop all go through `RunQueue`.

Guarantee (store → queue): **exactly-once run record; its first message with it, or at-least-once
through recovery**. `submit` creates the run record with set-if-absent semantics (see
`state/runs.py`); a caller that finds the record already there stops (this is what makes two
schedulers, a restarted scheduler, or a replayed poll harmless). A run admitted at creation gets
its first message in the same script, so nothing can come between the two. Every other send (a run
admitted later, when the run it waited for ended; a pipeline's next step) files the run in
`runs:pending` first, in the script that admits it, then enqueues the message and removes the id
from `runs:pending`. If the sender dies in between, `recover()` (run periodically by `serve`) sends
the message again — unless Dramatiq still holds the first one: a step's first message has an id
derived from the run and step, so recovery can look it up — and a second message for the same step
is dropped by the worker's claim (`state/claims.py`), so the recovery can never make a step run
twice side by side.

Overlap and backfill are enforced when a run is created (create_run.lua, with the job's index of
active runs): a run is admitted (its first step is sent), waits for the job's running run (it is
admitted, and sent, when that run ends: by the worker that ended it, or by recovery), or is dropped
by Overlap skip (recorded as skipped, so the fire never runs and its id stays used).

Pipelines: each step is its own message (own queue, retries and time limit); a finished step hands
over to the next through the same pending/recover mechanism.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from typing import Any

import redis
from dramatiq import Message
from dramatiq.common import current_millis

from alloysync.broker import STORAGE_ID_OPTION, AlloysyncBroker
from alloysync.log import get_logger
from alloysync.metrics import OVERLAP_SKIPS, RUNS_ENQUEUED
from alloysync.model.events import Event, Status
from alloysync.model.registry import DEFAULT_QUEUE, TaskRegistry
from alloysync.model.runs import RunKind, RunRequest
from alloysync.model.times import format_alloy_datetime, now_iso
from alloysync.settings import Settings
from alloysync.state import scripts
from alloysync.state.queue_stats import message_waiting
from alloysync.state.records import RunPhase, RunRecord, new_run_hash
from alloysync.state.runs import Created, FirstMessage, NewRun, RunStore

logger = get_logger(__name__)

ACTOR_NAME = "alloysync_run"
RECOVER_AFTER = 30.0  # seconds a run may sit in runs:pending before recover() re-sends it


class RunQueue:
    """Creates runs and sends their step messages (synchronous: call it off the event loop).

    `client` must decode responses (`decode_responses=True`).
    """

    def __init__(
        self, client: redis.Redis, broker: AlloysyncBroker, registry: TaskRegistry, settings: Settings
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
        """`submit` for many runs in one round trip (a scheduler pass firing a thousand jobs, a
        page of the poller).

        Each run's record and, when it is admitted at once, its first step's message are written
        by one script (create_run.lua, a call per CREATE_BATCH runs, pipelined): no crash can
        leave a created run without its message. The broker's before-enqueue hooks run for every
        run's message, its after-enqueue hooks for the messages filed. Runs admitted because Overlap
        replace cancelled others go through runs:pending (`send_admitted`).

        With `lease` (the poller's), nothing is created unless it is still the poller's lease."""
        if not requests:
            return []
        broker = self.broker
        new_runs: list[NewRun] = []
        messages: list[Message[Any]] = []
        for request in requests:
            record = new_run_hash(request)
            message = self._first_message(RunRecord.from_hash(record), 0)
            broker.emit_before("enqueue", message, None)
            messages.append(message)
            new_runs.append(_new_run(request, record, self._filed(message)))
        now_ms = int(time.time() * 1000)
        creations = self.store.create(new_runs, now_ms, self.settings.run_history, lease)
        admitted: list[str] = []
        for new_run, message, creation in zip(new_runs, messages, creations, strict=True):
            request = new_run.request
            if creation.created is Created.ADMITTED:
                broker.emit_after("enqueue", message, None)
                RUNS_ENQUEUED.labels(source=request.source).inc()
            elif creation.created is Created.DROPPED:
                OVERLAP_SKIPS.labels(task=request.task_label).inc()
                logger.info(
                    "fire skipped by the overlap policy", run_id=request.run_id, overlap=request.overlap
                )
            admitted += creation.admitted
        self.send_admitted(admitted, now_ms)
        return [creation.created is not Created.EXISTED for creation in creations]

    def send_admitted(self, run_ids: Sequence[str], score: int) -> None:
        """Send the first step of runs a script admitted (their turn came), then take them out of
        runs:pending (where `score` filed them: a crash in between leaves them to recovery)."""
        if not run_ids:
            return
        steps: list[tuple[RunRecord, int]] = []
        for run_id in run_ids:
            run = self.store.load(run_id)
            if run is not None and run.phase is RunPhase.QUEUED:
                steps.append((run, run.step))
                RUNS_ENQUEUED.labels(source="admitted").inc()
        self.send_first_steps(steps)
        self.store.forget_pending([(run.run_id, score) for run, _step in steps])

    def forget_pending(self, run_id: str, score_ms: int) -> None:
        """A step was sent: take its run out of runs:pending, unless it was re-added since."""
        self.store.forget_pending([(run_id, score_ms)])

    def send_next_step(self, run_id: str, step: int) -> Message[Any]:
        """Put step `step` of a run on its task's queue, reading the run's record."""
        run = self.store.load(run_id)
        if run is None:
            raise LookupError(f"run {run_id} has no record (expired?)")
        return self.send_step(run, step)

    def send_step(self, run: RunRecord, step: int, *, again: bool = False) -> Message[Any]:
        """Put one step of a run on its task's queue. Safe to repeat (see module docstring).

        The first message of a step has an id derived from the run and the step (`first_message_id`),
        so recovery can tell whether Dramatiq still holds it; a message sent `again` has a new id."""
        message = self._message(run, step)
        if not again:
            message = message.copy(options={STORAGE_ID_OPTION: first_message_id(run.run_id, step)})
        return self.broker.enqueue(message)

    def send_first_steps(self, steps: Sequence[tuple[RunRecord, int]]) -> None:
        """`send_step` (first messages) for many steps in one round trip: each message is filed
        under its storage id by the dispatch-script call `AlloysyncBroker.enqueue` makes, the calls
        pipelined; the broker's enqueue hooks run for each message as they do one by one."""
        if not steps:
            return
        broker = self.broker
        filed = [self._first_message(run, step) for run, step in steps]
        for message in filed:
            broker.emit_before("enqueue", message, None)
        calls: list[scripts.ScriptCall] = [
            ([broker.namespace], _enqueue_args(broker, message)) for message in filed
        ]
        scripts.call_each(broker.scripts["dispatch"], calls)
        for message in filed:
            broker.emit_after("enqueue", message, None)

    def _first_message(self, run: RunRecord, step: int) -> Message[Any]:
        """The first message of a step, filed under the storage id derived from the run and step."""
        storage_id = first_message_id(run.run_id, step)
        return self._message(run, step).copy(
            options={STORAGE_ID_OPTION: storage_id, "redis_message_id": storage_id}
        )

    def _filed(self, message: Message[Any]) -> FirstMessage:
        """Where and how the broker files `message` (for create_run.lua to file it)."""
        queue_key, messages_key = self.broker.queue_keys(message.queue_name)
        storage_id = str(message.options[STORAGE_ID_OPTION])
        return FirstMessage(queue_key, messages_key, storage_id, message.encode())

    def _message(self, run: RunRecord, step: int) -> Message[Any]:
        """The message of one step of a run, with its task's queue, retries and time limit."""
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
        return Message(
            queue_name=queue, actor_name=ACTOR_NAME, args=(run.run_id, step), kwargs={}, options=options
        )

    def queue_of(self, run: RunRecord, step: int) -> str:
        registered = self.registry.get(run.steps[step])
        return registered.queue if registered is not None else DEFAULT_QUEUE

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
                first = first_message_id(run_id, run.step)
                if run.owner or not message_waiting(self.client, self.queue_of(run, run.step), first):
                    self.send_step(run, run.step, again=True)
                    RUNS_ENQUEUED.labels(source="recovery").inc()
                    resent += 1
            self.store.forget_pending([(run_id, score)])
        return resent


def _enqueue_args(broker: AlloysyncBroker, message: Message[Any]) -> list[Any]:
    """The dispatch script's arguments for enqueueing `message` under its `redis_message_id`: the
    layout of `RedisBroker._dispatch` (dramatiq 1.17 to 2.x), maintenance off as on every
    alloysync broker."""
    return [
        "enqueue",
        current_millis(),
        message.queue_name,
        broker.broker_id,
        broker.heartbeat_timeout,
        broker.dead_message_ttl,
        0,
        broker._max_unpack_size(),  # type: ignore[no-untyped-call]
        message.options["redis_message_id"],
        message.encode(),
    ]


def first_message_id(run_id: str, step: int) -> str:
    """The storage id of the first message sent for step `step` of a run (see broker.py)."""
    return str(uuid.uuid5(_MESSAGE_NAMESPACE, f"{run_id}/{step}"))


_MESSAGE_NAMESPACE = uuid.UUID("5f0c3c55-7d0a-4a8e-9b0c-61a7a1e5e0aa")


def _new_run(request: RunRequest, record: dict[str, str], first_message: FirstMessage) -> NewRun:
    """The run's record, its first message, and its event for each way creating it can go (only
    the ways its Overlap policy allows: a run that allows overlap can only be admitted)."""
    next_run = format_alloy_datetime(request.next_run) if request.next_run else None
    details = {"task": request.task_label, "kind": request.kind.value}
    at = now_iso()
    when = (
        f"the run due at {format_alloy_datetime(request.scheduled_at)}" if request.scheduled_at else "a run"
    )

    def event(kind: str, **attributes: Any) -> Event:
        attributes["next_run"] = next_run
        return Event(request.item_id, kind, attributes, request.run_id, at=at, details=details)

    backfill = request.kind is RunKind.BACKFILL
    waiting = skipped = dropped = None
    if backfill or request.overlap in ("queue-one", "replace"):
        if backfill:
            waiting_text = (
                f"Waiting: {request.progress or 'backfill'} waits for the job's previous run to end"
            )
        else:
            waiting_text = f"Waiting: {when} waits for the previous run to end (Overlap {request.overlap})"
        waiting = event("waiting", status=Status.QUEUED, message=waiting_text)
    if request.overlap == "skip":
        skipped = event(
            "skipped", message=f"Skipped {when}: the previous run was still running (Overlap skip)"
        )
    if request.overlap == "queue-one":
        dropped = event(
            "skipped",
            message=f"Skipped {when}: a run was already waiting for the previous one (Overlap queue-one)",
        )
    return NewRun(
        request,
        record,
        queued=event("queued", status=Status.QUEUED, message=request.reason),
        first_message=first_message,
        waiting=waiting,
        skipped=skipped,
        dropped=dropped,
    )

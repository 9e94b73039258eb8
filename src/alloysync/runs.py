"""Runs: deterministic run ids, the run record in Redis, and putting a run's steps on Dramatiq queues.

Guarantee (store → queue): **at-least-once enqueue, exactly-once run record**.
`RunQueue.submit` runs one Lua script that, only if `run:{id}` does not exist yet, creates the run
record, adds the id to `runs:pending` and appends the `Queued` event; a caller that finds the
record already there stops (the idempotency key — this is what makes two schedulers, a restarted
scheduler, or a replayed poll harmless). The creator then enqueues the Dramatiq message and removes
the id from `runs:pending`. If it dies in between, `recover()` (run periodically by `serve`) sends
the message again; a second message for the same step is dropped by the worker's claim (see
`actors.py`), so the recovery can never make a step run twice side by side.

Pipelines: each step is its own message (own queue, retries and time limit); a finished step hands
over to the next through the same pending/recover mechanism.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import redis
from dramatiq import Broker, Message

from alloysync import keys
from alloysync.lease import LeaseLost
from alloysync.log import get_logger
from alloysync.metrics import RUNS_ENQUEUED
from alloysync.outbox import LUA_XADD_EVENT, Event, Status, format_time, now_iso
from alloysync.settings import MissedRunPolicy, Settings
from alloysync.tasks import DEFAULT_QUEUE, TaskRegistry

logger = get_logger(__name__)

ACTOR_NAME = "alloysync_run"
RECOVER_AFTER = 30.0  # seconds a run may sit in runs:pending before recover() re-sends it


class RunKind(StrEnum):
    NOW = "now"  # once, now: one run per definition version
    REQUEST = "req"  # RunRequested: one run per request
    AT = "at"  # run-at: one run per (job, time)
    CRON = "cron"  # recurring: one run per (job, scheduled time)


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
    return f"{kind.value}:{item_id}:{format_time(scheduled_at)}"


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
    missed_window: float = 86_400.0
    version: int | None = None  # the job's definition version the run belongs to

    @property
    def task_label(self) -> str:
        return " | ".join(self.steps)


_CREATE_RUN = (
    LUA_XADD_EVENT
    + """
-- KEYS: run, runs:pending, outbox, job:{item}:runs, lease (or '')
-- ARGV: run_id, now_ms, history_len, pair_count, pairs..., event fields (12), lease value (or '')
local lease_value = ARGV[#ARGV]
if lease_value ~= '' and redis.call('GET', KEYS[5]) ~= lease_value then return -1 end
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local pair_count = tonumber(ARGV[4])
local hash = {}
for i = 5, 4 + 2 * pair_count do hash[#hash + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(hash))
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call('XADD', KEYS[3], '*', unpack(event_fields(5 + 2 * pair_count)))
redis.call('LPUSH', KEYS[4], ARGV[1])
redis.call('LTRIM', KEYS[4], 0, tonumber(ARGV[3]) - 1)
return 1
"""
)


# Remove a pending entry only if nobody re-added it (a new score) since it was read.
_FORGET_PENDING = """
if redis.call('ZSCORE', KEYS[1], ARGV[1]) == ARGV[2] then return redis.call('ZREM', KEYS[1], ARGV[1]) end
return 0
"""

# A run whose step is past its deadline lost its worker and its message: put it back in line.
_REAP = """
-- KEYS: run, runs:running, runs:pending   ARGV: run_id, deadline as read, now_ms
if redis.call('ZSCORE', KEYS[2], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('ZREM', KEYS[2], ARGV[1])
if redis.call('HGET', KEYS[1], 'state') ~= 'running' then return 0 end
redis.call('HSET', KEYS[1], 'owner', '', 'state', 'queued', 'error', 'its worker was lost; sent again')
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
return 1
"""


class RunQueue:
    """Creates runs and sends their step messages (synchronous: call it off the event loop).

    `client` must decode responses (`decode_responses=True`).
    """

    def __init__(
        self, client: redis.Redis, broker: Broker, registry: TaskRegistry, settings: Settings
    ) -> None:
        self.client = client
        self.broker = broker
        self.registry = registry
        self.settings = settings
        self._create_run = client.register_script(_CREATE_RUN)
        self._forget_pending = client.register_script(_FORGET_PENDING)
        self._reap = client.register_script(_REAP)

    def submit(self, request: RunRequest, lease: str = "") -> bool:
        """Create the run and enqueue its first step; False when the run already existed."""
        return self.submit_many([request], lease)[0]

    def submit_many(self, requests: Sequence[RunRequest], lease: str = "") -> list[bool]:
        """`submit` for many runs in a few round trips (a scheduler pass firing a thousand jobs).

        The run records are created by one pipelined batch of the create script; each created run's
        message is then enqueued, and the runs leave runs:pending together. The guarantee is the
        same as one by one: a crash in between leaves the runs pending for `recover()`.

        With `lease` (the poller's), nothing is created unless it is still the poller's lease."""
        records = [_record(request) for request in requests]
        now_ms = int(time.time() * 1000)
        with self.client.pipeline(transaction=False) as pipe:
            for request, record in zip(requests, records, strict=True):
                run_keys = [
                    keys.run(request.run_id),
                    keys.RUNS_PENDING,
                    keys.OUTBOX,
                    keys.job_runs(request.item_id),
                ]
                self._create_run(
                    keys=[*run_keys, keys.LEASE if lease else ""],
                    args=[
                        request.run_id,
                        now_ms,
                        self.settings.run_history,
                        len(record),
                        *[part for pair in record.items() for part in pair],
                        *_queued_event(request).flat_fields(),
                        lease,
                    ],
                    client=pipe,
                )
            results = [int(result) for result in pipe.execute()]
        if any(result < 0 for result in results):
            raise LeaseLost("the poller lease moved to another serve replica")
        sent = []
        for request, record, result in zip(requests, records, results, strict=True):
            if result:
                self.send_step(request.run_id, 0, record)
                RUNS_ENQUEUED.labels(source=request.source).inc()
                sent.append(request.run_id)
        with self.client.pipeline(transaction=False) as pipe:
            for run_id in sent:
                self._forget_pending(keys=[keys.RUNS_PENDING], args=[run_id, str(now_ms)], client=pipe)
            pipe.execute()
        return [bool(result) for result in results]

    def forget_pending(self, run_id: str, score_ms: int) -> None:
        """A step was sent: take its run out of runs:pending, unless it was re-added since."""
        self._forget_pending(keys=[keys.RUNS_PENDING], args=[run_id, str(score_ms)])

    def send_step(self, run_id: str, step: int, record: Mapping[str, str] | None = None) -> Message[Any]:
        """Put one step of a run on its task's queue. Safe to repeat (see module docstring)."""
        if record is None:
            record = self.client.hgetall(keys.run(run_id))  # type: ignore[assignment]
            assert record is not None
        steps: list[str] = json.loads(record["steps"])
        registered = self.registry.get(steps[step])
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
        if step == 0 and record.get("scheduled_at"):
            # periodiq's convention: a fire carries the time it was scheduled for.
            options["scheduled_at"] = record["scheduled_at"]
        message: Message[Any] = Message(
            queue_name=queue, actor_name=ACTOR_NAME, args=(run_id, step), kwargs={}, options=options
        )
        return self.broker.enqueue(message)

    def recover(self, older_than: float = RECOVER_AFTER) -> int:
        """Re-send steps of runs left in runs:pending by a process that died, and of runs whose
        step is past its deadline in runs:running (its worker and its message are gone); returns
        how many steps were sent."""
        now_ms = int(time.time() * 1000)
        overdue: list[tuple[str, float]] = self.client.zrangebyscore(  # type: ignore[assignment]
            keys.RUNS_RUNNING, "-inf", now_ms, withscores=True
        )
        for run_id, deadline in overdue:
            if self._reap(
                keys=[keys.run(run_id), keys.RUNS_RUNNING, keys.RUNS_PENDING],
                args=[run_id, _score_text(deadline), 0],
            ):
                logger.warning("run overdue: its worker was lost; sending it again", run_id=run_id)
        cutoff = int((time.time() - older_than) * 1000)
        resent = 0
        entries: list[tuple[str, float]] = self.client.zrangebyscore(  # type: ignore[assignment]
            keys.RUNS_PENDING, "-inf", cutoff, withscores=True
        )
        for run_id, score in entries:
            record: dict[str, str] = self.client.hgetall(keys.run(run_id))  # type: ignore[assignment]
            if record and record.get("state") in ("queued", "running"):
                self.send_step(run_id, int(record.get("step", "0")), record)
                RUNS_ENQUEUED.labels(source="recovery").inc()
                resent += 1
            self._forget_pending(keys=[keys.RUNS_PENDING], args=[run_id, _score_text(score)])
        return resent


def _record(request: RunRequest) -> dict[str, str]:
    """The fields of a new `run:{id}` hash."""
    return {
        "run_id": request.run_id,
        "item": request.item_id,
        "kind": request.kind.value,
        "task": request.task_label,
        "steps": json.dumps(list(request.steps)),
        "params": json.dumps(request.params, separators=(",", ":")),
        "scheduled_at": format_time(request.scheduled_at) if request.scheduled_at else "",
        "recurring": "1" if request.recurring else "0",
        "missed_runs": request.missed_runs.value,
        "missed_window": str(request.missed_window),
        "source": request.source,
        "version": "" if request.version is None else str(request.version),
        "created": now_iso(),
        "state": "queued",
        "step": "0",
        "owner": "",
    }


def _queued_event(request: RunRequest) -> Event:
    return Event(
        request.item_id,
        "queued",
        {
            "status": Status.QUEUED,
            "message": request.reason,
            "next_run": format_time(request.next_run) if request.next_run else None,
        },
        run_id=request.run_id,
        details={"task": request.task_label, "kind": request.kind.value},
    )


def _score_text(score: float) -> str:
    """A zset score as Redis prints it (integral millisecond scores print without a fraction)."""
    return str(int(score)) if float(score).is_integer() else repr(score)

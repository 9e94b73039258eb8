"""Claims: the run transitions on the worker side, each one atomic Lua script over `run:{id}`.

Guarantee (queue → worker): **a step is claimed by one message at a time; a run ends once**.
`claim` binds the current step of a run to the Dramatiq message id that delivers it:
  - a second message for the same step (a recovery re-send, a replayed enqueue) finds another
    owner and is dropped — duplicates die at the key;
  - a redelivery of the owning message (its worker died, or Dramatiq retries it) finds itself as
    owner and proceeds — nothing is lost;
  - a message for a step that already finished, or for a run that ended, is dropped;
  - the first step of a run whose job was paused, made invalid or deleted after the run was
    queued is cancelled instead of run.
`load_and_claim` reads the run and claims in one script (one round trip): the script composes the
Running event from the record it read, and the actor gets that record back with the claim.
A claim also files the run in `runs:running` with a deadline (the step's time limit times its
attempts, plus backoff): a run still running past it lost its worker *and* its message, and serve's
`RunQueue.recover` (enqueue.py) sends it again, so no run can stay "running" forever.

Task code is at-least-once: a worker killed mid-step makes the step run again, and a worker that
stalls for longer than the broker's heartbeat timeout can see its message redelivered while it still
runs it (see broker.py and worker/middleware.py for how a Redis outage is kept from looking like such a
stall).

`finish_step`, `fail` and `skip` only act while the caller still owns the step, and write the new
state, the run count (once per run) and the outbox event in the same script: the event exists if
and only if the state change happened. When the job's definition moved on since the run was created
(a new version, or the job is no longer valid), the event still carries the run's times, result and
count, but not Status, Message or NextRun: a run of an old definition never overwrites what the
record says about the current one. `finish_step` also appends the step's last log lines
(state/run_logs.py), so a step's outcome and its log cost one round trip.

Redis being unreachable is not a failure of the task: every call here waits out connection errors
(Redis restarting, a failover) for up to REDIS_PATIENCE seconds before giving up. Repeating a script
after a lost reply is safe: claim then answers "redelivered", and a finish that already happened
answers -1.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

import redis
from dramatiq.middleware.time_limit import TimeLimitExceeded

from alloysync.log import get_logger
from alloysync.model.events import Event
from alloysync.state import keys, scripts
from alloysync.state.records import RUN_TTL, RunRecord

logger = get_logger(__name__)

REDIS_PATIENCE = 900.0  # seconds to wait for Redis before a run's bookkeeping gives up
T = TypeVar("T")

# The transition scripts, and how a log line names each while it waits for Redis.
TRANSITIONS = {
    "claim_step": "claim",
    "finish_step": "finish step",
    "fail_run": "fail",
    "skip_run": "skip",
    "cancel_run": "cancel",
}


class Claim(StrEnum):
    """What `claim_step.lua` answers."""

    FIRST = "first"  # this message starts the step: run it
    REDELIVERED = "redelivered"  # this message owned the step already (retry or redelivery): run it again
    DUPLICATE = "duplicate"  # another message owns this step: drop
    STALE = "stale"  # the step already finished: drop
    DONE = "done"  # the run ended: drop
    MISSING = "missing"  # no such run (expired or never created): drop
    CANCELLED = "cancelled"  # the job was paused, made invalid or deleted before the run started
    CALLED_OFF = "called-off"  # the run was cancelled (CancelRequested, Overlap replace): drop
    WAITING = "waiting"  # no slot of its concurrency key is free: it waits in line, the message is done

    @property
    def should_run(self) -> bool:
        return self in (Claim.FIRST, Claim.REDELIVERED)


@dataclass(frozen=True)
class MessageAck:
    """How a script acknowledges a Dramatiq message as Dramatiq's `ack` would: the worker's acks set
    of the queue, the queue's message hash, and the message's storage id (`redis_message_id`)."""

    acks_key: str
    messages_key: str
    storage_id: str


@dataclass(frozen=True)
class Outcome:
    """What a transition script answered: its code, and the runs it admitted in the ended run's
    place (their first step must be sent; they are in runs:pending under `score` until then)."""

    code: int | str
    admitted: tuple[str, ...] = ()
    score: int = 0

    @classmethod
    def parse(cls, reply: Any, with_score: bool = True) -> Outcome:
        values = [value.decode() if isinstance(value, bytes) else value for value in reply]
        code = values[0]
        if not with_score or len(values) < 2:
            return cls(code if isinstance(code, str) else int(code), tuple(str(v) for v in values[1:]))
        return cls(int(code), tuple(str(value) for value in values[2:]), int(values[1]))


@dataclass(frozen=True)
class StepClaim:
    """What a claim asks: message `message_id` takes step `step` of run `run_id` for `worker` at
    `now`, filing the run in `runs:running` until `deadline_ms`; `limits` are the concurrency keys'
    slot counts (a key not in it has 1)."""

    run_id: str
    step: int
    message_id: str
    now: str
    worker: str
    deadline_ms: int
    limits: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Claimed:
    """What `load_and_claim` answered: the claim, the run's record as read before the claim (None
    when there is no such run), and the runs admitted when the claim ended the run instead."""

    claim: Claim
    run: RunRecord | None
    admitted: tuple[str, ...] = ()


class Claims:
    """The transitions, bound to a Redis client with `decode_responses=True`."""

    def __init__(self, client: redis.Redis, patience: float = REDIS_PATIENCE) -> None:
        self.client = client
        self.patience = patience
        self._scripts = {name: scripts.register(client, name) for name in TRANSITIONS}

    def patiently(self, what: str, call: Callable[[], T]) -> T:
        """`call()`, retried while Redis cannot be reached (see the module docstring)."""
        deadline = time.monotonic() + self.patience
        delay = 0.2
        while True:
            try:
                return call()
            except (redis.ConnectionError, redis.TimeoutError) as error:
                if time.monotonic() > deadline:
                    raise
                logger.warning("Redis unavailable; waiting to record the run", what=what, error=str(error))
            except TimeLimitExceeded:
                # The time limit ran out while we waited for Redis: what we are recording is an
                # outcome that already happened, so keep going.
                logger.info("time limit passed while recording the run; still recording", what=what)
                continue
            with contextlib.suppress(TimeLimitExceeded):
                time.sleep(delay)
            delay = min(delay * 2, 5.0)

    def _transition(self, name: str, script_keys: list[str], args: list[str | int]) -> Any:
        """The reply of transition script `name` (one of `TRANSITIONS`), patient with Redis."""
        script = self._scripts[name]
        return self.patiently(TRANSITIONS[name], lambda: script(keys=script_keys, args=args))

    def load(self, run_id: str) -> RunRecord | None:
        fields: dict[str, str] = self.patiently("load", lambda: self.client.hgetall(keys.run(run_id)))  # type: ignore[arg-type,return-value]
        return RunRecord.from_hash(fields) if fields else None

    def load_and_claim(self, request: StepClaim) -> Claimed:
        """Read the run and claim step `request.step` for `request.message_id`, in one script (see
        the module docstring). A run of a concurrency key claims a slot first (`limits[key]` at
        once, 1 for a key not in `limits`) or waits in line. The script composes the Running (or
        waiting) event from the record it read."""
        claim, admitted, flat = self._claim_reply(request)
        fields = dict(zip(flat[::2], flat[1::2], strict=True))
        run = RunRecord.from_hash(fields) if fields else None
        return Claimed(claim, run, admitted)

    def _claim_reply(self, request: StepClaim) -> tuple[Claim, tuple[str, ...], list[str]]:
        """`claim_step.lua`'s reply: the claim, the admitted runs, the record's fields (flat)."""
        script_keys = [keys.run(request.run_id), keys.OUTBOX, keys.RUNS_RUNNING]
        args: list[str | int] = [request.message_id, request.step, request.now, request.worker]
        args += [request.deadline_ms, RUN_TTL, _json(request.limits)]
        claim, admitted, flat = self._transition("claim_step", script_keys, args)
        return Claim(claim), tuple(str(admitted_id) for admitted_id in admitted), flat

    def claim(
        self,
        run: RunRecord,
        step: int,
        message_id: str,
        now: str,
        worker: str,
        deadline_ms: int,
        started: Event | None = None,
        slot_limit: int = 1,
        slot_waiting: Event | None = None,
    ) -> Claim:
        """`load_and_claim` for a caller that holds the record (tests, benchmarks); the key's slot
        limit is `slot_limit`. The events are the script's own: `started` and `slot_waiting` are
        accepted for callers of the older signature and not used."""
        limits = {run.concurrency_key: slot_limit} if run.concurrency_key else {}
        return self._claim_reply(StepClaim(run.run_id, step, message_id, now, worker, deadline_ms, limits))[0]

    def finish_step(
        self,
        run: RunRecord,
        step: int,
        message_id: str,
        now: str,
        result_json: str,
        now_ms: int,
        event: Event,
    ) -> int:
        """`finish_step_and_admit`'s code: the run count after the last step, 0 after an
        intermediate step, -1 if we lost the step, -2 if the run was cancelled meanwhile."""
        return int(self.finish_step_and_admit(run, step, message_id, now, result_json, now_ms, event).code)

    def finish_step_and_admit(
        self,
        run: RunRecord,
        step: int,
        message_id: str,
        now: str,
        result_json: str,
        now_ms: int,
        event: Event,
        log_lines: Sequence[str] = (),
        log_max_lines: int = 0,
        ack: MessageAck | None = None,
    ) -> Outcome:
        """Record a step's result. The outcome's code is the new run count after the last step, 0
        after an intermediate step (the run is then pending for its next step), -1 if we lost the
        step, -2 if the run was cancelled meanwhile (the pipeline stops here). `log_lines` (encoded
        by state/run_logs.py) are appended to the run's log in the same script, which keeps its
        newest `log_max_lines`. With `ack`, the script acknowledges the step's Dramatiq message too
        when the step is over (any code but -1)."""
        is_last = step == len(run.steps) - 1
        script_keys = run_keys(run, keys.RUNS_PENDING, keys.RUNS_RUNNING, keys.run_log(run.run_id))
        if ack is not None:
            script_keys += [ack.acks_key, ack.messages_key]
        args: list[str | int] = [message_id, step, now, result_json, "1" if is_last else "0", now_ms, RUN_TTL]
        args += [event.wire(), event.reduced_attributes(), log_max_lines]
        args += [ack.storage_id if ack is not None else "", *log_lines]
        return Outcome.parse(self._transition("finish_step", script_keys, args))

    def fail(self, run: RunRecord, message_id: str, now: str, error: str, event: Event) -> int:
        """`fail_and_admit`'s code: the new run count, -1 if we lost the step."""
        return int(self.fail_and_admit(run, message_id, now, error, event).code)

    def fail_and_admit(self, run: RunRecord, message_id: str, now: str, error: str, event: Event) -> Outcome:
        """End the run as failed. The outcome's code is the new run count, -1 if we lost the step."""
        args: list[str | int] = [message_id, now, error, RUN_TTL, event.wire(), event.reduced_attributes()]
        return Outcome.parse(self._transition("fail_run", run_keys(run, keys.RUNS_RUNNING), args))

    def cancel(self, run: RunRecord, message_id: str, now: str, reason: str) -> Outcome:
        """End a run whose step was interrupted because it was cancelled (never retried). The
        outcome's code is 1, or -1 if we lost the step."""
        args: list[str | int] = [message_id, now, reason, RUN_TTL]
        return Outcome.parse(self._transition("cancel_run", [keys.run(run.run_id), keys.OUTBOX], args))

    def cancel_reason(self, run_id: str) -> str:
        """Why a run is being cancelled ('' when it is not)."""
        reason = self.patiently("cancel reason", lambda: self.client.hget(keys.run(run_id), "cancel"))
        return str(reason or "")

    def cancelling(self, run_ids: list[str]) -> set[str]:
        """Which of `run_ids` are being cancelled (their worker must interrupt them)."""
        if not run_ids:
            return set()
        flags = self.client.smismember(keys.RUNS_CANCELLING, run_ids)
        return {run_id for run_id, flag in zip(run_ids, flags, strict=True) if flag}

    def record_attempt_error(self, run_id: str, error: str) -> None:
        self.patiently("attempt error", lambda: self.client.hset(keys.run(run_id), "error", error))

    def skip(self, run: RunRecord, now: str, reason: str, event: Event) -> bool:
        """`skip_and_admit`: whether the run was skipped."""
        return bool(self.skip_and_admit(run, now, reason, event).code)

    def skip_and_admit(self, run: RunRecord, now: str, reason: str, event: Event) -> Outcome:
        """Skip a queued run nobody claimed (a stale fire); code 0 if it was claimed meanwhile."""
        args: list[str | int] = [now, reason, RUN_TTL, event.wire()]
        return Outcome.parse(self._transition("skip_run", run_keys(run), args))


def run_keys(run: RunRecord, *more: str) -> list[str]:
    """The keys of a transition that ends or moves `run`: its record, the outbox (its event) and its
    job's record (the run count, outcomes), then `more`."""
    return [keys.run(run.run_id), keys.OUTBOX, keys.job(run.item_id), *more]


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))

"""Run state transitions on the worker side, each one atomic Lua script over `run:{id}`.

Guarantee (queue → worker): **a step is claimed by one message at a time; a run ends once**.
`claim` binds the current step of a run to the Dramatiq message id that delivers it:
  - a second message for the same step (a recovery re-send, a replayed enqueue) finds another
    owner and is dropped — duplicates die at the key;
  - a redelivery of the owning message (its worker died, or Dramatiq retries it) finds itself as
    owner and proceeds — nothing is lost;
  - a message for a step that already finished, or for a run that ended, is dropped;
  - the first step of a run whose job was paused, made invalid or deleted after the run was
    queued is cancelled instead of run.
A claim also files the run in `runs:running` with a deadline (the step's time limit times its
attempts, plus backoff): a run still running past it lost its worker *and* its message, and serve's
`RunQueue.recover` sends it again, so no run can stay "running" forever.

Task code is at-least-once: a worker killed mid-step makes the step run again, and a worker that
stalls for longer than the broker's heartbeat timeout can see its message redelivered while it still
runs it (see broker.py for how a Redis outage is kept from looking like such a stall).

`finish_step`, `fail` and `skip` only act while the caller still owns the step, and write the new
state, the run count (once per run) and the outbox event in the same script: the event exists if
and only if the state change happened. When the job's definition moved on since the run was created
(a new version, or the job is no longer valid), the event still carries the run's times, result and
count, but not Status, Message or NextRun: a run of an old definition never overwrites what the
record says about the current one.

Redis being unreachable is not a failure of the task: every call here waits out connection errors
(Redis restarting, a failover) for up to REDIS_PATIENCE seconds before giving up. Repeating a script
after a lost reply is safe: claim then answers "redelivered", and a finish that already happened
answers -1.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

import redis
from dramatiq.middleware.time_limit import TimeLimitExceeded

from alloysync import keys
from alloysync.log import get_logger
from alloysync.outbox import Event

logger = get_logger(__name__)

RUN_TTL = 7 * 86_400  # seconds an ended run's record is kept (history, duplicate suppression)
REDIS_PATIENCE = 900.0  # seconds to wait for Redis before a run's bookkeeping gives up
T = TypeVar("T")


class Claim(StrEnum):
    FIRST = "first"  # this message starts the step: run it
    REDELIVERED = "redelivered"  # this message owned the step already (retry or redelivery): run it again
    DUPLICATE = "duplicate"  # another message owns this step: drop
    STALE = "stale"  # the step already finished: drop
    DONE = "done"  # the run ended: drop
    MISSING = "missing"  # no such run (expired or never created): drop
    CANCELLED = "cancelled"  # the job was paused, made invalid or deleted before the run started

    @property
    def should_run(self) -> bool:
        return self in (Claim.FIRST, Claim.REDELIVERED)


# Shared by the scripts below. ARGV[first .. first+11] are the six name/value pairs of
# Event.flat_fields(); `reduced` replaces the attributes (pair 5) for a run of an old definition.
_LUA_HELPERS = """
local function event_fields(first, reduced)
  local fields = {}
  for i = first, first + 11 do fields[#fields + 1] = ARGV[i] end
  if reduced then fields[10] = reduced end
  return fields
end
local function definition_is_current(run_key, job_key)
  local version = redis.call('HGET', run_key, 'version') or ''
  if version == '' then return true end
  return redis.call('HGET', job_key, 'state') == 'valid' and redis.call('HGET', job_key, 'version') == version
end
-- The end of a run: count it, append its event (with the count; reduced for an old definition),
-- and let the record expire. Returns the run count.
local function end_run(run_key, job_key, outbox_key, first, reduced_at, ttl)
  local count = redis.call('HINCRBY', job_key, 'run_count', 1)
  local reduced = nil
  if not definition_is_current(run_key, job_key) then reduced = ARGV[reduced_at] end
  local fields = event_fields(first, reduced)
  fields[#fields + 1] = 'run_count'
  fields[#fields + 1] = tostring(count)
  redis.call('XADD', outbox_key, '*', unpack(fields))
  redis.call('EXPIRE', run_key, ttl)
  return count
end
"""

_CLAIM = (
    _LUA_HELPERS
    + """
-- KEYS: run, outbox, job, runs:running
-- ARGV: message_id, step, now_iso, worker, deadline_ms, event fields (12), reduced attributes
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return 'missing' end
if state == 'succeeded' or state == 'failed' or state == 'skipped' then return 'done' end
local step = tonumber(ARGV[2])
if step ~= tonumber(redis.call('HGET', KEYS[1], 'step') or '0') then return 'stale' end
local owner = redis.call('HGET', KEYS[1], 'owner') or ''
if owner ~= '' and owner ~= ARGV[1] then return 'duplicate' end
if step == 0 and owner == '' and (redis.call('HGET', KEYS[1], 'version') or '') ~= '' then
  local job_state = redis.call('HGET', KEYS[3], 'state')
  if job_state ~= 'valid' then
    local what = job_state == 'disabled' and 'paused' or (job_state or 'deleted')
    local why = 'the job was ' .. what .. ' before the run started'
    redis.call('HSET', KEYS[1], 'state', 'skipped', 'finished', ARGV[3], 'error', why)
    redis.call('EXPIRE', KEYS[1], 604800)
    return 'cancelled'
  end
end
redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'state', 'running', 'worker', ARGV[4], 'step_started', ARGV[3])
redis.call('HINCRBY', KEYS[1], 'attempts', 1)
redis.call('ZADD', KEYS[4], ARGV[5], redis.call('HGET', KEYS[1], 'run_id'))
if owner == ARGV[1] then return 'redelivered' end
if step == 0 then redis.call('HSET', KEYS[1], 'started', ARGV[3]) end
local reduced = nil
if not definition_is_current(KEYS[1], KEYS[3]) then reduced = ARGV[18] end
redis.call('XADD', KEYS[2], '*', unpack(event_fields(6, reduced)))
return 'first'
"""
)

_FINISH_STEP = (
    _LUA_HELPERS
    + """
-- KEYS: run, outbox, job, runs:pending, runs:running
-- ARGV: message_id, step, now_iso, step_result, is_last, now_ms, ttl, event fields (12), reduced attributes
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return -1 end
local step = tonumber(ARGV[2])
if tonumber(redis.call('HGET', KEYS[1], 'step')) ~= step then return -1 end
local run_id = redis.call('HGET', KEYS[1], 'run_id')
redis.call('ZREM', KEYS[5], run_id)
redis.call('HSET', KEYS[1], 'result:' .. ARGV[2], ARGV[4])
if ARGV[5] ~= '1' then
  redis.call('HSET', KEYS[1], 'step', step + 1, 'owner', '', 'state', 'queued')
  redis.call('ZADD', KEYS[4], ARGV[6], run_id)
  return 0
end
redis.call('HSET', KEYS[1], 'state', 'succeeded', 'finished', ARGV[3], 'owner', '', 'result', ARGV[4])
return end_run(KEYS[1], KEYS[3], KEYS[2], 8, 20, tonumber(ARGV[7]))
"""
)

_FAIL = (
    _LUA_HELPERS
    + """
-- KEYS: run, outbox, job, runs:running   ARGV: message_id, now_iso, error, ttl, event fields (12), reduced
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return -1 end
redis.call('ZREM', KEYS[4], redis.call('HGET', KEYS[1], 'run_id'))
redis.call('HSET', KEYS[1], 'state', 'failed', 'finished', ARGV[2], 'owner', '', 'error', ARGV[3])
return end_run(KEYS[1], KEYS[3], KEYS[2], 5, 17, tonumber(ARGV[4]))
"""
)

_SKIP = (
    _LUA_HELPERS
    + """
-- KEYS: run, outbox, job   ARGV: now_iso, reason, ttl, event fields (12)
local state = redis.call('HGET', KEYS[1], 'state')
if state ~= 'queued' or (redis.call('HGET', KEYS[1], 'owner') or '') ~= '' then return 0 end
redis.call('HSET', KEYS[1], 'state', 'skipped', 'finished', ARGV[1], 'error', ARGV[2])
local reduced = nil
if not definition_is_current(KEYS[1], KEYS[3]) then reduced = '{}' end
redis.call('XADD', KEYS[2], '*', unpack(event_fields(4, reduced)))
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
return 1
"""
)


@dataclass(frozen=True)
class RunRecord:
    """The parts of `run:{id}` a worker needs."""

    run_id: str
    item_id: str
    steps: list[str]
    params: dict[str, Any]
    scheduled_at: str
    recurring: bool
    started: str
    step_results: dict[int, Any]
    fields: dict[str, str]

    @classmethod
    def from_hash(cls, fields: dict[str, str]) -> RunRecord:
        results = {
            int(name.split(":", 1)[1]): json.loads(value)
            for name, value in fields.items()
            if name.startswith("result:")
        }
        return cls(
            run_id=fields["run_id"],
            item_id=fields["item"],
            steps=json.loads(fields["steps"]),
            params=json.loads(fields.get("params") or "{}"),
            scheduled_at=fields.get("scheduled_at", ""),
            recurring=fields.get("recurring") == "1",
            started=fields.get("started", ""),
            step_results=results,
            fields=fields,
        )


def reduced_attributes(event: Event) -> str:
    """The attributes of `event` a run of an old definition may still write: its times and result."""
    kept = {
        name: value
        for name, value in event.attributes.items()
        if name not in ("status", "message", "next_run")
    }
    return json.dumps(kept, separators=(",", ":"), default=str)


class RunState:
    """The transitions, bound to a Redis client with `decode_responses=True`."""

    def __init__(self, client: redis.Redis, patience: float = REDIS_PATIENCE) -> None:
        self.client = client
        self.patience = patience
        self._claim = client.register_script(_CLAIM)
        self._finish = client.register_script(_FINISH_STEP)
        self._fail = client.register_script(_FAIL)
        self._skip = client.register_script(_SKIP)

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

    def load(self, run_id: str) -> RunRecord | None:
        fields: dict[str, str] = self.patiently("load", lambda: self.client.hgetall(keys.run(run_id)))  # type: ignore[arg-type,return-value]
        return RunRecord.from_hash(fields) if fields else None

    def claim(
        self,
        run: RunRecord,
        step: int,
        message_id: str,
        now: str,
        worker: str,
        deadline_ms: int,
        started: Event,
    ) -> Claim:
        run_keys = [keys.run(run.run_id), keys.OUTBOX, keys.job(run.item_id), keys.RUNS_RUNNING]
        args: list[str | int] = [message_id, step, now, worker, deadline_ms, *started.flat_fields()]
        args.append(reduced_attributes(started))
        return Claim(self.patiently("claim", lambda: self._claim(keys=run_keys, args=args)))

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
        """Record a step's result. Returns the new run count after the last step, 0 after an
        intermediate step (the run is then pending for its next step), -1 if we lost the step."""
        is_last = step == len(run.steps) - 1
        run_keys = [
            keys.run(run.run_id),
            keys.OUTBOX,
            keys.job(run.item_id),
            keys.RUNS_PENDING,
            keys.RUNS_RUNNING,
        ]
        args: list[str | int] = [message_id, step, now, result_json, "1" if is_last else "0", now_ms, RUN_TTL]
        args += [*event.flat_fields(), reduced_attributes(event)]
        count: int = self.patiently("finish step", lambda: self._finish(keys=run_keys, args=args))
        return count

    def fail(self, run: RunRecord, message_id: str, now: str, error: str, event: Event) -> int:
        run_keys = [keys.run(run.run_id), keys.OUTBOX, keys.job(run.item_id), keys.RUNS_RUNNING]
        args: list[str | int] = [
            message_id,
            now,
            error,
            RUN_TTL,
            *event.flat_fields(),
            reduced_attributes(event),
        ]
        count: int = self.patiently("fail", lambda: self._fail(keys=run_keys, args=args))
        return count

    def record_attempt_error(self, run_id: str, error: str) -> None:
        self.patiently("attempt error", lambda: self.client.hset(keys.run(run_id), "error", error))

    def skip(self, run: RunRecord, now: str, reason: str, event: Event) -> bool:
        run_keys = [keys.run(run.run_id), keys.OUTBOX, keys.job(run.item_id)]
        args: list[str | int] = [now, reason, RUN_TTL, *event.flat_fields()]
        return bool(self.patiently("skip", lambda: self._skip(keys=run_keys, args=args)))

"""The job store and schedule store in Redis, as `serve` sees them (asyncio).

Per job, `job:{item}` holds what the poller decided (fingerprint, version, state, spec summary), the
request bookkeeping for RunRequested, the run count, and a *view* of the job's latest reported
state (status, message, run times) that the reporter keeps for the jobs page.

Writes that decide what runs are *fenced*: a Lua script checks that the caller still holds the
poller lease, so a paused ex-leader that wakes up cannot overwrite the new leader's decisions.
(Run creation is fenced the same way, in runs.py.)

A new definition is stored and acted upon in two steps — store the version, act on it (runs,
schedule, events), then record it as acted (`acted`, with the task registry's digest). A pass that
dies in between leaves `acted` behind `version`, and the next sighting of the item acts again;
every action is idempotent (deterministic run ids, overwritten schedule entries, repeated events).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import redis.asyncio as aioredis

from alloysync import keys
from alloysync.alloy.models import Item
from alloysync.lease import LeaseLost
from alloysync.outbox import LUA_XADD_EVENT, Event
from alloysync.schedules import ScheduleEntry, parse_time

_FENCED_DEFINITION = """
-- KEYS: lease, job, jobs   ARGV: lease_value, item, fingerprint, run_count, pairs...
-- Returns {version, acted version, acted registry digest, time the version was first seen}.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {-1} end
redis.call('SADD', KEYS[3], ARGV[2])
if ARGV[4] ~= '' then redis.call('HSETNX', KEYS[2], 'run_count', ARGV[4]) end
if redis.call('HGET', KEYS[2], 'fingerprint') ~= ARGV[3] then
  local fields = {'fingerprint', ARGV[3]}
  for i = 5, #ARGV do fields[#fields + 1] = ARGV[i] end
  redis.call('HSET', KEYS[2], unpack(fields))
  redis.call('HINCRBY', KEYS[2], 'version', 1)
end
local job = redis.call('HMGET', KEYS[2], 'version', 'acted', 'acted_registry', 'changed')
return {tonumber(job[1]), tonumber(job[2] or '0'), job[3] or '', job[4] or ''}
"""

_FENCED_ACTED = """
-- KEYS: lease, job   ARGV: lease_value, version, registry digest, pairs...
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
if redis.call('HGET', KEYS[2], 'version') ~= ARGV[2] then return 0 end
local fields = {'acted', ARGV[2], 'acted_registry', ARGV[3]}
for i = 4, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[2], unpack(fields))
return 1
"""

_FENCED_SET = """
-- KEYS: lease, target   ARGV: lease_value, value
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
redis.call('SET', KEYS[2], ARGV[2])
return 1
"""

_FENCED_SCHEDULE = """
-- KEYS: lease, schedules, schedules:changed   ARGV: lease_value, item, entry ('' removes)
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
if ARGV[3] == '' then
  if redis.call('HDEL', KEYS[2], ARGV[2]) == 0 then return 0 end
else
  redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
end
redis.call('PUBLISH', KEYS[3], ARGV[2])
return 1
"""

_FENCED_FORGET = """
-- KEYS: lease, job, jobs, schedules, schedules:changed   ARGV: lease_value, item
-- The record is gone from Alloy. Its counters stay (version, request and run numbers keep run ids
-- unique if it comes back); `acted` is cleared so that a return is acted upon again.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
redis.call('HSET', KEYS[2], 'state', 'gone', 'acted', '0')
redis.call('SREM', KEYS[3], ARGV[2])
if redis.call('HDEL', KEYS[4], ARGV[2]) == 1 then redis.call('PUBLISH', KEYS[5], ARGV[2]) end
return 1
"""

_FENCED_EVENT = (
    LUA_XADD_EVENT
    + """
-- KEYS: lease, outbox   ARGV: lease_value, event fields (12)
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
redis.call('XADD', KEYS[2], '*', unpack(event_fields(2)))
return 1
"""
)

_BEGIN_REQUEST = """
-- KEYS: lease, job   ARGV: lease_value, read_ms (Redis time just before the view was requested)
-- Returns {request number, 1 if it is new}; {0, 0} for a view that may predate our last reset.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {-1, 0} end
if redis.call('HGET', KEYS[2], 'request_pending') == '1' then
  return {tonumber(redis.call('HGET', KEYS[2], 'request_seq')), 0}
end
local reset_ms = tonumber(redis.call('HGET', KEYS[2], 'request_after') or '0') or 0
if tonumber(ARGV[2]) <= reset_ms then return {0, 0} end
redis.call('HSET', KEYS[2], 'request_pending', '1')
return {redis.call('HINCRBY', KEYS[2], 'request_seq', 1), 1}
"""

_FINISH_REQUEST = """
-- KEYS: job   Our reset of RunRequested is on Alloy: a view requested before now may still show the
-- flag set and must not start another run (Redis time, shared by every serve replica).
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('HSET', KEYS[1], 'request_pending', '0', 'request_after', now_ms)
return now_ms
"""

_REQUEST_RESET = (
    LUA_XADD_EVENT
    + """
-- KEYS: lease, job, outbox   ARGV: lease_value, request number, event fields (12)
-- Append the reset of RunRequested once per request.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
if redis.call('HGET', KEYS[2], 'request_reset') == ARGV[2] then return 0 end
redis.call('XADD', KEYS[3], '*', unpack(event_fields(3)))
redis.call('HSET', KEYS[2], 'request_reset', ARGV[2])
return 1
"""
)

_REMEMBER_ITEM = """
-- KEYS: job   ARGV: signature, read_ms ('' = now: a signature our own edit just returned), title
-- Keep the signature of the newest view of the item: views are ordered by the Redis time just
-- before they were requested (real Alloy items carry no edit date to order them by).
local read_ms = tonumber(ARGV[2])
if read_ms == nil then
  local now = redis.call('TIME')
  read_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
end
if read_ms < (tonumber(redis.call('HGET', KEYS[1], 'signature_at') or '0') or 0) then return 0 end
redis.call('HSET', KEYS[1], 'signature', ARGV[1], 'signature_at', read_ms)
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'title', ARGV[3]) end
return 1
"""


@dataclass(frozen=True)
class JobVersion:
    """Where a job's definition stands after applying what the poller just read."""

    version: int
    acted: int  # the version last acted upon
    acted_registry: str  # the task registry's digest when it was acted upon
    changed: str  # when this version was first seen (ISO)

    def needs_action(self, registry_digest: str) -> bool:
        return self.acted < self.version or self.acted_registry != registry_digest


class JobStore:
    """Async access to the job and schedule stores; `client` must decode responses."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client
        self._definition = client.register_script(_FENCED_DEFINITION)
        self._acted = client.register_script(_FENCED_ACTED)
        self._set = client.register_script(_FENCED_SET)
        self._schedule = client.register_script(_FENCED_SCHEDULE)
        self._forget = client.register_script(_FENCED_FORGET)
        self._event = client.register_script(_FENCED_EVENT)
        self._begin_request = client.register_script(_BEGIN_REQUEST)
        self._request_reset = client.register_script(_REQUEST_RESET)
        self._finish_request = client.register_script(_FINISH_REQUEST)
        self._remember_item = client.register_script(_REMEMBER_ITEM)

    # --- poller side (fenced) ----------------------------------------------------------------

    async def apply_definition(
        self, lease: str, item_id: str, fingerprint: str, fields: Mapping[str, str], run_count: int | None
    ) -> JobVersion:
        """Store a definition (a new version when its fingerprint is new) and say where it stands.

        `fields` are stored only with a new version; `run_count` seeds the job's run count from
        the record the first time the job is seen."""
        pairs = [part for pair in fields.items() for part in pair]
        result = await self._definition(
            keys=[keys.LEASE, keys.job(item_id), keys.JOBS],
            args=[lease, item_id, fingerprint, "" if run_count is None else str(run_count), *pairs],
        )
        _fenced(result[0])
        return JobVersion(int(result[0]), int(result[1]), str(result[2]), str(result[3]))

    async def mark_acted(
        self, lease: str, item_id: str, version: int, registry_digest: str, fields: Mapping[str, str]
    ) -> None:
        """Record that `version` was acted upon (with this registry), storing the decided `fields`."""
        pairs = [part for pair in fields.items() for part in pair]
        _fenced(
            await self._acted(
                keys=[keys.LEASE, keys.job(item_id)], args=[lease, version, registry_digest, *pairs]
            )
        )

    async def add_event(self, lease: str, event: Event) -> None:
        """Append an event to the outbox, as the poller (fenced)."""
        _fenced(await self._event(keys=[keys.LEASE, keys.OUTBOX], args=[lease, *event.flat_fields()]))

    async def set_cursor(self, lease: str, cursor: datetime) -> None:
        _fenced(await self._set(keys=[keys.LEASE, keys.SYNC_CURSOR], args=[lease, cursor.isoformat()]))

    async def put_schedule(self, lease: str, entry: ScheduleEntry) -> None:
        schedule_keys = [keys.LEASE, keys.SCHEDULES, keys.SCHEDULES_CHANGED]
        _fenced(await self._schedule(keys=schedule_keys, args=[lease, entry.item_id, entry.to_json()]))

    async def remove_schedule(self, lease: str, item_id: str) -> bool:
        """Drop a job's schedule; True if it had one."""
        schedule_keys = [keys.LEASE, keys.SCHEDULES, keys.SCHEDULES_CHANGED]
        return _fenced(await self._schedule(keys=schedule_keys, args=[lease, item_id, ""])) == 1

    async def forget_job(self, lease: str, item_id: str) -> None:
        forget_keys = [keys.LEASE, keys.job(item_id), keys.JOBS, keys.SCHEDULES, keys.SCHEDULES_CHANGED]
        _fenced(await self._forget(keys=forget_keys, args=[lease, item_id]))

    async def begin_request(self, lease: str, item_id: str, read_ms: int) -> tuple[int, bool]:
        """RunRequested seen on a view of the item requested at `read_ms` (Redis time, see `now_ms`):
        (request number, whether it is new).

        A request already in hand (not reset yet) answers its own number again, so that a pass
        that died half-way finishes the job; a view requested before our last reset landed answers
        0 (it may be older than the reset: if the user set the flag again, the next pass sees it)."""
        result = await self._begin_request(keys=[keys.LEASE, keys.job(item_id)], args=[lease, read_ms])
        return _fenced(result[0]), bool(result[1])

    async def add_request_reset(self, lease: str, item_id: str, request: int, event: Event) -> None:
        """Append the reset of RunRequested for request number `request` (once per request)."""
        reset_keys = [keys.LEASE, keys.job(item_id), keys.OUTBOX]
        _fenced(await self._request_reset(keys=reset_keys, args=[lease, request, *event.flat_fields()]))

    async def finish_request(self, item_id: str) -> None:
        """Our reset of RunRequested landed on Alloy: views requested before now are stale."""
        await self._finish_request(keys=[keys.job(item_id)])

    async def remember_item(self, item: Item, read_ms: int | None = None, title: str = "") -> None:
        """Cache the item's signature (for the reporter's next edit) unless a newer view's is cached.

        `read_ms` is the Redis time just before the view was requested; None for the item an edit
        of ours just returned (the newest there is). Query results may carry no signature."""
        if item.signature:
            await self._remember_item(
                keys=[keys.job(item.itemId)],
                args=[item.signature, "" if read_ms is None else read_ms, title],
            )

    async def now_ms(self) -> int:
        """Redis's clock in milliseconds: the one clock every serve replica shares."""
        seconds, microseconds = await self.client.time()
        return int(seconds) * 1000 + int(microseconds) // 1000

    async def known_signature(self, item_id: str) -> str | None:
        signature = await self.client.hget(keys.job(item_id), "signature")
        return str(signature) if signature else None

    # --- reads --------------------------------------------------------------------------------

    async def cursor(self) -> datetime | None:
        text = await self.client.get(keys.SYNC_CURSOR)
        return parse_time(str(text)) if text else None

    async def job(self, item_id: str) -> dict[str, str]:
        fields = await self.client.hgetall(keys.job(item_id))
        return {str(name): str(value) for name, value in fields.items()}

    async def job_ids(self) -> set[str]:
        members = await self.client.smembers(keys.JOBS)
        return {str(member) for member in members}

    async def jobs(self) -> list[dict[str, str]]:
        ids = sorted(await self.job_ids())
        async with self.client.pipeline(transaction=False) as pipe:
            for item_id in ids:
                pipe.hgetall(keys.job(item_id))
            rows: list[dict[str, str]] = await pipe.execute()
        return [{"item_id": item_id, **row} for item_id, row in zip(ids, rows, strict=True) if row]

    async def recent_runs(self, item_id: str) -> list[dict[str, str]]:
        run_ids = [str(run_id) for run_id in await self.client.lrange(keys.job_runs(item_id), 0, -1)]
        async with self.client.pipeline(transaction=False) as pipe:
            for run_id in run_ids:
                pipe.hgetall(keys.run(run_id))
            rows: list[dict[str, str]] = await pipe.execute()
        return [row for row in rows if row]

    async def schedule(self, item_id: str) -> ScheduleEntry | None:
        text = await self.client.hget(keys.SCHEDULES, item_id)
        return ScheduleEntry.from_json(str(text)) if text else None

    # --- view (reporter) ----------------------------------------------------------------------

    async def update_view(self, item_id: str, fields: Mapping[str, Any]) -> None:
        """Record the latest reported state of a known job for the jobs page."""
        if not fields or not await self.client.sismember(keys.JOBS, item_id):
            return
        await self.client.hset(
            keys.job(item_id),
            mapping={f"view_{name}": _view_text(value) for name, value in fields.items()},
        )


def _fenced(result: Any) -> int:
    if int(result) < 0:
        raise LeaseLost("the poller lease moved to another serve replica")
    return int(result)


def _view_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), default=str)

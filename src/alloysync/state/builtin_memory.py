"""What the built-in tasks remember in Redis, so that a step that runs again does no work twice.

Task code is at-least-once (a redelivered step runs again), so each built-in with a side effect
records what it did under its run and step (`run:{id}:step:{n}:memory`, a hash):
  - `alloy.update` / `alloy.create`: one field per item edited or created (`item:{id}`, `create:{n}`);
  - `http.request`: one field per request answered (`request:{n}`: the parsed response);
  - `mail.send`: `sent` (the Message-ID);
  - `wait.until`: `wake` (when the step wakes, in epoch ms; the first value set stays).
A run's memory expires with the run record (7 days after the last write, or later for a long wait).

Across runs of one job (`job:{item}:memory`): `data.threshold` keeps the last count it saw, with
the run that saw it, so "crossed since the last run" is decided once per run, however often the
step runs.
"""

from __future__ import annotations

import json
from typing import Any

import redis.asyncio as aioredis

from alloysync.state import keys
from alloysync.state.records import RUN_TTL


class BuiltinMemory:
    """The memory of the built-in tasks, over an asyncio client with `decode_responses=True`."""

    def __init__(self, client: aioredis.Redis, ttl: int = RUN_TTL) -> None:
        self.client = client
        self.ttl = ttl

    async def recall(self, run_id: str, step: int) -> dict[str, str]:
        """Everything step `step` of the run remembers (field → value)."""
        values = await self.client.hgetall(keys.step_memory(run_id, step))
        return {str(name): str(value) for name, value in values.items()}

    async def remember(self, run_id: str, step: int, name: str, value: str, ttl: int | None = None) -> None:
        """Record `name` = `value` for the step."""
        key = keys.step_memory(run_id, step)
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hset(key, name, value)
            pipe.expire(key, max(ttl or 0, self.ttl))
            await pipe.execute()

    async def remember_first(
        self, run_id: str, step: int, name: str, value: str, ttl: int | None = None
    ) -> str:
        """Record `name` = `value` unless the step already has a value for it; the value that stays."""
        key = keys.step_memory(run_id, step)
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hsetnx(key, name, value)
            pipe.hget(key, name)
            pipe.expire(key, max(ttl or 0, self.ttl))
            _set, kept, _expire = await pipe.execute()
        return str(kept)

    async def job_value(self, item_id: str, name: str) -> Any:
        """The JSON value a job carries from one run to the next under `name` (None when unset)."""
        raw = await self.client.hget(keys.job_memory(item_id), name)
        return json.loads(raw) if raw else None

    async def set_job_value(self, item_id: str, name: str, value: Any) -> None:
        await self.client.hset(keys.job_memory(item_id), name, json.dumps(value))

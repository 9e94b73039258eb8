"""Queue statistics and the live-workers registry.

Queue lengths are read from Dramatiq's own keys (`dramatiq:{queue}` ready, `.DQ` delayed for a
retry). Every worker process registers itself in `alloysync:workers` (broker id → last heartbeat)
and `alloysync:workers:names` (broker id → host:pid) from its heartbeat thread, so `serve` can
count the live ones.
"""

from __future__ import annotations

import redis
import redis.asyncio as aioredis

from alloysync.state import keys

DRAMATIQ_NAMESPACE = "dramatiq"


class QueueStats:
    """What `serve` samples (asyncio)."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client

    async def waiting_messages(self, queue: str) -> int:
        """Messages waiting on `queue`: ready plus delayed for a retry."""
        ready = await self.client.llen(f"{DRAMATIQ_NAMESPACE}:{queue}")
        delayed = await self.client.llen(f"{DRAMATIQ_NAMESPACE}:{queue}.DQ")
        return int(ready) + int(delayed)

    async def live_workers(self, heartbeat_since: float) -> int:
        """Workers whose last heartbeat (unix time) is at or after `heartbeat_since`."""
        return int(await self.client.zcount(keys.WORKERS, heartbeat_since, "+inf"))


class WorkerRegistry:
    """A worker process's own entry (synchronous, from its heartbeat thread)."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def beat(self, worker_id: str, name: str, now: float, forget_before: float) -> None:
        """Record a heartbeat of `worker_id` at `now`; forget workers silent since `forget_before`."""
        with self.client.pipeline(transaction=False) as pipe:
            pipe.zadd(keys.WORKERS, {worker_id: now})
            pipe.hset(keys.WORKER_NAMES, worker_id, name)
            pipe.zremrangebyscore(keys.WORKERS, "-inf", forget_before)
            pipe.execute()

    def leave(self, worker_id: str) -> None:
        """The worker stops: take it out of the registry."""
        with self.client.pipeline(transaction=False) as pipe:
            pipe.zrem(keys.WORKERS, worker_id)
            pipe.hdel(keys.WORKER_NAMES, worker_id)
            pipe.execute()


def message_waiting(client: redis.Redis, queue: str, message_id: str) -> bool:
    """Whether Dramatiq still holds message `message_id` for `queue`, ready or delayed, not yet
    acknowledged by a worker (its body stays in `{queue}.msgs` until then)."""
    with client.pipeline(transaction=False) as pipe:
        pipe.hexists(f"{DRAMATIQ_NAMESPACE}:{queue}.msgs", message_id)
        pipe.hexists(f"{DRAMATIQ_NAMESPACE}:{queue}.DQ.msgs", message_id)
        ready, delayed = pipe.execute()
    return bool(ready or delayed)

"""The poller lease: which `serve` replica polls Alloy and writes statuses back.

One key, `alloysync:lease:poller`, holds `{replica}:{fence}` with a TTL (`ALLOYSYNC_LEASE_TTL`,
10 s). The holder renews it every TTL/3; the others try to take it every TTL/3, so a standby takes
over at most TTL + TTL/3 (≈13 s) after the leader died. The fence is a counter incremented on every
acquisition: the lease value is unique per term, and the store's fenced writes compare it, so an
ex-leader that was paused past its TTL cannot make decisions after a new leader took over.
"""

from __future__ import annotations

import os
import socket

import redis.asyncio as aioredis

from alloysync import keys
from alloysync.log import get_logger
from alloysync.metrics import POLLER_LEASE_HELD

logger = get_logger(__name__)

_ACQUIRE = """
-- KEYS: lease, fence   ARGV: replica, ttl_ms
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
local value = ARGV[1] .. ':' .. redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], value, 'PX', ARGV[2])
return value
"""

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class LeaseLost(Exception):
    """The caller no longer holds the poller lease; stop acting as the poller."""


def replica_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class PollerLease:
    def __init__(self, client: aioredis.Redis, ttl: float, replica: str | None = None) -> None:
        self.client = client
        self.ttl_ms = int(ttl * 1000)
        self.replica = replica or replica_name()
        self.value: str | None = None
        self._acquire = client.register_script(_ACQUIRE)
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)

    @property
    def held(self) -> bool:
        return self.value is not None

    async def refresh(self) -> bool:
        """Renew the lease if held, else try to take it. Returns whether we hold it now."""
        if self.value is not None:
            if not await self._renew(keys=[keys.LEASE], args=[self.value, self.ttl_ms]):
                logger.warning("poller lease lost", lease=self.value)
                self.value = None
        else:
            value = await self._acquire(keys=[keys.LEASE, keys.LEASE_FENCE], args=[self.replica, self.ttl_ms])
            if value:
                self.value = str(value)
                logger.info("poller lease acquired: this replica polls Alloy and reports", lease=self.value)
        POLLER_LEASE_HELD.set(1 if self.value else 0)
        return self.value is not None

    def drop(self) -> None:
        """Forget the lease locally (after a fenced write was refused or Redis was unreachable)."""
        self.value = None
        POLLER_LEASE_HELD.set(0)

    async def release(self) -> None:
        if self.value is not None:
            await self._release(keys=[keys.LEASE], args=[self.value])
        self.drop()

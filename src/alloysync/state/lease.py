"""The poller lease: which `serve` replica polls Alloy and writes statuses back.

One key, `alloysync:lease:poller`, holds `{replica}:{fence}` with a TTL (`ALLOYSYNC_LEASE_TTL`,
10 s). The holder renews it every TTL/3; the others try to take it every TTL/3, so a standby takes
over at most TTL + TTL/3 (≈13 s) after the leader died. The fence is a counter incremented on every
acquisition: the lease value is unique per term, and every fenced script compares it (`fenced`
reads their answer), so an ex-leader that was paused past its TTL cannot make decisions after a
new leader took over.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis

from alloysync.identity import process_name
from alloysync.log import get_logger
from alloysync.metrics import POLLER_LEASE_HELD
from alloysync.state import keys, scripts

logger = get_logger(__name__)


class LeaseLost(Exception):
    """The caller no longer holds the poller lease; stop acting as the poller."""


def fenced(result: Any) -> int:
    """The answer of a fenced script, which is negative when the caller's lease was refused."""
    if int(result) < 0:
        raise LeaseLost("the poller lease moved to another serve replica")
    return int(result)


def fenced_batch(result: Any) -> list[Any]:
    """The per-item answers of a fenced script that handles a batch (a list), which answers -1
    instead when the caller's lease was refused."""
    if not isinstance(result, list):
        fenced(result)
    return list(result)


class PollerLease:
    def __init__(self, client: aioredis.Redis, ttl: float, replica: str | None = None) -> None:
        self.client = client
        self.ttl_ms = int(ttl * 1000)
        self.replica = replica or process_name()
        self.value: str | None = None
        self._acquire = scripts.register(client, "lease_acquire")
        self._renew = scripts.register(client, "lease_renew")
        self._release = scripts.register(client, "lease_release")

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

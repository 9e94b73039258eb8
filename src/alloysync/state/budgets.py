"""The Alloy budgets shared by every process of a deployment, in Redis.

Alloy limits calls per API key, not per process: serve's poller and reporter and every worker's
task code (`ctx.alloy`) spend the same 120 queries / 300 reads / 150 edits a minute. Each process
keeps its own paced `TokenBucket` (alloy/ratelimit.py), and every call also takes a slot from this
shared budget first, so the deployment as a whole stays under Alloy's limit whatever runs where.

The algorithm is the `limits` library's moving window (a sorted log of hits per family in Redis,
checked and appended by one script): no window of `window` seconds ever holds more than the
family's budget. The window is a second longer than Alloy's 60 s, so that the latency between our
clock and Alloy's cannot put a call into Alloy's next window early (ALLOYSYNC_ALLOY_RATE_WINDOW
changes Alloy's window, for a test tenant).

A busy process takes its slots a few at a time: one script call that appends `n` hits (the same
five Redis commands as one hit) stands for its next `n` calls, which must go out within
PREPAID_SECONDS or are dropped (spent, never handed out late). A hit logged up to PREPAID_SECONDS
before its call leaves the log's entry expiring before Alloy's, which the SKEW_SECONDS margin covers.
The batch doubles (up to MAX_PREPAID, and a BUDGET_SHARE-th of the budget) while calls use up the
prepaid slots before they expire, and falls back to one when they did not or the window cannot hold
a batch: a process at Alloy's real pace (a call every 0.4 s) takes one slot at a time, wasting none,
and a burst that ends wastes at most one batch.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass

import redis.asyncio as aioredis
from limits import RateLimitItemPerSecond
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter

from alloysync.settings import Settings
from alloysync.state import keys

SKEW_SECONDS = 1  # added to Alloy's window: absorbs clock and network skew
MAX_WAIT_STEP = 2.0  # seconds between looks at a full window
PREPAID_SECONDS = 0.25  # a slot taken ahead of its call is used within this, or dropped
MAX_PREPAID = 16  # slots taken by one script call at most
BUDGET_SHARE = 50  # ... and at most a 50th of the budget (3 of Alloy's 150 edits a minute)


@dataclass
class Prepaid:
    """Slots of one family taken ahead: `left` of the `taken` may be used until `until` (monotonic)."""

    taken: int = 1
    left: int = 0
    until: float = 0.0


class SharedBudget:
    """Per-family budgets across every process using one Redis (asyncio; one per event loop)."""

    def __init__(self, client: aioredis.Redis, per_window: dict[str, int], window: int = 60 + SKEW_SECONDS):
        # The limiter uses the caller's connection pool: its lifetime is the caller's client's.
        self.storage = RedisStorage(
            "async+redis://",
            implementation="redispy",
            key_prefix=keys.PREFIX + "budget",
            connection_pool=client.connection_pool,  # type: ignore[arg-type]  # limits types its options as scalars
        )
        self.limiter = MovingWindowRateLimiter(self.storage)
        self.items = {family: RateLimitItemPerSecond(amount, window) for family, amount in per_window.items()}
        self.prepaid: dict[str, Prepaid] = {}
        self.locks: dict[str, asyncio.Lock] = {}

    @classmethod
    def from_settings(cls, settings: Settings, client: aioredis.Redis) -> SharedBudget:
        """The budgets of ALLOYSYNC_ALLOY_{QUERY,READ,WRITE}_PER_MINUTE, kept through `client`."""
        return cls(
            client,
            {
                "query": settings.alloy_query_per_minute,
                "read": settings.alloy_read_per_minute,
                "write": settings.alloy_write_per_minute,
            },
            window=round(settings.alloy_rate_window) + SKEW_SECONDS,
        )

    async def acquire(self, family: str) -> float:
        """Take one slot of `family`'s shared budget, waiting for one to free up; returns the wait.

        One caller at a time takes slots from Redis (a lock per family): the others wait for its
        batch and take theirs from it, instead of each taking a batch of its own and all but the
        last being dropped."""
        started = time.monotonic()
        if self._take_prepaid(family, started):
            return 0.0
        async with self.locks.setdefault(family, asyncio.Lock()):
            if self._take_prepaid(family, time.monotonic()):  # refilled while we waited
                return time.monotonic() - started
            await self._refill(family)
        return time.monotonic() - started

    def _take_prepaid(self, family: str, now: float) -> bool:
        prepaid = self.prepaid.get(family)
        if prepaid is not None and now < prepaid.until and prepaid.left > 0:
            prepaid.left -= 1
            return True
        return False

    async def _refill(self, family: str) -> None:
        """Take a batch of slots (one of them for the caller), waiting while the window is full."""
        prepaid = self.prepaid.setdefault(family, Prepaid())
        item = self.items[family]
        # All used before they expired: calls come fast, take twice as many. Else one at a time.
        batch = (
            min(prepaid.taken * 2, MAX_PREPAID, max(1, item.amount // BUDGET_SHARE))
            if time.monotonic() < prepaid.until
            else 1
        )
        while True:
            if batch > 1 and await self.limiter.hit(item, family, cost=batch):
                break
            batch = 1
            if await self.limiter.hit(item, family):
                break
            stats = await self.limiter.get_window_stats(item, family)
            wait = max(0.05, stats.reset_time - time.time())
            # Jitter: processes waiting for the same slot do not all come back at once.
            await asyncio.sleep(min(MAX_WAIT_STEP, wait) * random.uniform(0.8, 1.2))
        self.prepaid[family] = Prepaid(taken=batch, left=batch - 1, until=time.monotonic() + PREPAID_SECONDS)

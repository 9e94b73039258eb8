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
"""

from __future__ import annotations

import asyncio
import random
import time

import redis.asyncio as aioredis
from limits import RateLimitItemPerSecond
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter

from alloysync.settings import Settings
from alloysync.state import keys

SKEW_SECONDS = 1  # added to Alloy's window: absorbs clock and network skew
MAX_WAIT_STEP = 2.0  # seconds between looks at a full window


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
        """Take one slot of `family`'s shared budget, waiting for one to free up; returns the wait."""
        item = self.items[family]
        started = time.monotonic()
        while not await self.limiter.hit(item, family):
            stats = await self.limiter.get_window_stats(item, family)
            wait = max(0.05, stats.reset_time - time.time())
            # Jitter: processes waiting for the same slot do not all come back at once.
            await asyncio.sleep(min(MAX_WAIT_STEP, wait) * random.uniform(0.8, 1.2))
        return time.monotonic() - started

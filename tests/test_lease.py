"""The poller lease: one holder, takeover after the TTL, and fenced writes from an ex-leader refused."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
import redis.asyncio as aioredis

from alloysync.local.redis_server import RedisServer
from alloysync.state.lease import LeaseLost, PollerLease
from alloysync.state.sync import SyncState


async def test_one_holder_takeover_and_fencing(redis_server: RedisServer) -> None:
    client = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    first = PollerLease(client, ttl=1.0, replica="a")
    second = PollerLease(client, ttl=1.0, replica="b")
    assert await first.refresh() is True
    assert await second.refresh() is False
    await asyncio.sleep(0.6)
    assert await first.refresh() is True  # renewed: still ours after more than half the TTL
    await asyncio.sleep(0.6)
    assert await second.refresh() is False
    stale = first.value
    assert stale is not None and stale.startswith("a:")

    await asyncio.sleep(1.1)  # `first` stopped renewing (paused, partitioned, dead)
    assert await second.refresh() is True
    assert second.value is not None and second.value.startswith("b:") and second.value != stale
    store = SyncState(client)
    with pytest.raises(LeaseLost):
        await store.set_cursor(stale, datetime.now(UTC))  # the ex-leader's decision is refused
    await store.set_cursor(second.value, datetime.now(UTC))
    assert await first.refresh() is False  # and it notices

    await second.release()
    assert await first.refresh() is True
    await client.aclose()

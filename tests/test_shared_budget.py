"""The deployment's shared Alloy budget (state/budgets.py) against a real Redis: it never hands out
more slots than the window holds, whichever process asks, and a busy process takes its slots a few
per script call while a slow one takes them one at a time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from alloysync.local.redis_server import RedisServer
from alloysync.state import budgets
from alloysync.state.budgets import SharedBudget
from alloysync.state.connections import connect_async


@pytest.fixture
async def client(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    connection = connect_async(redis_server.url)
    yield connection
    await connection.aclose()


async def _script_calls(client: aioredis.Redis) -> int:
    stats = await client.info("commandstats")
    return sum(int(stats.get(name, {}).get("calls", 0)) for name in ("cmdstat_evalsha", "cmdstat_eval"))


async def _logged_hits(client: aioredis.Redis) -> int:
    """The hits in the budget logs (every slot taken, used or dropped)."""
    names = [name async for name in client.scan_iter(match="alloysync:budget*")]
    return sum([await client.llen(name) for name in names])


async def _granted(budget: SharedBudget, family: str, attempts: int, timeout: float) -> int:
    granted = 0
    for _ in range(attempts):
        try:
            async with asyncio.timeout(timeout):
                await budget.acquire(family)
        except TimeoutError:
            continue
        granted += 1
    return granted


async def test_two_processes_together_never_get_more_than_the_window_holds(client: aioredis.Redis) -> None:
    first = SharedBudget(client, {"write": 200})
    second = SharedBudget(client, {"write": 200})  # another process on the same Redis
    granted = await asyncio.gather(
        _granted(first, "write", 110, timeout=0.2), _granted(second, "write", 110, timeout=0.2)
    )
    assert sum(granted) <= 200
    # Slots dropped unused (a batch taken ahead that the burst did not need): at most a batch each.
    assert sum(granted) >= 200 - 2 * (200 // budgets.BUDGET_SHARE)
    assert await _logged_hits(client) == 200


async def test_a_busy_process_takes_its_slots_a_few_per_script_call(client: aioredis.Redis) -> None:
    budget = SharedBudget(client, {"write": 100_000})
    calls_before = await _script_calls(client)
    for _ in range(200):
        await budget.acquire("write")
    calls = await _script_calls(client) - calls_before
    assert calls <= 200 / budgets.MAX_PREPAID + 5  # 1, 2, 4, 8, then batches of MAX_PREPAID
    assert await _logged_hits(client) >= 200


async def test_a_slow_process_takes_one_slot_per_call_and_wastes_none(client: aioredis.Redis) -> None:
    budget = SharedBudget(client, {"write": 100_000})
    for _ in range(4):
        await budget.acquire("write")
        await asyncio.sleep(budgets.PREPAID_SECONDS + 0.05)
    assert await _logged_hits(client) == 4

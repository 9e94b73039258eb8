"""serve's asyncio Redis client (state/connections.py) packs its commands with hiredis, and what it
writes reads back the same through the synchronous client the workers use."""

from __future__ import annotations

import asyncio
from random import Random

import redis

from alloysync.local.redis_server import RedisServer
from alloysync.state.connections import connect, connect_async


async def test_the_asyncio_client_packs_with_hiredis_and_writes_what_the_sync_client_reads(
    redis_server: RedisServer,
) -> None:
    client = connect_async(redis_server.url)
    sync = connect(redis_server.url)
    try:
        assert "Packed" in client.connection_pool.connection_class.__name__
        await client.set("text", "Queued: a run — ü, with spaces")
        await client.hset("hash", mapping={"int": 12, "float": 2.25, "big": 10**18})
        await client.zadd("zset", {"a": 1.5})
        many = [str(n) for n in range(5000)]  # the size of a poller page's script call
        echoed = await client.eval("return #ARGV .. ':' .. ARGV[1] .. ':' .. ARGV[#ARGV]", 0, *many)
        async with client.pipeline(transaction=False) as pipe:
            pipe.get("text")
            pipe.hgetall("hash")
            pipeline_answers = await pipe.execute()

        assert echoed == "5000:0:4999"
        assert pipeline_answers == [
            "Queued: a run — ü, with spaces",
            {"int": "12", "float": "2.25", "big": str(10**18)},
        ]
        assert sync.get("text") == "Queued: a run — ü, with spaces"
        assert sync.zscore("zset", "a") == 1.5
        try:
            await client.set("flag", True)
        except redis.DataError as error:  # as the synchronous client refuses it
            assert "must be str, int, float or bytes" in str(error)
        else:
            raise AssertionError("a bool was sent to Redis")
    finally:
        await client.aclose()
        sync.close()


async def test_a_task_cancelled_at_any_moment_of_its_commands_stops(redis_server: RedisServer) -> None:
    """redis-py sends each command under `asyncio.wait_for`, which on Python 3.11 returns instead of
    raising when it is cancelled just as the send completes: the task ran on. serve's client sends
    under `asyncio.timeout`. Tasks that loop on commands (as the reporter and the notifier do, their
    stream always holding entries) are cancelled at random moments; every one of them stops."""
    client = connect_async(redis_server.url)
    feeder = connect_async(redis_server.url)
    await client.xgroup_create("stream", "group", id="0", mkstream=True)
    await feeder.xadd("stream", {"n": "0"})
    looping = asyncio.Event()

    async def loop_on_commands() -> None:
        while True:
            await client.xpending_range("stream", "group", min="-", max="+", count=10)
            await client.xreadgroup("group", "c", {"stream": "0"}, count=10, block=1000)
            await feeder.xadd("stream", {"n": "1"}, maxlen=100)
            looping.set()

    random = Random(7)
    tasks: list[asyncio.Task[None]] = []
    try:
        for _ in range(300):
            looping.clear()
            tasks.append(asyncio.create_task(loop_on_commands()))
            async with asyncio.timeout(5):
                await looping.wait()  # cancelled among its commands, not before the first
            await asyncio.sleep(random.uniform(0, 0.003))
            tasks[-1].cancel()
            await asyncio.wait({tasks[-1]}, timeout=2)
            if not tasks[-1].done():
                break  # it ran on (and a task that swallowed one cancellation may swallow the next)
        assert all(task.cancelled() for task in tasks), f"cancelled task {len(tasks)} of 300 kept running"
    finally:
        await client.aclose()  # stops a task that ran on: its next command fails
        await feeder.aclose()
        await asyncio.wait(tasks, timeout=5)

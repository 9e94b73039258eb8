"""serve's asyncio Redis client (state/connections.py) packs its commands with hiredis, and what it
writes reads back the same through the synchronous client the workers use."""

from __future__ import annotations

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

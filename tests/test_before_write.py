"""The reads before the reporter's edits (serve/before_write.py) against a real Redis: the writers
of one turn share one pipelined read, each gets its own item's answer, and a Redis that refuses
raises in every writer of the batch."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import pytest
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from alloysync.local.redis_server import RedisServer
from alloysync.serve.before_write import BeforeWriteReads
from alloysync.state import keys
from alloysync.state.connections import connect_async
from alloysync.state.outbox import BeforeWrite, Outbox


@pytest.fixture
async def client(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    connection = connect_async(redis_server.url)
    yield connection
    await connection.aclose()


class CountingOutbox(Outbox):
    """The real outbox, noting the items of each read it is asked for."""

    def __init__(self, client: aioredis.Redis) -> None:
        super().__init__(client)
        self.batches: list[list[str]] = []

    async def before_writes(self, item_ids: Sequence[str]) -> list[BeforeWrite]:
        self.batches.append(list(item_ids))
        return await super().before_writes(item_ids)


async def test_writers_of_one_turn_share_one_read_and_get_their_own_item(client: aioredis.Redis) -> None:
    await client.hset(keys.job("a"), mapping={"reported": "1700000000000-3", "signature": "sig-a"})
    await client.hset(keys.job("b"), mapping={"signature": "sig-b"})
    outbox = CountingOutbox(client)
    reads = BeforeWriteReads(outbox)

    answers = await asyncio.gather(reads.read("a"), reads.read("b"), reads.read("c"))

    assert list(answers) == [((1700000000000, 3), "sig-a"), (None, "sig-b"), (None, None)]
    assert outbox.batches == [["a", "b", "c"]]


async def test_a_writer_that_comes_after_the_batch_left_gets_a_read_of_its_own(
    client: aioredis.Redis,
) -> None:
    await client.hset(keys.job("a"), mapping={"signature": "first"})
    outbox = CountingOutbox(client)
    reads = BeforeWriteReads(outbox)
    assert await reads.read("a") == (None, "first")
    await client.hset(keys.job("a"), mapping={"reported": "5-0", "signature": "second"})
    assert await reads.read("a") == ((5, 0), "second")  # nothing kept from the first read
    assert outbox.batches == [["a"], ["a"]]


async def test_a_redis_that_refuses_raises_in_every_writer_of_the_batch(
    client: aioredis.Redis, redis_server: RedisServer
) -> None:
    reads = BeforeWriteReads(Outbox(client))
    redis_server.stop()
    answers = await asyncio.gather(reads.read("a"), reads.read("b"), return_exceptions=True)
    assert all(isinstance(answer, RedisError) for answer in answers), answers
    assert reads.waiting == []


async def test_writers_waiting_on_a_batch_are_cancelled_with_it(
    client: aioredis.Redis, redis_server: RedisServer
) -> None:
    """The reporter stopping while a batch is in flight (Redis paused): its writers stop too,
    nothing is left waiting."""
    pauser = connect_async(redis_server.url)
    await pauser.client_pause(3000)
    reads = BeforeWriteReads(Outbox(client))
    writers = [asyncio.create_task(reads.read(item_id)) for item_id in ("a", "b")]
    await asyncio.sleep(0.2)  # the batch has sent its read; Redis holds it
    assert reads._batch is not None and not reads._batch.done()
    reads._batch.cancel()
    outcomes = await asyncio.wait_for(asyncio.gather(*writers, return_exceptions=True), 5)
    assert all(isinstance(outcome, asyncio.CancelledError) for outcome in outcomes), outcomes
    await pauser.client_unpause()
    await pauser.aclose()

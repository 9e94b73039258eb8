"""The bare-Dramatiq side of benchmarks/throughput.py: a plain RedisBroker and two actors, loaded by
Dramatiq's worker CLI (`python -m dramatiq benchmarks.throughput_actors`).

`noop` does nothing but count itself done (one INCR, so the benchmark knows when the queue is
drained); `edit` also makes one Alloy status edit through the emulator's public API, the floor of
any design that writes a status back per message.
"""

from __future__ import annotations

import json
import os
import urllib.request

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker

DONE = "bench:done"

broker = RedisBroker(url=os.environ["BENCH_REDIS_URL"])  # type: ignore[no-untyped-call]
dramatiq.set_broker(broker)
_counter = redis.Redis.from_url(os.environ["BENCH_REDIS_URL"])


@dramatiq.actor(queue_name="bench", max_retries=0)
def noop(number: int) -> None:
    _counter.incr(DONE)


@dramatiq.actor(queue_name="bench", max_retries=0)
def edit(item_id: str, signature: str, code: str) -> None:
    body = json.dumps({"attributes": [{"attributeCode": code, "value": "Succeeded"}], "signature": signature})
    request = urllib.request.Request(  # noqa: S310 - the benchmark's own loopback emulator
        f"{os.environ['BENCH_ALLOY_URL']}/api/item/{item_id}", data=body.encode(), method="PUT"
    )
    request.add_header("Authorization", f"Bearer {os.environ['BENCH_ALLOY_TOKEN']}")
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        response.read()
    _counter.incr(DONE)

"""serve SIGKILLed half-way through a page of the poller's first pass: the next lease holder's pass
finishes the page, and every record gets its one run, with one message, none lost, none twice."""

from __future__ import annotations

import json
import time

from alloysync.state import keys
from tests.support.system import CODES, DESIGN, System

RECORDS = 1500  # 15 pages of 100
QUEUE = "dramatiq:default"


def half_acted(system: System) -> int:
    """Jobs whose version is stored but not (yet) recorded as acted upon."""
    item_ids: set[str] = system.redis.smembers(keys.JOBS)  # type: ignore[assignment]
    with system.redis.pipeline(transaction=False) as pipe:
        for item_id in item_ids:
            pipe.hmget(keys.job(item_id), "version", "acted")
        rows = pipe.execute()
    return sum(1 for version, acted in rows if (acted or "0") != version)


def kill_mid_page(system: System, name: str) -> int:
    """Start serve `name`, SIGKILL it while a page's definitions are stored and their runs not all
    sent, and answer how many jobs it left stored but not acted upon."""
    serve = system.start_serve(name)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with system.redis.pipeline(transaction=True) as pipe:  # one snapshot of both
            pipe.scard(keys.JOBS)
            pipe.llen(QUEUE)
            known, messages = pipe.execute()
        if known > messages:  # a page is stored, its messages are not all on the queue yet
            serve.kill()
            return half_acted(system)
        if messages >= RECORDS:
            break
    serve.kill()
    return 0


def test_serve_killed_mid_page_loses_no_run_and_creates_none_twice(system: System) -> None:
    system.overrides["ALLOYSYNC_LEASE_TTL"] = "2"  # the next serve takes over soon after the kill
    drafts = [
        {
            "designCode": DESIGN,
            "attributes": [
                {"attributeCode": CODES.title, "value": f"job {n}"},
                {"attributeCode": CODES.enabled, "value": True},
                {"attributeCode": CODES.task, "value": "tests.noop"},
            ],
        }
        for n in range(RECORDS)
    ]
    items = [item["itemId"] for item in system.emulator.bulk_create(drafts)]
    left = 0
    for attempt in range(3):  # the kill may land between two pages: then try again, further on
        left = kill_mid_page(system, f"serve-{attempt}")
        if left:
            break
    assert left > 0, "no kill landed half-way through a page"
    print(f"serve killed with {left} jobs stored but not acted upon, attempt {attempt + 1}")
    assert system.redis.llen(QUEUE) < RECORDS

    system.start_serve("serve-next")  # no worker runs: every message sent stays on the queue

    def finished() -> bool:
        return (
            system.redis.llen(QUEUE) >= RECORDS
            and system.redis.zcard(keys.RUNS_PENDING) == 0  # recovery sends a run left unsent
            and half_acted(system) == 0
        )

    system.wait_until(finished, 120, "the next serve to finish the page")
    time.sleep(1)
    messages = [json.loads(body) for body in system.redis.hvals(f"{QUEUE}.msgs")]
    assert sorted(message["args"][0] for message in messages) == sorted(f"now:{item}:v1" for item in items)
    assert system.redis.llen(QUEUE) == RECORDS  # one message per run: none sent twice
    assert len(system.redis.keys("alloysync:run:*")) == RECORDS  # one run per record, none lost
    for item in items:
        assert system.redis.hget(keys.job(item), "acted") == "1"
        assert system.redis.lrange(keys.job_runs(item), 0, -1) == [f"now:{item}:v1"]

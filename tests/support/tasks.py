"""Tasks for the end-to-end tests. Every execution is recorded in the test's Redis (list
`test:executions`), so a test can count how many times a task body really ran."""

from __future__ import annotations

import functools
import json
import os
import time
from typing import Any

import redis

from alloysync.tasks import task

EXECUTIONS = "test:executions"


@functools.cache
def _client() -> redis.Redis:
    """One client per worker process (redis-py clients are thread-safe)."""
    return redis.Redis.from_url(os.environ["ALLOYSYNC_REDIS_URL"], decode_responses=True)


def _record(kind: str, label: str) -> None:
    entry = {"task": kind, "label": label, "pid": os.getpid(), "at": time.time()}
    _client().rpush(EXECUTIONS, json.dumps(entry))


@task("tests.record", max_retries=0)
def record(label: str, sleep: float = 0.0) -> dict[str, Any]:
    """Record an execution, then sleep `sleep` seconds."""
    _record("record", label)
    time.sleep(sleep)
    return {"summary": f"recorded {label}", "label": label}


@task("tests.fail", max_retries=1, time_limit=30)
def fail(label: str) -> None:
    """Record an execution and fail."""
    _record("fail", label)
    raise RuntimeError(f"{label} failed on purpose")


@task("tests.flaky", max_retries=3, time_limit=30)
def flaky(label: str, failures: int) -> dict[str, Any]:
    """Fail the first `failures` attempts, then succeed."""
    _record("flaky", label)
    attempt = _client().incr(f"test:attempts:{label}")
    if attempt <= failures:
        raise RuntimeError(f"{label}: attempt {attempt} fails on purpose")
    return {"summary": f"{label} succeeded on attempt {attempt}"}


@task("tests.sleepy", max_retries=0, time_limit=1)
def sleepy(label: str, seconds: float) -> None:
    """Sleep longer than its 1 s time limit allows."""
    _record("sleepy", label)
    time.sleep(seconds)


@task("tests.echo", max_retries=0)
def echo(value: Any) -> Any:
    """Return its input (a later pipeline step)."""
    return value


@task("tests.big", max_retries=0)
def big(size: int) -> dict[str, Any]:
    """Return a result of about `size` bytes."""
    return {"blob": "x" * size}

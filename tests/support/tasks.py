"""Tasks for the end-to-end tests. Every execution is recorded in the test's Redis (list
`test:executions`), so a test can count how many times a task body really ran."""

from __future__ import annotations

import functools
import json
import logging
import os
import time
import warnings
from typing import Any

import redis

from alloysync import RunContext
from alloysync.tasks import task

EXECUTIONS = "test:executions"


@functools.cache
def _client() -> redis.Redis:
    """One client per worker process (redis-py clients are thread-safe)."""
    return redis.Redis.from_url(os.environ["ALLOYSYNC_REDIS_URL"], decode_responses=True)


def _record(what: str, label: str, /, **extra: Any) -> None:
    entry = {"task": what, "label": label, "pid": os.getpid(), "at": time.time(), **extra}
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


@task("tests.slow", max_retries=0, time_limit=300)
def slow(ctx: RunContext, label: str, seconds: float) -> dict[str, Any]:
    """Record its start, work for `seconds` (stopping early when cancelled), record its end."""
    _record("slow-start", label, run_id=ctx.run_id)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if ctx.cancelled():
            _record("slow-stopped", label, run_id=ctx.run_id)
            return {"summary": f"{label} stopped"}
        time.sleep(0.05)
    _record("slow-end", label, run_id=ctx.run_id)
    return {"summary": f"{label} done"}


@task("tests.stubborn", max_retries=0, time_limit=300)
def stubborn(label: str, seconds: float) -> dict[str, Any]:
    """Work for `seconds` without ever looking at a cancel: it has to be interrupted. (Like Dramatiq's
    time limit, an interrupt lands between Python bytecodes: one C call blocking for minutes would
    only be interrupted when it returns, so this works in short sleeps, as real code does.)"""
    _record("stubborn-start", label)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.1)
    _record("stubborn-end", label)
    return {"summary": f"{label} done"}


@task("tests.context", max_retries=0)
def context(ctx: RunContext, label: str) -> dict[str, Any]:
    """Record what the run's context says."""
    ctx.log.info("context of %s", label)
    fields = {
        "run_id": ctx.run_id,
        "item_id": ctx.item_id,
        "job_title": ctx.job_title,
        "kind": ctx.kind,
        "scheduled_at": ctx.scheduled_at.isoformat() if ctx.scheduled_at else None,
        "attempt": ctx.attempt,
        "step": ctx.step,
    }
    _record("context", label, **fields)
    return {"summary": f"context of {label}", **fields}


@task("tests.alloy_edits", max_retries=0, time_limit=300)
async def alloy_edits(ctx: RunContext, item_id: str, count: int, attribute: str) -> dict[str, Any]:
    """Edit attribute `attribute` of item `item_id` `count` times through ctx.alloy (the shared budget)."""
    for number in range(count):
        await ctx.alloy.update_owned(item_id, {attribute: f"edit {number}"})
    _record("alloy_edits", item_id, run_id=ctx.run_id)
    return {"summary": f"{count} edits of {item_id}"}


@task("tests.chatty", max_retries=0)
def chatty(ctx: RunContext, label: str, fail: bool = False, secret: str = "") -> dict[str, Any]:
    """Log through ctx.log, a plain stdlib logger and a warning, then fail if asked."""
    ctx.log.info("chatty %s says hello", label)
    logging.getLogger("some.library").warning("library warning from %s", label)
    warnings.warn(f"deprecated call in {label}", UserWarning, stacklevel=1)
    if secret:
        ctx.log.info("the secret is %s", secret)
    ctx.log.info("last words of %s", label)
    if fail:
        raise RuntimeError(f"{label} failed after talking")
    return {"summary": f"{label} talked"}


@task("tests.noop", max_retries=0)
def noop(label: str = "") -> dict[str, Any]:
    """Do nothing (for throughput measurements: no Redis, no sleep)."""
    return {"summary": "nothing done"}

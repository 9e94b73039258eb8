"""Waiting for something to become true in tests, failing with what was being waited for."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    check: Callable[[], T | None],
    timeout: float,
    what: str,
    interval: float = 0.2,
    died: Callable[[], str | None] = lambda: None,
    context: Callable[[], str] = lambda: "",
) -> T:
    """Poll `check` until it returns something truthy and return that.

    Fails after `timeout` seconds, or as soon as `died()` names a process that exited; the failure
    message carries `context()` (logs) to show why."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        dead = died()
        if dead:
            raise AssertionError(f"{dead} waiting for {what}\n{context()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}\n{context()}")
        time.sleep(interval)

"""wait.until decides once per run and step when to wake, and passes its input on after that."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from alloysync.builtins import wait
from alloysync.builtins.common import BuiltinError
from alloysync.local.redis_server import RedisServer
from alloysync.model.outcomes import StepSleeps
from alloysync.model.times import utc_now
from tests.builtins.conftest import ContextFactory, make_settings


async def test_the_wake_time_is_kept_across_deliveries(
    redis_server: RedisServer, context: ContextFactory
) -> None:
    settings = make_settings(redis_server, None)
    started = utc_now()
    async with context(settings, step=1) as ctx:
        with pytest.raises(StepSleeps) as first:
            await wait.wait_until({"n": 1}, ctx=ctx, delay="2s")
        assert timedelta(seconds=1.5) < first.value.until - started < timedelta(seconds=3)
        await asyncio.sleep(0.5)
        with pytest.raises(StepSleeps) as second:  # delivered again early: the same wake time
            await wait.wait_until({"n": 1}, ctx=ctx, delay="2s")
        assert second.value.until == first.value.until
        await asyncio.sleep((first.value.until - utc_now()).total_seconds() + 0.05)
        assert await wait.wait_until({"n": 1}, ctx=ctx, delay="2s") == {"n": 1}
    async with context(settings, step=1, run_id="now:job-1:v2") as ctx:  # another run waits again
        with pytest.raises(StepSleeps):
            await wait.wait_until({"n": 1}, ctx=ctx, delay="2s")
        past = (utc_now() - timedelta(hours=1)).isoformat()
        async with context(settings, step=2) as later:
            assert await wait.wait_until("x", ctx=later, until=past) == "x"
        with pytest.raises(BuiltinError, match="ALLOYSYNC_BUILTIN_WAIT_MAX"):
            await wait.wait_until("x", ctx=ctx, until=(utc_now() + timedelta(days=60)).isoformat())

"""`wait.until`: a durable sleep in a pipeline that holds no worker thread.

`{"delay": "2h"}` (from when the step first ran) or `{"until": "2026-07-02T09:30:00Z"}`. The step
remembers its wake time per run (state/builtin_memory.py) and, until then, raises `StepSleeps`:
the worker parks the run and sends the same step again, delayed until the wake time
(worker/sleeps.py). Run again at its time, the step returns its input unchanged, so the pipeline
goes on with what the step before it gave: `alloy.query | … | wait.until | alloy.get | …` checks
again two hours later. A cancel while it sleeps ends the run at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from alloysync.builtins.common import BuiltinError, builtin_memory, moment, settings_of
from alloysync.model.context import RunContext
from alloysync.model.job_options import parse_duration
from alloysync.model.outcomes import StepSleeps
from alloysync.model.registry import ParamsError, task
from alloysync.model.times import format_alloy_datetime, utc_now
from alloysync.settings import Settings


def _wait_seconds(options: Mapping[str, Any], settings: Settings, now: datetime) -> float:
    delay, until = options.get("delay"), options.get("until")
    if (delay is None) == (until is None):
        raise ParamsError("wait.until needs one of 'delay' (e.g. \"2h\") and 'until' (a date-time)")
    if delay is not None:
        seconds = parse_duration(str(delay))
        if seconds is None:
            raise ParamsError(f"option 'delay': {delay!r} is not a duration; write e.g. 90s, 30m, 2h or 1d")
    else:
        seconds = (moment(until, "until", now) - now).total_seconds()
    if seconds > settings.builtin_wait_max:
        raise ParamsError(
            f"wait.until waits at most {settings.builtin_wait_max:g} s (ALLOYSYNC_BUILTIN_WAIT_MAX); "
            f"this would wait {seconds:.0f} s"
        )
    return max(0.0, seconds)


def _check_wait(options: Mapping[str, Any], settings: Settings) -> None:
    if options.get("until") is not None:
        moment(options["until"], "until")  # the format only: the time may pass before it runs
        if options.get("delay") is not None:
            raise ParamsError("wait.until needs one of 'delay' and 'until', not both")
        return
    _wait_seconds(options, settings, utc_now())


@task("wait.until", max_retries=3, time_limit=60, check=_check_wait, example={"delay": "2h"})
async def wait_until(
    previous: Any = None, *, ctx: RunContext, delay: str | None = None, until: str | None = None
) -> Any:
    """Sleep `delay` (90s, 30m, 2h, 1d) or `until` a date-time without holding a worker.

    Then passes the previous result on unchanged."""
    settings = settings_of(ctx)
    now = utc_now()
    try:
        seconds = _wait_seconds({"delay": delay, "until": until}, settings, now)
    except ParamsError as error:
        raise BuiltinError(f"wait.until: {error}") from None
    proposed = int((now + timedelta(seconds=seconds)).timestamp() * 1000)
    async with builtin_memory(settings) as memory:
        ttl = int(seconds) + 86_400
        wake_ms = int(await memory.remember_first(ctx.run_id, ctx.step, "wake", str(proposed), ttl=ttl))
    remaining = wake_ms / 1000 - now.timestamp()
    if remaining <= 0:
        ctx.log.info("wait.until: woke at %s; going on", format_alloy_datetime(now))
        return previous
    wake = datetime.fromtimestamp(wake_ms / 1000, tz=now.tzinfo)
    ctx.log.info("wait.until: sleeping until %s (%.0f s)", format_alloy_datetime(wake), remaining)
    raise StepSleeps(wake, "wait.until")

"""`RunContext`: what a task learns about the run it is part of (the task API, DESIGN §4).

A task parameter annotated `RunContext` receives it instead of a Params value:

    from alloysync import RunContext, task

    @task("billing.refresh")
    async def refresh(ctx: RunContext, days: int = 7) -> dict[str, object]:
        ctx.log.info("refreshing %s days of item %s", days, ctx.item_id)
        item = await ctx.alloy.get_item(ctx.item_id)
        ...

It carries the run's identity (`run_id`, `item_id`, `job_title`, `kind`, `scheduled_at`), where the
run stands (`step`, `attempt`), a logger whose lines are kept with the run (`log`), whether the run
has been cancelled (`cancelled()`, for long tasks to stop cleanly), and `alloy`, an Alloy client
whose calls take their slots from the deployment's shared budgets (every process together stays
under Alloy's per-key limits). `alloy` is asynchronous; a sync task runs a call with `ctx.run(...)`:
`item = ctx.run(ctx.alloy.get_item(ctx.item_id))`.

`kind` is one of "now" (a once-now job), "requested" (RunRequested), "at" (run-at), "cron" and
"backfill"; `scheduled_at` is the aware UTC time the run was scheduled for (at, cron, backfill) or
None. Idempotent task code keys its side effects by `run_id`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from alloysync.alloy.client import AlloyClient
    from alloysync.settings import Settings

T = TypeVar("T")

RUN_KINDS = ("now", "requested", "at", "cron", "backfill")


@dataclass
class RunContext:
    """The run a task step belongs to (see the module docstring)."""

    run_id: str
    item_id: str
    job_title: str
    kind: str
    scheduled_at: datetime | None
    attempt: int  # 1 for the first attempt of this step
    step: int  # 0-based position in the pipeline
    log: logging.LoggerAdapter[logging.Logger]
    alloy: AlloyClient
    is_cancelled: Callable[[], bool] = field(repr=False, default=lambda: False)
    loop: asyncio.AbstractEventLoop | None = field(repr=False, default=None)
    settings: Settings | None = field(repr=False, default=None)  # the worker's (the built-in tasks' limits)

    def cancelled(self) -> bool:
        """True once the run was cancelled (CancelRequested, or replaced by a newer run): stop soon."""
        return self.is_cancelled()

    def run(self, awaitable: Awaitable[T]) -> T:
        """Run a coroutine (e.g. a `ctx.alloy` call) to completion from a sync task."""
        if self.loop is None:
            raise RuntimeError("ctx.run() is for sync tasks; an async task awaits ctx.alloy calls directly")
        return self.loop.run_until_complete(_as_coroutine(awaitable))


async def _as_coroutine(awaitable: Awaitable[T]) -> T:
    return await awaitable


def is_context_annotation(annotation: Any) -> bool:
    """Whether a resolved parameter annotation asks for the run's context."""
    return annotation is RunContext

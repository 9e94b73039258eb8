"""Calling a task step in the worker thread: its arguments, its `RunContext`, and cancelling it.

A step is called with its options (the first step's Params, or the step's own), the previous
step's result (a later pipeline step), and the run's context when the task asks for one. Sync
tasks run in the worker thread; async tasks get an event loop of their own in it.

Cancelling (CancelRequested, Overlap replace) follows Dramatiq's time limit: every worker process
has a `CancelWatcher` thread that looks every `CANCEL_POLL` seconds at `runs:cancelling` for the
runs its threads execute. For one that is being cancelled it sets the step's flag at once
(`ctx.cancelled()` turns true, so a long task can stop cleanly); an async task's coroutine is
cancelled at once; a sync task that is still running `CANCEL_GRACE` seconds later gets
`RunCancelled` raised in its thread, the way `TimeLimitExceeded` is. The step is then over, never
retried, and the run ends as Cancelled. From the cancel request to the interrupt: at most
CANCEL_POLL + CANCEL_GRACE seconds (4 s), within the 10 s the contract allows.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from dramatiq.middleware import Interrupt
from dramatiq.middleware.threading import raise_thread_exception

from alloysync.alloy.client import AlloyClient
from alloysync.alloy.ratelimit import RateLimits
from alloysync.log import get_logger
from alloysync.model.context import RunContext
from alloysync.model.registry import RegisteredTask
from alloysync.model.runs import RunKind
from alloysync.model.times import parse_alloy_datetime
from alloysync.settings import Settings
from alloysync.state.budgets import SharedBudget
from alloysync.state.claims import Claims
from alloysync.state.connections import connect_async
from alloysync.state.records import RunRecord

logger = get_logger(__name__)

CANCEL_POLL = 1.0  # seconds between the watcher's looks at runs:cancelling
CANCEL_GRACE = 3.0  # seconds a sync task has to stop on its own once ctx.cancelled() is true


class RunCancelled(Interrupt):
    """Raised in a worker thread whose step was cancelled (like Dramatiq's TimeLimitExceeded)."""


@dataclass
class RunningStep:
    """One step executing in a worker thread, as the cancel watcher sees it."""

    run_id: str
    thread_id: int
    cancelled: threading.Event = field(default_factory=threading.Event)
    interrupt_at: float | None = None  # monotonic time to raise RunCancelled in the thread
    loop: asyncio.AbstractEventLoop | None = None  # an async task's loop and task
    task: asyncio.Task[Any] | None = None
    interrupted: bool = False


class StepRegistry:
    """The steps this worker process executes, by thread."""

    def __init__(self) -> None:
        self._steps: dict[int, RunningStep] = {}
        self._lock = threading.Lock()

    def enter(self, run_id: str) -> RunningStep:
        step = RunningStep(run_id, threading.get_ident())
        with self._lock:
            self._steps[step.thread_id] = step
        return step

    def leave(self, step: RunningStep) -> None:
        with self._lock:
            self._steps.pop(step.thread_id, None)

    def running(self) -> list[RunningStep]:
        with self._lock:
            return list(self._steps.values())


STEPS = StepRegistry()


class CancelWatcher:
    """The thread that interrupts cancelled steps (see the module docstring)."""

    def __init__(
        self, claims: Claims, steps: StepRegistry = STEPS, every_second: Callable[[], None] | None = None
    ) -> None:
        self.claims = claims
        self.steps = steps
        self.every_second = every_second  # also run at each look (the run-log flush)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="alloysync-cancel-watcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(CANCEL_POLL):
            try:
                self.look_once()
                if self.every_second is not None:
                    self.every_second()
            except Exception as error:  # Redis away: try again at the next look
                logger.warning("cannot look for cancelled runs", error=str(error))

    def look_once(self) -> None:
        running = self.steps.running()
        cancelling = self.claims.cancelling(sorted({step.run_id for step in running}))
        now = time.monotonic()
        for step in running:
            if step.run_id in cancelling and not step.cancelled.is_set():
                step.cancelled.set()
                logger.info("cancelling the running step", run_id=step.run_id)
                if step.loop is not None and step.task is not None:
                    step.loop.call_soon_threadsafe(step.task.cancel)
                else:
                    step.interrupt_at = now + CANCEL_GRACE
            if step.interrupt_at is not None and now >= step.interrupt_at and not step.interrupted:
                step.interrupted = True
                raise_thread_exception(step.thread_id, RunCancelled)  # type: ignore[no-untyped-call]


@dataclass(frozen=True)
class StepCall:
    """One call of a task step: the task, step `step` of `run`, which attempt this is, and the
    worker thread's entry for it."""

    registered: RegisteredTask
    run: RunRecord
    step: int
    attempt: int
    settings: Settings
    running: RunningStep

    def arguments(self, context: RunContext | None) -> dict[str, Any]:
        """The task function's keyword arguments: the step's options, the previous step's result
        (a later pipeline step) and `context` (when the task asks for one)."""
        follows = self.step > 0
        previous = self.run.step_results.get(self.step - 1) if follows else None
        return self.registered.arguments(previous, self.run.options_for(self.step), context, follows=follows)

    def context(self, client: Any, loop: asyncio.AbstractEventLoop | None) -> RunContext:
        """The step's `RunContext`: its Alloy client shares the deployment's budgets through `client`."""
        run, step, settings = self.run, self.step, self.settings
        limits = RateLimits.from_settings(settings, shared=SharedBudget.from_settings(settings, client))
        task_logger = logging.getLogger(f"alloysync.task.{run.steps[step]}")
        return RunContext(
            run_id=run.run_id,
            item_id=run.item_id,
            job_title=run.title,
            kind=_kind_name(run.kind),
            scheduled_at=parse_alloy_datetime(run.scheduled_at) if run.scheduled_at else None,
            attempt=self.attempt,
            step=step,
            log=logging.LoggerAdapter(task_logger, {"run_id": run.run_id, "step": step}),
            alloy=AlloyClient.from_settings(settings, limits=limits),
            is_cancelled=self.running.cancelled.is_set,
            loop=loop,
            settings=settings,
        )


def call_step(
    registered: RegisteredTask,
    run: RunRecord,
    step: int,
    attempt: int,
    settings: Settings,
    running: RunningStep,
) -> Any:
    """Call step `step` of `run` in this thread and return its result. Raises `RunCancelled` when
    the run was cancelled while the step ran, whatever the task did about it."""
    call = StepCall(registered, run, step, attempt, settings, running)
    result = _call_async(call) if registered.is_async else _call_sync(call)
    if running.cancelled.is_set():
        raise RunCancelled("the run was cancelled while the step ran")
    return result


def _call_sync(call: StepCall) -> Any:
    function = call.registered.function
    if call.registered.context_parameter is None:
        return function(**call.arguments(None))
    loop = asyncio.new_event_loop()  # for ctx.run(ctx.alloy...) calls
    client = connect_async(call.settings.effective_redis_url)
    context = call.context(client, loop)
    try:
        return function(**call.arguments(context))
    finally:
        loop.run_until_complete(_close(context.alloy, client))
        loop.close()


def _call_async(call: StepCall) -> Any:
    running = call.running

    async def main() -> Any:
        running.loop = asyncio.get_running_loop()
        running.task = asyncio.current_task()
        if running.cancelled.is_set():
            raise RunCancelled("the run was cancelled before the step started")
        if call.registered.context_parameter is None:
            return await _awaited(call.registered.function(**call.arguments(None)))
        client = connect_async(call.settings.effective_redis_url)
        context = call.context(client, None)
        try:
            return await _awaited(call.registered.function(**call.arguments(context)))
        finally:
            await _close(context.alloy, client)

    try:
        return asyncio.run(main())
    except asyncio.CancelledError:
        if running.cancelled.is_set():
            raise RunCancelled("the run was cancelled while the step ran") from None
        raise


async def _awaited(coroutine: Coroutine[Any, Any, Any]) -> Any:
    return await coroutine


async def _close(alloy: AlloyClient, client: Any) -> None:
    await alloy.close()
    await client.aclose()


def _kind_name(kind: str) -> str:
    try:
        return RunKind(kind).context_name
    except ValueError:
        return kind

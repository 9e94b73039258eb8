"""The poller lease's holder side of `serve`: hold (or wait for) the lease, and run the poller,
the reporter, the notifier and the freshness check while it is held.

The replica holding the lease polls Alloy, enqueues runs, re-sends runs left pending by a crash,
writes run events back to Alloy, sends notifications and marks overdue jobs; the others stand by
and take over within 15 s of its death. A refused fenced write (another replica took the lease)
stops every leader task, and they start again once the lease is this replica's again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from redis.exceptions import RedisError

from alloysync.log import get_logger
from alloysync.serve.freshness import FreshnessCheck
from alloysync.serve.notifier import Notifier
from alloysync.serve.poller import Poller
from alloysync.serve.reporter import Reporter
from alloysync.state.lease import LeaseLost

logger = get_logger(__name__)

STOP_TIMEOUT = 5.0  # seconds the leader tasks get to finish after being cancelled
RESTART_DELAY = 2.0  # seconds before a leader task that failed is started again


class Leadership:
    """Holds (or waits for) the poller lease and runs the leader tasks while it is held."""

    def __init__(
        self,
        poller: Poller,
        reporter: Reporter,
        notifier: Notifier | None = None,
        freshness: FreshnessCheck | None = None,
    ) -> None:
        """Run `poller`, `reporter` and (when given) `notifier` and `freshness` while `poller.lease`
        is held (the reporter's and notifier's consumers are named after the lease's replica)."""
        self.settings = poller.settings
        self.lease = poller.lease
        self.poller = poller
        self.reporter = reporter
        self.work: list[tuple[str, Callable[[], Awaitable[None]]]] = [
            ("poller", poller.run),
            ("reporter", reporter.run),
        ]
        if notifier is not None:
            self.work.append(("notifier", notifier.run))
        if freshness is not None:
            self.work.append(("freshness", freshness.run))
        self.tasks: list[asyncio.Task[None]] = []
        self.stopping = False

    async def run(self) -> None:
        interval = self.settings.lease_ttl / 3
        last_renewed = time.monotonic()
        while True:
            try:
                held = await self.lease.refresh()
                last_renewed = time.monotonic() if held else last_renewed
            except RedisError as error:
                logger.warning("cannot reach Redis to renew the poller lease", error=str(error))
                held = self.lease.held and time.monotonic() - last_renewed < self.settings.lease_ttl
                if not held:
                    self.lease.drop()
            if self.tasks and any(task.done() for task in self.tasks):
                # One of them ended (a fenced write was refused): stop the others too, and start
                # them all again once the lease is ours.
                await self.stop()
            if held and not self.tasks and not self.stopping:
                self.tasks = [
                    asyncio.create_task(self._guard(name, work), name=name) for name, work in self.work
                ]
            elif not held and self.tasks:
                logger.info("no longer the active poller: stopping the leader tasks")
                await self.stop()
            await asyncio.sleep(interval)

    async def _guard(self, name: str, work: Callable[[], Awaitable[None]]) -> None:
        """Run a leader task; on an unexpected error log it, wait a little, and run it again."""
        while True:
            try:
                await work()
                return
            except asyncio.CancelledError:
                raise
            except LeaseLost:
                logger.warning("fenced write refused: another replica holds the poller lease", task=name)
                self.lease.drop()
                return
            except RedisError as error:
                logger.warning("Redis unavailable; retrying", task=name, error=str(error))
            except Exception:
                logger.exception("leader task crashed; restarting it", task=name)
            await asyncio.sleep(RESTART_DELAY)

    async def stop(self) -> None:
        """Cancel the leader tasks and wait (bounded) for them to finish."""
        for task in self.tasks:
            task.cancel()
        _done, pending = (
            await asyncio.wait(self.tasks, timeout=STOP_TIMEOUT) if self.tasks else (set(), set())
        )
        for task in pending:
            logger.warning("task did not stop in time", task=task.get_name(), timeout=STOP_TIMEOUT)
        self.tasks = []

    async def shutdown(self) -> None:
        """Stop for good: no leader task is started after this."""
        self.stopping = True
        await self.stop()

"""What the reporter records in Redis once it knows it: the edits that reached Alloy (the
`reported` mark, the signature, the reset request flags, the acknowledgement of their events) and
the jobs page's view of the events it read. One task (`ReportBook.run`) writes both, one script
call per turn (`Outbox.report`), so that

  - the edits that succeeded while a call was in flight go together in the next one (the stream's
    XACK and XDEL, and the clock, are paid per batch, not per edit);
  - an item's view goes with its edit when the edit comes within VIEW_DELAY of the view's first
    event, or within VIEW_MAX_WAIT while the edit is ready and only waits for a writer or the
    budget (a short run: one write of the job hash for its view, mark and signature); else alone,
    so the page knows Running while a long run's edit waits out its window;
  - the views reach Redis in the order they were read, one writer, never an older over a newer.

Guarantee: an edit is recorded (and its events acknowledged) only after Alloy accepted it, and its
writer waits for the record: `record` raises when Redis refused the call, and the writer keeps its
events to write again (harmless). Views are best effort for the page: a view Redis refused is
tried again with the next call.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from redis.exceptions import RedisError

from alloysync.log import get_logger
from alloysync.state.outbox import Outbox, Written

logger = get_logger(__name__)

VIEW_DELAY = 0.15  # seconds a view may wait for its edit before it is written alone (1.5 read pauses)
VIEW_MAX_WAIT = 1.0  # ... or this long while that edit is ready (waiting for a writer or a token)
IDLE_WAIT = 1.0  # seconds the task sleeps with nothing to record


class ReportBook:
    """The edits and views waiting to be recorded (asyncio; one per reporter run)."""

    def __init__(
        self,
        outbox: Outbox,
        edit_is_ready: Callable[[str], bool] = lambda _item_id: False,
        view_delay: float = VIEW_DELAY,
        view_max_wait: float = VIEW_MAX_WAIT,
    ) -> None:
        self.outbox = outbox
        self.edit_is_ready = edit_is_ready  # whether the item's edit only waits for a writer or a token
        self.view_delay = view_delay
        self.view_max_wait = view_max_wait
        # item -> (monotonic time of its first unrecorded view, the view's fields); in the order
        # the items' first views came, which updates keep. `held`: the views past their delay
        # whose edit was ready then, moved over in that order. (OrderedDict: its oldest entry is
        # found and removed in constant time, however many were removed before it.)
        self.views: OrderedDict[str, tuple[float, dict[str, Any]]] = OrderedDict()
        self.held: OrderedDict[str, tuple[float, dict[str, Any]]] = OrderedDict()
        self.edits: list[tuple[Written, asyncio.Future[None]]] = []
        self._wake = asyncio.Event()

    def note_view(self, item_id: str, fields: dict[str, Any], now: float) -> None:
        """The item's latest events say `fields` (later calls update earlier ones)."""
        noted = self.views.get(item_id) or self.held.get(item_id)
        if noted is None:
            self.views[item_id] = (now, dict(fields))
            if len(self.views) == 1:
                self._wake.set()  # the task may be sleeping with nothing to wait for
        else:
            noted[1].update(fields)

    async def record(self, edit: Written) -> None:
        """Record an edit Alloy accepted, with its item's view; returns once it is in Redis, and
        raises the error when Redis refused it (its events stay pending)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.edits.append((edit, future))
        self._wake.set()
        await future

    async def run(self) -> None:
        """Record what comes, one call per turn, until cancelled."""
        while True:
            await self._wait_for_work()
            await self._record_once()

    async def _wait_for_work(self) -> None:
        while not self.edits:
            now = time.monotonic()
            wait = IDLE_WAIT
            if self.views:
                wait = next(iter(self.views.values()))[0] + self.view_delay - now
            if self.held:
                wait = min(wait, next(iter(self.held.values()))[0] + self.view_max_wait - now)
            if wait <= 0:
                return
            self._wake.clear()
            with contextlib.suppress(TimeoutError):  # not wait_for: see Notifier._reserve
                async with asyncio.timeout(min(wait, IDLE_WAIT)):
                    await self._wake.wait()

    async def _record_once(self) -> None:
        edits, self.edits = self.edits, []
        views: dict[str, dict[str, Any]] = {}
        for edit, _future in edits:
            noted = self.views.pop(edit.item_id, None) or self.held.pop(edit.item_id, None)
            if noted is not None:
                views[edit.item_id] = noted[1]
        now = time.monotonic()
        while self.views:
            item_id, (first_at, fields) = next(iter(self.views.items()))
            if first_at > now - self.view_delay:
                break  # the rest came later still
            del self.views[item_id]
            if first_at > now - self.view_max_wait and self.edit_is_ready(item_id):
                self.held[item_id] = (first_at, fields)
            else:
                views[item_id] = fields
        while self.held:
            item_id, (first_at, fields) = next(iter(self.held.items()))
            if first_at > now - self.view_max_wait:
                break
            del self.held[item_id]
            views[item_id] = fields
        try:
            await self.outbox.report([edit for edit, _future in edits], views)
        except Exception as error:
            if not isinstance(error, RedisError):
                logger.exception("unexpected error recording status writes")
            self._keep_views(views)
            for _edit, future in edits:
                if not future.done():
                    future.set_exception(error)
            if not edits:
                await asyncio.sleep(self.view_delay)  # views only: no hot loop while Redis is away
            return
        for _edit, future in edits:
            if not future.done():
                future.set_result(None)

    def _keep_views(self, views: dict[str, dict[str, Any]]) -> None:
        """Put views Redis refused back, under any newer fields, to go with the next call."""
        now = time.monotonic()
        for item_id, fields in views.items():
            newer = self.views.pop(item_id, None) or self.held.pop(item_id, None)
            if newer is not None:
                fields.update(newer[1])
            self.views[item_id] = (now, fields)

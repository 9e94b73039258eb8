"""The item views this serve has applied completely: what lets an incremental pass skip a record it
has already seen.

Every incremental pass reads again the edits of the last ALLOYSYNC_SYNC_OVERLAP seconds (10 s by
default, polled every 0.5 to 5 s), so a record edited once is read up to 20 times. Alloy gives each view
of an item a `signature`, which changes with every edit: a view whose signature this serve applied
already carries nothing new, and re-applying it (validation, one script per record, the request
bookkeeping) would only repeat what is stored.

Guarantee: a view is remembered only after its whole page was applied (`remember`, called after
`RecordApplier.apply_page` returned), so a pass that dies half-way leaves nothing remembered and the
next sighting applies it again. What is remembered is valid for one *term*: the poller lease's value
and the Redis server's run id. A new lease term (another replica may have written in between) or a
restarted Redis server (whose AOF may have lost the last second of writes) forgets everything, so
the next passes apply every record they read. Only incremental passes skip; the full
reconciliation and webhook syncs apply every record they read, whatever this holds.

serve's own status writes would make every job's record read and applied once more: the reporter
tells this (`follow_own_edit`) which view its edit was based on, and the edited view counts as
applied when that one was.

Entries are kept for the overlap plus a minute after their last sighting: after that, incremental
passes no longer read the item (its edit date is behind the cursor minus the overlap).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from alloysync.alloy.models import Item

MARGIN_SECONDS = 60.0


class AppliedViews:
    """item id → the signature of the view last applied, within one term (lease value, Redis run id)."""

    def __init__(self, overlap_seconds: float) -> None:
        self.keep_seconds = overlap_seconds + MARGIN_SECONDS
        self._term: tuple[str, str] | None = None
        self._views: dict[str, tuple[str, float]] = {}  # item id -> (signature, last sighting)

    def __len__(self) -> int:
        return len(self._views)

    def enter_term(self, lease_value: str, redis_run_id: str) -> None:
        """Forget every view when the lease term or the Redis server changed; prune old entries."""
        term = (lease_value, redis_run_id)
        if term != self._term:
            self._term = term
            self._views.clear()
            return
        oldest = time.monotonic() - self.keep_seconds
        stale = [item_id for item_id, (_, seen) in self._views.items() if seen < oldest]
        for item_id in stale:
            del self._views[item_id]

    def has(self, item_id: str, signature: str) -> bool:
        """Whether this view of the item was applied in this term (a sighting keeps it longer).
        Passed to `AlloyClient.query_pages`, which then does not even parse the item."""
        known = self._views.get(item_id)
        if known is None or known[0] != signature:
            return False
        self._views[item_id] = (signature, time.monotonic())
        return True

    def follow_own_edit(self, item_id: str, based_on: str | None, signature: str | None) -> None:
        """serve's reporter edited the item: the view `signature` is the view `based_on` plus
        alloysync's own attributes (status, message, run times, reset requests), which change no
        definition and raise no request. If `based_on` was applied, so is the new view: the poller
        need not apply the record again when the edit shows up in its next passes."""
        if based_on is None or signature is None or not self.has(item_id, based_on):
            return
        self._views[item_id] = (signature, time.monotonic())

    def remember(self, items: Sequence[Item]) -> None:
        """Record `items` as applied: call only once their page was applied completely."""
        now = time.monotonic()
        for item in items:
            if item.signature is not None:
                self._views[item.itemId] = (item.signature, now)

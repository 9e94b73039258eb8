"""What the reporter holds for an item between reading its events and writing them to Alloy: its
events in stream order, when its coalescing window ends and when it may be retried, and the values
they fold into (`serve/reporter.py` owns the loop that reads, holds and writes them).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any

from alloysync.model.events import Event
from alloysync.state.outbox import EntryId, entry_key

# Events that end a run: once one is folded with an earlier event of its run, the write need not
# wait out the rest of the window (no later event of that run can come).
RUN_END_KINDS = frozenset({"succeeded", "failed", "cancelled", "skipped"})


@dataclass
class PendingWrite:
    """The events of one item not yet written, in stream order."""

    item_id: str
    events: list[tuple[EntryId, str, Event]] = field(default_factory=list)
    due: float = 0.0  # monotonic time its coalescing window ends (its first event + the window)
    not_before: float = 0.0  # monotonic time before which not to retry (after a failure)
    failures: int = 0  # consecutive failed attempts

    @property
    def ready_at(self) -> float:
        """When its write may go: after its window, and after its backoff."""
        return max(self.due, self.not_before)

    def add(self, entry_id: str, event: Event) -> None:
        """Add an event in stream order; an entry already held (claimed again) is ignored."""
        key = entry_key(entry_id)
        position = bisect.bisect_left(self.events, key, key=lambda entry: entry[0])
        if position < len(self.events) and self.events[position][0] == key:
            return
        self.events.insert(position, (key, entry_id, event))

    def absorb(self, other: PendingWrite) -> None:
        for _key, entry_id, event in other.events:
            self.add(entry_id, event)

    def holds_whole_run(self, run_id: str) -> bool:
        """Whether the events held include the run's end and an earlier event of the same run: the
        window has folded the run from its start (Queued or Running) to its end."""
        return (
            bool(run_id) and sum(1 for _key, _entry_id, event in self.events if event.run_id == run_id) >= 2
        )

    @property
    def entry_ids(self) -> list[str]:
        return [entry_id for _key, entry_id, _event in self.events]

    @property
    def newest(self) -> str:
        return self.events[-1][1]

    def attributes(self, written_through: EntryId | None) -> dict[str, Any]:
        """The folded attributes of the events newer than what was already written."""
        folded: dict[str, Any] = {}
        for key, _entry_id, event in self.events:
            if written_through is None or key > written_through:
                folded.update(event.attributes)
        return folded

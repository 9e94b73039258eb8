"""Run events: the facts that must reach a job's Alloy record (the outbox stream holds them, see
`alloysync.state.outbox`).

An event names an item and carries *logical* attribute values (keys are the field names of
`JobAttributeCodes`: status, message, result, last_run_started, last_run_finished, next_run,
run_count, run_requested, and the optional cancel_requested, run_params, backfill,
consecutive_failures, last_succeeded); the reporter maps them to attribute codes, folds the events of an item
in stream order (later values win) and writes the result. Events are appended by the poller,
the scheduler and workers — by workers inside the same Lua script that changes the run's state, so
a state change and its event exist together or not at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import orjson

from alloysync.model.json_text import compact_json
from alloysync.model.times import now_iso


class Status(StrEnum):
    """Values of the Status attribute (the README's "The job record")."""

    SCHEDULED = "Scheduled"
    QUEUED = "Queued"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    INVALID = "Invalid"
    CANCELLED = "Cancelled"
    OVERDUE = "Overdue"


FINAL_STATUSES = frozenset({Status.SUCCEEDED, Status.FAILED, Status.INVALID})

# Attributes that describe the job's current definition; a run of an older one never writes them.
CURRENT_ONLY = frozenset({"status", "message", "next_run"})

REPORTED_ATTRIBUTES = (
    "status",
    "message",
    "result",
    "last_run_started",
    "last_run_finished",
    "next_run",
    "run_count",
    "run_requested",
    # Optional attributes (written only where the design has them):
    "cancel_requested",
    "run_params",
    "backfill",
    "consecutive_failures",
    "last_succeeded",
)


@dataclass(frozen=True)
class Event:
    """One thing that happened to a job, for its Alloy record."""

    item_id: str
    kind: str
    attributes: dict[str, Any]
    run_id: str = ""
    at: str = field(default_factory=now_iso)
    details: dict[str, Any] = field(default_factory=dict)  # for logs and the jobs page, not written to Alloy

    def __post_init__(self) -> None:
        unknown = self.attributes.keys() - _REPORTED
        if unknown:
            raise ValueError(f"not a reported attribute: {sorted(unknown)}")

    def fields(self) -> dict[str, str]:
        """The stream entry's fields (the attributes and details as compact JSON)."""
        return {
            "item": self.item_id,
            "kind": self.kind,
            "run": self.run_id,
            "at": self.at,
            "attrs": compact_json(self.attributes),
            "details": compact_json(self.details),
        }

    def wire(self) -> str:
        """The fields as one JSON array [name, value, ...]: how a Lua script receives an event."""
        return compact_json([part for pair in self.fields().items() for part in pair])

    def reduced_attributes(self) -> str:
        """The attributes a run of an old definition may still write (its times and result), as JSON:
        never Status, Message or NextRun, which describe the current definition."""
        kept = {name: value for name, value in self.attributes.items() if name not in CURRENT_ONLY}
        return compact_json(kept)

    @classmethod
    def from_fields(cls, raw: Mapping[Any, Any]) -> Event:
        """Decode a stream entry (bytes or str keys). A `run_count` field set by a Lua script joins
        the attributes."""
        fields = {  # str already when the client decodes (the reporter's): no call per field
            name if type(name) is str else _text(name): value if type(value) is str else _text(value)
            for name, value in raw.items()
        }
        attributes = orjson.loads(fields.get("attrs") or "{}")
        if "run_count" in fields:
            attributes["run_count"] = int(fields["run_count"])
        if "consecutive_failures" in fields:  # set by the run scripts, with the count
            attributes["consecutive_failures"] = int(fields["consecutive_failures"])
        if "last_succeeded" in fields:
            attributes["last_succeeded"] = fields["last_succeeded"]
        return cls(
            item_id=fields["item"],
            kind=fields.get("kind", ""),
            attributes=attributes,
            run_id=fields.get("run", ""),
            at=fields.get("at", ""),
            details=orjson.loads(fields.get("details") or "{}"),
        )


_REPORTED = frozenset(REPORTED_ATTRIBUTES)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)

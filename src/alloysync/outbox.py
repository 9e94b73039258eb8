"""Run events: the facts that must reach a job's Alloy record, and the Redis stream holding them.

An event names an item and carries *logical* attribute values (keys are the field names of
`JobAttributeCodes`: status, message, result, last_run_started, last_run_finished, next_run,
run_count, run_requested); the reporter maps them to attribute codes, folds the events of an item
in stream order (later values win) and writes the result. Events are appended by the poller,
the scheduler and workers — by workers inside the same Lua script that changes the run's state, so
a state change and its event exist together or not at all.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    """Values of the Status attribute (DESIGN §4)."""

    SCHEDULED = "Scheduled"
    QUEUED = "Queued"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    INVALID = "Invalid"


FINAL_STATUSES = frozenset({Status.SUCCEEDED, Status.FAILED, Status.INVALID})

REPORTED_ATTRIBUTES = (
    "status",
    "message",
    "result",
    "last_run_started",
    "last_run_finished",
    "next_run",
    "run_count",
    "run_requested",
)


def now_iso() -> str:
    """Now, in Alloy's DateTime format."""
    return format_time(datetime.now(UTC))


def format_time(moment: datetime) -> str:
    """`2024-07-02T00:00:00.000Z` (UTC, milliseconds), the shape Alloy's DateTime values have."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


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
        unknown = set(self.attributes) - set(REPORTED_ATTRIBUTES)
        if unknown:
            raise ValueError(f"not a reported attribute: {sorted(unknown)}")

    def fields(self) -> dict[str, str]:
        """The stream entry's fields."""
        return {
            "item": self.item_id,
            "kind": self.kind,
            "run": self.run_id,
            "at": self.at,
            "attrs": json.dumps(self.attributes, separators=(",", ":"), default=str),
            "details": json.dumps(self.details, separators=(",", ":"), default=str),
        }

    def flat_fields(self) -> list[str]:
        """Fields as a flat [name, value, ...] list, for passing to a Lua script."""
        return [part for pair in self.fields().items() for part in pair]

    @classmethod
    def from_fields(cls, raw: Mapping[Any, Any]) -> Event:
        """Decode a stream entry (bytes or str keys). A `run_count` field set by a Lua script joins
        the attributes."""
        fields = {_text(name): _text(value) for name, value in raw.items()}
        attributes = json.loads(fields.get("attrs") or "{}")
        if "run_count" in fields:
            attributes["run_count"] = int(fields["run_count"])
        return cls(
            item_id=fields["item"],
            kind=fields.get("kind", ""),
            attributes=attributes,
            run_id=fields.get("run", ""),
            at=fields.get("at", ""),
            details=json.loads(fields.get("details") or "{}"),
        )


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# Lua helper inlined into scripts that append an event: ARGV[first .. first+11] are the six
# name/value pairs of Event.flat_fields(). Extra pairs (such as run_count) follow in the call.
LUA_XADD_EVENT = """
local function event_fields(first)
  local fields = {}
  for i = first, first + 11 do fields[#fields + 1] = ARGV[i] end
  return fields
end
"""

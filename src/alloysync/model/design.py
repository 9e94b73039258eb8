"""The jobs design: every attribute of a job record, its Alloy name, type and limits (the
README's "The job record").

This module owns the one list of the job record's attributes that `alloysync setup` creates,
`alloysync check` verifies, and the emulator seeds under the default codes. Each entry names the
settings field that holds its code (`ALLOYSYNC_ATTRIBUTES__<FIELD>`), the attribute name setup gives
it (the name `--adopt` maps an existing design's attributes by), its Alloy type, and for String
attributes the maximum length Alloy should enforce.

Attributes added after the first release are `optional`: a design may lack them, and each feature
is then off for that deployment (`alloysync check` says which).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

TITLE_CODE = "attributes_itemsTitle"  # Alloy's own interface attribute (designInterfaces_items)
DEFAULT_DESIGN_NAME = "alloysync jobs"
MESSAGE_MAX_LENGTH = 4000  # Message's String max; ALLOYSYNC_MESSAGE_MAX_CHARS must not exceed it


class AttributeType(StrEnum):
    """The Alloy attribute types the jobs design uses."""

    STRING = "String"
    NUMBER = "Number"
    BOOLEAN = "Boolean"
    DATETIME = "DateTime"
    JSON = "Json"


@dataclass(frozen=True)
class JobAttribute:
    """One attribute of the jobs design."""

    field: str  # the JobAttributeCodes field (and the ALLOYSYNC_ATTRIBUTES__<FIELD> setting)
    name: str  # the name setup gives the attribute in Alloy
    type: AttributeType
    max_length: int | None = None  # String attributes: the longest value Alloy accepts
    optional: bool = False  # added after the first release: may be absent (the feature is off)
    feature: str = ""  # what is off when an optional attribute is absent

    @property
    def setting(self) -> str:
        return f"ALLOYSYNC_ATTRIBUTES__{self.field.upper()}"


_S = AttributeType.STRING
_B = AttributeType.BOOLEAN

JOB_ATTRIBUTES: tuple[JobAttribute, ...] = (
    JobAttribute("title", "Title", _S, 200),
    JobAttribute("enabled", "Enabled", _B),
    JobAttribute("task", "Task", _S, 1000),
    JobAttribute("params", "Params", AttributeType.JSON),
    JobAttribute("schedule", "Schedule", _S, 200),
    JobAttribute("timezone", "Timezone", _S, 64),
    JobAttribute("missed_runs", "Missed runs", _S, 40),
    JobAttribute("run_requested", "Run requested", _B),
    JobAttribute("status", "Status", _S, 20),
    JobAttribute("message", "Message", _S, MESSAGE_MAX_LENGTH),
    JobAttribute("result", "Result", AttributeType.JSON),
    JobAttribute("last_run_started", "Last run started", AttributeType.DATETIME),
    JobAttribute("last_run_finished", "Last run finished", AttributeType.DATETIME),
    JobAttribute("next_run", "Next run", AttributeType.DATETIME),
    JobAttribute("run_count", "Run count", AttributeType.NUMBER),
    JobAttribute("overlap", "Overlap", _S, 20, optional=True, feature="overlap policy"),
    JobAttribute("concurrency_key", "Concurrency key", _S, 200, optional=True, feature="concurrency keys"),
    JobAttribute("cancel_requested", "Cancel requested", _B, optional=True, feature="cancelling runs"),
    JobAttribute(
        "run_params", "Run params", AttributeType.JSON, optional=True, feature="run once with other params"
    ),
    JobAttribute("backfill", "Backfill", _S, 100, optional=True, feature="backfill"),
    JobAttribute("notify", "Notify", _S, 2000, optional=True, feature="notifications"),
    JobAttribute("notify_on", "Notify on", _S, 40, optional=True, feature="notification policy"),
    JobAttribute("max_age", "Max age", _S, 40, optional=True, feature="freshness deadlines (Overdue)"),
    JobAttribute(
        "consecutive_failures",
        "Consecutive failures",
        AttributeType.NUMBER,
        optional=True,
        feature="failure streaks",
    ),
    JobAttribute(
        "last_succeeded", "Last succeeded", AttributeType.DATETIME, optional=True, feature="last success time"
    ),
)

BY_FIELD: dict[str, JobAttribute] = {attribute.field: attribute for attribute in JOB_ATTRIBUTES}

"""Timestamps in Alloy's wire format: UTC with millisecond precision, e.g. `2024-07-02T00:00:00.000Z`.

The emulator keeps its own copy of these helpers rather than using `alloysync.model.times`: it
plays Alloy, so it stays independent of the client it is the peer of, and it is strict where
alloysync is lenient (a date-time without a zone is refused here).
"""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> datetime:
    """The current time in UTC, truncated to whole milliseconds (Alloy's precision)."""
    return truncate_to_millisecond(datetime.now(UTC))


def truncate_to_millisecond(moment: datetime) -> datetime:
    return moment.replace(microsecond=moment.microsecond - moment.microsecond % 1000)


def format_timestamp(moment: datetime) -> str:
    """`2024-07-02T00:00:00.000Z` for an aware datetime (converted to UTC)."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")[:-6] + "Z"  # without "+00:00"


def parse_timestamp(text: str) -> datetime | None:
    """An ISO-8601 date-time with a zone designator (`Z` or an offset) as aware UTC, else None.

    A date-time without a zone is rejected: Alloy's DateTime values are instants, and guessing the
    zone would hide a client bug.
    """
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        return None
    return parsed.astimezone(UTC)

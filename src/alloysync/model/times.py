"""Alloy's date-time text, and "now": the one home of both for alloysync.

Alloy writes DateTime values as `2024-07-02T00:00:00.000Z` (UTC, milliseconds). Every module that
reads or writes such text — job records, run records and ids, schedule entries, events, the sync
cursor, the jobs page — uses `parse_alloy_datetime` and `format_alloy_datetime`, and takes the time
from `utc_now`. (The emulator keeps its own copy in `emulator/clock.py`: it plays Alloy, and is
strict where alloysync is lenient.)
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo

__all__ = ["format_alloy_datetime", "now_iso", "parse_alloy_datetime", "utc_now"]


def utc_now() -> datetime:
    """Now, aware, in UTC."""
    return datetime.now(UTC)


def now_iso() -> str:
    """Now, in Alloy's DateTime format."""
    return format_alloy_datetime(utc_now())


def parse_alloy_datetime(text: str, naive_zone: tzinfo = UTC) -> datetime:
    """Parse an ISO-8601 date-time into an aware UTC `datetime`.

    Accepts `2024-07-02T00:00:00.000Z`, `2024-07-02T00:00:00Z`, explicit offsets
    (`2024-07-02T02:00:00+02:00`) and any number of fractional digits. Text without a zone is read
    in `naive_zone` (UTC, which is what Alloy means; a job's own zone for a user's Schedule).
    Raises `ValueError` for anything else.
    """
    cleaned = text.strip()
    if cleaned.endswith(("z", "Z")):
        cleaned = cleaned[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(cleaned)
    except ValueError:
        raise ValueError(f"not an ISO-8601 date-time: {text!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=naive_zone)
    return parsed.astimezone(UTC)


def format_alloy_datetime(moment: datetime) -> str:
    """Format a `datetime` the way Alloy writes DateTime values: `2024-07-02T00:00:00.000Z`.

    Aware values are converted to UTC; naive values are taken to be UTC already. Precision is
    milliseconds (truncated), as in Alloy.
    """
    utc = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return utc.isoformat(timespec="milliseconds")[:-6] + "Z"  # without its "+00:00"

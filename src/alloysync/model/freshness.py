"""Freshness deadlines (MaxAge): whether a job is overdue, and the Message that says so.

A job with a MaxAge is overdue when it has had no success for longer than that, counted from its
last success or, before its first, from when alloysync first saw it. Whatever the cause — nothing
fired it, its runs are stuck, it keeps failing — the age is the same measure. serve's freshness
check (serve/freshness.py) applies this to every job and marks the overdue ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from alloysync.model.times import parse_alloy_datetime


@dataclass(frozen=True, slots=True)
class Overdue:
    """A job found overdue: how long it has gone without a success, and its Message."""

    age_seconds: float
    message: str


def overdue_verdict(
    max_age_seconds: float, last_succeeded: str, first_seen: str, now: datetime
) -> Overdue | None:
    """Whether a job is overdue at `now` (None when not, or when it has no time to count from).

    `last_succeeded` and `first_seen` are Alloy DateTime texts ('' when unknown)."""
    reference_text = last_succeeded or first_seen
    if not reference_text:
        return None
    try:
        reference = parse_alloy_datetime(reference_text)
    except ValueError:
        return None
    age = (now - reference).total_seconds()
    if age <= max_age_seconds:
        return None
    deadline = f"No success for {age_text(age)} (MaxAge {max_age_text(max_age_seconds)})"
    if last_succeeded:
        message = f"{deadline}; last success {last_succeeded}"
    else:
        message = f"{deadline}; it has not succeeded since alloysync first saw it at {first_seen}"
    return Overdue(age, message)


def age_text(seconds: float) -> str:
    """A duration as a person reads it, rounded down: `45 s`, `90 min`, `26 h`, `3 d`."""
    whole = int(max(0.0, seconds))
    if whole < 120:
        return f"{whole} s"
    if whole < 120 * 60:
        return f"{whole // 60} min"
    if whole < 48 * 3600:
        return f"{whole // 3600} h"
    return f"{whole // 86_400} d"


def max_age_text(seconds: float | None) -> str:
    """A MaxAge as the user writes one (`26h`, `90m`, `2d`); '' for none."""
    if not seconds:
        return ""
    whole = round(seconds)
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if whole % size == 0:
            return f"{whole // size}{unit}"
    return f"{whole}s"

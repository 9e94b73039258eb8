"""Brute-force oracles for `alloysync.model.cron`, written independently of its search.

They share only the parsed field sets with the code under test (parsing is tested by tables):

* `oracle_next_fire` enumerates local wall-clock minutes, maps every matching one to an instant with
  the product's DST rules (exists: its first occurrence; does not exist: the first instant after it)
  and takes the earliest instant after `after`;
* `simulated_fires` runs a wall clock minute by minute in UTC and fires whenever the local clock
  reaches or passes a matching local minute for the first time.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from alloysync.model.cron import CronExpression

MINUTE = timedelta(minutes=1)


def oracle_matches(expr: CronExpression, local: datetime) -> bool:
    """Vixie cron matching of a naive local minute, straight from the field sets."""
    return (
        local.minute in expr.minutes and local.hour in expr.hours and oracle_day_matches(expr, local.date())
    )


def oracle_day_matches(expr: CronExpression, day: date) -> bool:
    if day.month not in expr.months:
        return False
    dom = day.day in expr.days_of_month
    dow = day.isoweekday() % 7 in expr.days_of_week  # ISO Sunday is 7; cron's is 0
    if expr.day_of_month_restricted and expr.day_of_week_restricted:
        return dom or dow
    return dom and dow


def wall(instant: datetime, zone: ZoneInfo) -> datetime:
    return instant.astimezone(zone).replace(tzinfo=None, fold=0)


def oracle_instant(local: datetime, zone: ZoneInfo) -> datetime:
    """When the naive local minute `local` fires: its first occurrence, or if it does not exist the
    first instant after it (found by stepping through UTC minutes)."""
    candidates = [local.replace(tzinfo=zone, fold=fold).astimezone(UTC) for fold in (0, 1)]
    occurrences = [instant for instant in candidates if wall(instant, zone) == local]
    if occurrences:
        return min(occurrences)
    instant = min(candidates).replace(second=0, microsecond=0)
    assert wall(instant, zone) < local
    while wall(instant, zone) < local:
        instant += MINUTE
    return instant


def _offset_bounds(zone: ZoneInfo, start: datetime, end: datetime) -> tuple[timedelta, timedelta]:
    """The smallest and largest UTC offsets of `zone` between two instants (sampled every 15 minutes)."""
    offsets = set()
    instant = start
    while instant <= end:
        offset = instant.astimezone(zone).utcoffset()
        assert offset is not None
        offsets.add(offset)
        instant += timedelta(minutes=15)
    return min(offsets), max(offsets)


def oracle_next_fire(
    expr: CronExpression, after: datetime, zone: ZoneInfo, horizon: timedelta = timedelta(days=4)
) -> datetime | None:
    """The first fire instant after `after` among local minutes up to `horizon` past it, else None."""
    low_offset, high_offset = _offset_bounds(
        zone, after - timedelta(days=2), after + horizon + timedelta(days=2)
    )
    first = wall(after, zone).replace(second=0, microsecond=0) - timedelta(hours=3)
    last = first + horizon + timedelta(hours=3)
    naive_after = after.astimezone(UTC).replace(tzinfo=None)
    best: datetime | None = None
    local = first
    while local <= last:
        # A local minute's instant lies within [local - high_offset, local - low_offset]: skip
        # minutes that cannot be after `after`, stop once none can beat the best found so far.
        if best is not None and local - high_offset > best.replace(tzinfo=None):
            break
        if local - low_offset > naive_after and oracle_matches(expr, local):
            instant = oracle_instant(local, zone)
            if instant > after and (best is None or instant < best):
                best = instant
        local += MINUTE
    return best


def simulated_fires(expr: CronExpression, zone: ZoneInfo, start: datetime, end: datetime) -> list[datetime]:
    """Fires in (start, end] of a clock ticking each UTC minute, firing a job the first time the local
    wall clock reaches or passes one of its times. `start` must be a whole minute (UTC)."""
    fires = []
    reached = wall(start, zone)  # the latest local minute the clock has shown so far
    instant = start + MINUTE
    while instant <= end:
        shown = wall(instant, zone)
        local = reached + MINUTE
        fired = False
        while local <= shown:  # usually one minute; all the skipped ones at a spring-forward gap
            fired = fired or oracle_matches(expr, local)
            local += MINUTE
        if fired:
            fires.append(instant)
        reached = max(reached, shown)
        instant += MINUTE
    return fires

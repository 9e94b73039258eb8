"""Cron expressions and their fire times in an IANA time zone.

This module replaces periodiq's own cron parser and next-time arithmetic (which never matches Sunday
written as ``0``, does no range checks and drifts across DST). It uses only the standard library.

Expressions
-----------
Five whitespace-separated fields, ``minute hour day-of-month month day-of-week``:

=============  ===========================================
minute         0-59
hour           0-23
day-of-month   1-31
month          1-12 or ``jan``-``dec``
day-of-week    0-7 or ``sun``-``sat`` (Sunday is 0, 7 or ``sun``)
=============  ===========================================

Each field is ``*`` or a comma-separated list of items; an item is a value ``a``, a range ``a-b``
(low to high, no wrap-around), or either of those or ``*`` followed by a step ``/n`` (``a/n`` means
``a-max/n``). Names are case-insensitive. In a day-of-week range, ``7`` and a closing ``sun`` both
mean Sunday, so ``5-7`` and ``fri-sun`` are Friday, Saturday and Sunday, while ``*`` and ``a/n``
end the week on Saturday (``1/2`` is Monday, Wednesday, Friday). Steps larger than the field's range
are rejected (``*/60`` for minutes is allowed, ``*/61`` is not). The names ``@yearly``
(``@annually``), ``@monthly``, ``@weekly`` (Sunday 00:00), ``@daily`` (``@midnight``) and ``@hourly``
stand for the usual expressions; ``@reboot`` is not supported.

Day rule (as in Vixie cron): a day field counts as *restricted* unless its text starts with ``*``.
When both day-of-month and day-of-week are restricted, a day matches when EITHER matches
(``0 0 13 * 5`` runs on every 13th and on every Friday); otherwise both must match (``0 0 */2 * 1``
runs on odd-numbered days that are Mondays).

Every problem raises `CronError`, whose message names the field, quotes it and says what is allowed;
it is shown to users as the job's error. Expressions that can never fire (``0 0 30 2 *``,
``0 0 31 4,6 *``) are rejected **at parse time** with a `CronError` on the ``day-of-month`` field, so
a parsed `CronExpression` always has a next fire time.

Fire times and daylight saving time
-----------------------------------
A job's schedule is local wall-clock time in its zone. The rule is: **a job fires at the first
instant at which the zone's wall clock reaches or passes a matching local time.** Concretely:

* normal local times fire at their one instant (a 09:00 job stays at 09:00 local across DST, i.e.
  at 08:00 UTC in London summer and 09:00 UTC in winter);
* spring forward: a local time that does not exist (01:30 on 2026-03-29 in Europe/London) fires
  once, at the transition instant (02:00 BST = 01:00 UTC). Several nonexistent times, and the first
  valid local time after the gap, collapse onto that instant, which fires once;
* fall back: a repeated local time (01:30 on 2026-10-25 in Europe/London) fires once, at its first
  occurrence (``fold=0``, 01:30 BST = 00:30 UTC). Consequently jobs whose times lie in the repeated
  hour (including ``* * * * *``) do not fire again during the second pass through that hour.

So the fire instants form a strictly increasing sequence: iterating ``t = expr.next_fire(t, zone)``
never repeats an instant. Results are aware UTC datetimes with zero seconds and microseconds
(for historic zone offsets that are not whole minutes, the exact instant of the local minute).
"""

from __future__ import annotations

import calendar
import dataclasses
import zoneinfo
from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final

from alloysync.model.cron_fields import (
    DAY_OF_MONTH,
    HOUR,
    MINUTE,
    MONTH,
    SPECS,
    CronError,
    FieldSpec,
    parse_field,
    quote,
)
from alloysync.model.zones import TimezoneError, parse_timezone

__all__ = ["CronError", "CronExpression", "TimezoneError", "parse_timezone"]

_FIELD_ORDER: Final = "minute hour day-of-month month day-of-week"

_MACROS: Final[dict[str, str]] = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

# Longest day-of-month of each month in any year (February has 29 in leap years).
_MAX_DAYS_IN_MONTH: Final = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)

# The Gregorian calendar repeats every 400 years (146097 days, exactly 20871 weeks), so a parsed
# expression (which is known to be satisfiable) fires within this many years of any instant.
_SEARCH_YEARS: Final = 401

_ONE_MINUTE: Final = timedelta(minutes=1)


@dataclass(frozen=True)
class CronExpression:
    """A parsed cron expression; build it with `CronExpression.parse`.

    Weekdays are 0-6 with Sunday = 0. `day_of_month_restricted` / `day_of_week_restricted` are
    false when the field's text starts with ``*`` (see the module docstring for the day rule).
    """

    minutes: frozenset[int]
    hours: frozenset[int]
    days_of_month: frozenset[int]
    months: frozenset[int]
    days_of_week: frozenset[int]
    day_of_month_restricted: bool
    day_of_week_restricted: bool
    source: str
    # Sorted copies for the search, derived from the sets above.
    _minutes: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _hours: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _months: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for values, spec in zip(
            (self.minutes, self.hours, self.days_of_month, self.months, self.days_of_week),
            (MINUTE, HOUR, DAY_OF_MONTH, MONTH, FieldSpec("day-of-week", 0, 6)),
            strict=True,
        ):
            if not values or not all(spec.low <= value <= spec.high for value in values):
                raise CronError(
                    spec.name, f"{spec.name} values must be a non-empty subset of {spec.allowed()}"
                )
        object.__setattr__(self, "_minutes", tuple(sorted(self.minutes)))
        object.__setattr__(self, "_hours", tuple(sorted(self.hours)))
        object.__setattr__(self, "_months", tuple(sorted(self.months)))
        self._check_satisfiable()

    @classmethod
    def parse(cls, text: str) -> CronExpression:
        """Parse five cron fields or an ``@name``; raises `CronError` naming the bad field."""
        source = text.strip()
        if not source:
            raise CronError(
                "expression", f"empty schedule: expected 5 fields ({_FIELD_ORDER}) or a name like @daily"
            )
        if source.startswith("@"):
            return cls._parse_macro(source)
        parts = source.split()
        if len(parts) != len(SPECS):
            raise CronError(
                "expression",
                f"expected 5 fields ({_FIELD_ORDER}) or a name like @daily, got {len(parts)}",
            )
        minutes, hours, days_of_month, months, days_of_week = (
            parse_field(part, spec) for part, spec in zip(parts, SPECS, strict=True)
        )
        return cls(
            minutes=minutes,
            hours=hours,
            days_of_month=days_of_month,
            months=months,
            days_of_week=days_of_week,
            day_of_month_restricted=not parts[2].startswith("*"),
            day_of_week_restricted=not parts[4].startswith("*"),
            source=source,
        )

    @classmethod
    def _parse_macro(cls, source: str) -> CronExpression:
        names = ", ".join(_MACROS)
        name = source.lower()
        if name in _MACROS:
            return dataclasses.replace(cls.parse(_MACROS[name]), source=source)
        if name == "@reboot":
            raise CronError("expression", f'"@reboot" is not supported here; use one of {names}')
        if len(source.split()) > 1:
            raise CronError(
                "expression", f"{quote(source)}: a name like @daily stands alone, without other fields"
            )
        raise CronError("expression", f"unknown schedule name {quote(source)}; use one of {names}")

    def _check_satisfiable(self) -> None:
        """Reject expressions with no matching calendar day at all (e.g. February 30th).

        When both day fields are restricted (the OR rule) the weekdays alone give days in every
        month. Otherwise the chosen days of the month must exist in a chosen month; every existing
        (month, day) pair, February 29th included, falls on each weekday in some year of the 400-year
        Gregorian cycle, so the weekday field cannot make a satisfiable pair impossible.
        """
        if self.day_of_month_restricted and self.day_of_week_restricted:
            return
        if any(day <= _MAX_DAYS_IN_MONTH[month - 1] for month in self.months for day in self.days_of_month):
            return
        parts = self.source.split()
        days = parts[2] if len(parts) == len(SPECS) else _compress(self.days_of_month)
        months = ",".join(calendar.month_abbr[month] for month in self._months)
        raise CronError(
            "day-of-month",
            f"day-of-month field {quote(days)}: that day never occurs in {months}, "
            "so the schedule would never run",
        )

    # ----------------------------------------------------------------------------------------------
    # Matching

    def _day_matches(self, year: int, month: int, day: int) -> bool:
        dom = day in self.days_of_month
        dow = (calendar.weekday(year, month, day) + 1) % 7 in self.days_of_week  # cron: Sunday = 0
        if self.day_of_month_restricted and self.day_of_week_restricted:
            return dom or dow
        return dom and dow

    def matches(self, local: datetime) -> bool:
        """Whether the local wall time `local` (minute resolution) is one of this expression's times.

        `local` is meant to be naive; if it carries a tzinfo its wall-clock fields are used as they are.
        """
        return (
            local.minute in self.minutes
            and local.hour in self.hours
            and local.month in self.months
            and self._day_matches(local.year, local.month, local.day)
        )

    def _next_local(self, start: datetime) -> datetime:
        """The first matching naive wall-clock minute at or after `start` (a whole minute).

        Walks month by month, day by day, then jumps through the sorted hours and minutes, so the
        cost is a few steps per month rather than per minute.
        """
        year, month, day, hour, minute = start.year, start.month, start.day, start.hour, start.minute
        last_year = min(start.year + _SEARCH_YEARS, datetime.max.year)
        while year <= last_year:
            if month not in self.months:
                index = bisect_left(self._months, month)
                if index == len(self._months):
                    year, month = year + 1, self._months[0]
                else:
                    month = self._months[index]
                day, hour, minute = 1, 0, 0
                continue
            if day > calendar.monthrange(year, month)[1]:
                year, month = (year + 1, 1) if month == 12 else (year, month + 1)
                day, hour, minute = 1, 0, 0
                continue
            if not self._day_matches(year, month, day):
                day, hour, minute = day + 1, 0, 0
                continue
            if hour not in self.hours:
                index = bisect_left(self._hours, hour)
                if index == len(self._hours):
                    day, hour, minute = day + 1, 0, 0
                    continue
                hour, minute = self._hours[index], 0
            index = bisect_left(self._minutes, minute)
            if index == len(self._minutes):
                if hour == 23:
                    day, hour, minute = day + 1, 0, 0
                else:
                    hour, minute = hour + 1, 0
                continue
            return datetime(year, month, day, hour, self._minutes[index])
        # Only reachable near datetime.max: a parsed expression fires once in any 400 years.
        raise CronError(
            "expression", f"{quote(self.source)} has no fire time before the year {last_year + 1}"
        )

    # ----------------------------------------------------------------------------------------------
    # Fire times

    def next_fire(self, after: datetime, zone: zoneinfo.ZoneInfo) -> datetime:
        """The first fire instant strictly after the aware datetime `after`, as an aware UTC datetime.

        Fire times are local wall-clock times in `zone`, with the DST rules in the module docstring.
        """
        if after.tzinfo is None or after.utcoffset() is None:
            raise ValueError("next_fire needs an aware datetime (with a time zone), got a naive one")
        # Every local minute up to `after`'s own wall-clock minute fires at or before `after`: its
        # first-reach instant is no later than `after` itself. So start with the minute after it.
        wall = after.astimezone(zone).replace(tzinfo=None, second=0, microsecond=0, fold=0)
        candidate = wall + _ONE_MINUTE
        while True:
            local = self._next_local(candidate)
            instant = _first_reach(local, zone)
            # Only when `after` lies in the second pass of a repeated (fall-back) hour can a later
            # wall time map to an instant at or before `after`: its first occurrence has passed.
            # Then skip it; this loops at most once per matching minute in the repeated period.
            if instant > after:
                return instant
            candidate = local + _ONE_MINUTE

    def fires_between(self, start: datetime, end: datetime, zone: zoneinfo.ZoneInfo) -> Iterator[datetime]:
        """The fire instants in (start, end], in increasing order, as aware UTC datetimes."""
        if end.tzinfo is None or end.utcoffset() is None:
            raise ValueError("fires_between needs aware datetimes (with a time zone)")
        instant = start
        while True:
            instant = self.next_fire(instant, zone)
            if instant > end:
                return
            yield instant

    # ----------------------------------------------------------------------------------------------
    # Description

    def describe(self) -> str:
        """A short English description, e.g. ``at 09:00 on Mon-Fri`` (times are local)."""
        return f"{self._describe_times()}{self._describe_days()}"

    def _describe_times(self) -> str:
        every_minute = len(self.minutes) == 60
        every_hour = len(self.hours) == 24
        if len(self.minutes) * len(self.hours) <= 4:
            times = [f"{hour:02d}:{minute:02d}" for hour in self._hours for minute in self._minutes]
            return "at " + _join(times)
        if every_minute:
            return "every minute" + ("" if every_hour else f" of hour(s) {_compress(self.hours)}")
        minutes = f"at minute(s) {_compress(self.minutes)}"
        return minutes + (" of every hour" if every_hour else f" of hour(s) {_compress(self.hours)}")

    def _describe_days(self) -> str:
        dom_text = f"on day(s) {_compress(self.days_of_month)} of the month"
        # Listed Monday first, with Sunday as 7, as people read weeks ("Fri-Sun").
        weekdays = frozenset(day or 7 for day in self.days_of_week)
        dow_text = "on " + _compress(weekdays, names=["", *calendar.day_abbr])
        if self.day_of_month_restricted and self.day_of_week_restricted:
            restrictions = [f"{dom_text} or {dow_text}"]
        else:
            both = [dom_text] if len(self.days_of_month) < 31 else []
            both += [dow_text] if len(self.days_of_week) < 7 else []
            restrictions = [" and ".join(both)] if both else []
        if len(self.months) < 12:
            restrictions.append("in " + _compress(self.months, names=["", *calendar.month_abbr[1:]]))
        return "".join(" " + part for part in restrictions)


def _first_reach(local: datetime, zone: zoneinfo.ZoneInfo) -> datetime:
    """The first instant (UTC) at which the wall clock of `zone` reaches or passes `local` (naive).

    * A local time that exists once maps to its only instant.
    * A repeated local time (fall back) maps to its first occurrence: with ``fold=0`` zoneinfo uses
      the offset from before the transition, which is the earlier instant.
    * A local time that does not exist (spring forward) maps to the transition instant, the first
      instant whose wall time is past it. zoneinfo maps it with the offset from before the gap
      (``fold=0``, an instant after the transition) or from after it (``fold=1``, an instant before
      the transition); the transition lies between these two, and we find it by bisection.
    """
    early = local.replace(tzinfo=zone, fold=0).astimezone(UTC)
    late = local.replace(tzinfo=zone, fold=1).astimezone(UTC)
    if early > late:
        early, late = late, early
    if _wall(early, zone) == local:
        return early  # exists; the earlier of two occurrences if it is repeated
    if _wall(late, zone) == local:
        return late  # cannot happen with real zones; kept so that an existing time maps to itself
    # Nonexistent: find the first instant in (early, late] whose wall time is >= local. Wall time
    # increases through a gap, so bisection on whole seconds is exact (transitions are on seconds).
    # Invariant: wall(early + low seconds) < local <= wall(early + high seconds).
    low, high = 0, int((late - early).total_seconds())
    while high - low > 1:
        middle = (low + high) // 2
        if _wall(early + timedelta(seconds=middle), zone) >= local:
            high = middle
        else:
            low = middle
    return early + timedelta(seconds=high)


def _wall(instant: datetime, zone: zoneinfo.ZoneInfo) -> datetime:
    return instant.astimezone(zone).replace(tzinfo=None, fold=0)


def _compress(values: frozenset[int], names: list[str] | None = None) -> str:
    """``{1, 2, 3, 5}`` -> ``"1-3,5"`` (with names if given)."""
    label = (lambda value: names[value]) if names else str
    ordered = sorted(values)
    runs: list[str] = []
    start = previous = ordered[0]
    for value in [*ordered[1:], None]:
        if value is not None and value == previous + 1:
            previous = value
            continue
        runs.append(label(start) if start == previous else f"{label(start)}-{label(previous)}")
        if value is not None:
            start = previous = value
    return ",".join(runs)


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]

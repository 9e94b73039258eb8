"""Tests of `alloysync.model.cron`: parsing, next-fire arithmetic in UTC and across DST, brute-force
oracles."""

from __future__ import annotations

import calendar
import itertools
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from alloysync.model.cron import CronError, CronExpression, TimezoneError, parse_timezone
from tests.cron_oracle import oracle_matches, oracle_next_fire, simulated_fires

LONDON = ZoneInfo("Europe/London")
NEW_YORK = ZoneInfo("America/New_York")
LORD_HOWE = ZoneInfo("Australia/Lord_Howe")
KOLKATA = ZoneInfo("Asia/Kolkata")
UTC_ZONE = ZoneInfo("UTC")
ZONES = [UTC_ZONE, LONDON, NEW_YORK, LORD_HOWE, KOLKATA]

ALL_MINUTES = frozenset(range(60))
ALL_HOURS = frozenset(range(24))
ALL_DAYS = frozenset(range(1, 32))
ALL_MONTHS = frozenset(range(1, 13))
ALL_WEEKDAYS = frozenset(range(7))


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def fires(text: str, zone: ZoneInfo, after: datetime, count: int) -> list[datetime]:
    expr = CronExpression.parse(text)
    result = []
    for _ in range(count):
        after = expr.next_fire(after, zone)
        result.append(after)
    return result


# --------------------------------------------------------------------------------------------------
# Parsing: valid expressions

PARSE_CASES: list[tuple[str, dict[str, object]]] = [
    ("* * * * *", {"minutes": ALL_MINUTES, "hours": ALL_HOURS, "days_of_month": ALL_DAYS}),
    ("0 0 * * *", {"minutes": {0}, "hours": {0}, "months": ALL_MONTHS, "days_of_week": ALL_WEEKDAYS}),
    ("1,2,3 4-6 7 8 1", {"minutes": {1, 2, 3}, "hours": {4, 5, 6}, "days_of_month": {7}, "months": {8}}),
    ("*/15 * * * *", {"minutes": {0, 15, 30, 45}}),
    ("5-50/15 * * * *", {"minutes": {5, 20, 35, 50}}),
    ("10/20 * * * *", {"minutes": {10, 30, 50}}),
    ("59 */7 * * *", {"minutes": {59}, "hours": {0, 7, 14, 21}}),
    ("* * */10 * *", {"days_of_month": {1, 11, 21, 31}, "day_of_month_restricted": False}),
    ("* * 31 * *", {"days_of_month": {31}, "day_of_month_restricted": True}),
    ("* * * */5 *", {"months": {1, 6, 11}}),
    ("* * * jan,JUL,Dec *", {"months": {1, 7, 12}}),
    ("* * * Mar-may *", {"months": {3, 4, 5}}),
    ("* * * jan-dec/3 *", {"months": {1, 4, 7, 10}}),
    ("* * * * 0", {"days_of_week": {0}, "day_of_week_restricted": True}),
    ("* * * * 7", {"days_of_week": {0}}),
    ("* * * * sun", {"days_of_week": {0}}),
    ("* * * * SUN", {"days_of_week": {0}}),
    ("* * * * mon-fri", {"days_of_week": {1, 2, 3, 4, 5}}),
    ("* * * * 5-7", {"days_of_week": {5, 6, 0}}),
    ("* * * * fri-sun", {"days_of_week": {5, 6, 0}}),
    ("* * * * sun-sat", {"days_of_week": ALL_WEEKDAYS}),
    ("* * * * 0-7", {"days_of_week": ALL_WEEKDAYS}),
    ("* * * * 1/2", {"days_of_week": {1, 3, 5}}),
    ("* * * * */2", {"days_of_week": {0, 2, 4, 6}, "day_of_week_restricted": False}),
    ("* * * * 0,7,sun", {"days_of_week": {0}}),
    ("  0\t9 \n * * 1-5  ", {"minutes": {0}, "hours": {9}, "source": "0\t9 \n * * 1-5"}),
    ("00 09 01 01 *", {"minutes": {0}, "hours": {9}, "days_of_month": {1}, "months": {1}}),
    ("0 0 29 2 *", {"days_of_month": {29}, "months": {2}}),
    ("0 0 30 2 1", {"days_of_month": {30}, "days_of_week": {1}}),  # OR rule: Mondays in February
]

MACRO_CASES = [
    ("@yearly", "0 0 1 1 *"),
    ("@annually", "0 0 1 1 *"),
    ("@monthly", "0 0 1 * *"),
    ("@weekly", "0 0 * * 0"),
    ("@daily", "0 0 * * *"),
    ("@midnight", "0 0 * * *"),
    ("@hourly", "0 * * * *"),
    ("  @DAILY ", "0 0 * * *"),
]

FIELDS = ("minutes", "hours", "days_of_month", "months", "days_of_week")
FLAGS = ("day_of_month_restricted", "day_of_week_restricted")


@pytest.mark.parametrize(("text", "expected"), PARSE_CASES)
def test_parse_valid(text: str, expected: dict[str, object]) -> None:
    expr = CronExpression.parse(text)
    for name, value in expected.items():
        actual = getattr(expr, name)
        assert actual == value, (name, actual)
        if name in FIELDS:
            assert isinstance(actual, frozenset)


@pytest.mark.parametrize(("name", "equivalent"), MACRO_CASES)
def test_parse_macros(name: str, equivalent: str) -> None:
    expr = CronExpression.parse(name)
    other = CronExpression.parse(equivalent)
    for attribute in FIELDS + FLAGS:
        assert getattr(expr, attribute) == getattr(other, attribute), attribute
    assert expr.source == name.strip()


def test_weekly_fires_on_sunday_midnight() -> None:
    expr = CronExpression.parse("@weekly")
    sundays = list(expr.fires_between(utc(2026, 1, 1), utc(2026, 2, 7), UTC_ZONE))
    assert sundays == [utc(2026, 1, 4), utc(2026, 1, 11), utc(2026, 1, 18), utc(2026, 1, 25), utc(2026, 2, 1)]
    assert all(fire.isoweekday() == 7 for fire in sundays)  # periodiq's bug: it never fired at all


def test_sunday_spellings_agree() -> None:
    after = utc(2026, 1, 1)
    expected = utc(2026, 1, 4, 12)  # the first Sunday of 2026
    for text in ("0 12 * * 0", "0 12 * * 7", "0 12 * * sun", "0 12 * * Sun", "0 12 * * 6-7"):
        assert CronExpression.parse(text).next_fire(utc(2026, 1, 3, 12), UTC_ZONE) == expected, text
        assert CronExpression.parse(text).next_fire(after, UTC_ZONE) <= expected


# --------------------------------------------------------------------------------------------------
# Parsing: invalid expressions, with the field named in the error

INVALID_CASES: list[tuple[str, str, str]] = [
    # (text, field, a piece the message must contain)
    ("", "expression", "expected 5 fields"),
    ("   ", "expression", "expected 5 fields"),
    ("* * *", "expression", "got 3"),
    ("* * * * * *", "expression", "got 6"),
    ("@reboot", "expression", "@daily"),
    ("@fortnightly", "expression", "@hourly"),
    ("@daily 5", "expression", "stands alone"),
    ("60 * * * *", "minute", 'minute field "60": 60 is out of range 0-59'),
    ("-1 * * * *", "minute", "minute field"),
    ("* 25 * * *", "hour", 'hour field "25": 25 is out of range 0-23'),
    ("* 24 * * *", "hour", "0-23"),
    ("* * 0 * *", "day-of-month", "1-31"),
    ("* * 32 * *", "day-of-month", "1-31"),
    ("* * * 0 *", "month", "1-12 or jan-dec"),
    ("* * * 13 *", "month", "1-12 or jan-dec"),
    ("* * * janu *", "month", '"janu"'),
    ("* * * * 8", "day-of-week", "0-7 or sun-sat"),
    ("* * * * sunday", "day-of-week", "0-7 or sun-sat"),
    ("* * * * mon-sun-tue", "day-of-week", "day-of-week field"),
    ("*/0 * * * *", "minute", "at least 1"),
    ("* 1-5/0 * * *", "hour", "at least 1"),
    ("*/61 * * * *", "minute", "larger than"),
    ("*/x * * * *", "minute", "whole number"),
    ("*/ * * * *", "minute", "whole number"),
    ("*/2/3 * * * *", "minute", "*/2/3"),
    ("1-2-3 * * * *", "minute", "1-2-3"),
    ("*-5 * * * *", "minute", "either *"),
    ("30-10 * * * *", "minute", "backwards"),
    ("* * * * sat-mon", "day-of-week", "backwards"),
    ("* * * dec-jan *", "month", "backwards"),
    ("1,,2 * * * *", "minute", "empty list item"),
    (",1 * * * *", "minute", "empty list item"),
    ("1, * * * *", "minute", "empty list item"),
    ("1- * * * *", "minute", "missing"),
    ("1;2 * * * *", "minute", '"1;2"'),
    ("* 1h * * *", "hour", '"1h"'),
    ("* * * * mon#2", "day-of-week", "day-of-week field"),
    ("* * L * *", "day-of-month", "day-of-month field"),
    ("* * ? * *", "day-of-month", "day-of-month field"),
    ("\u0663 * * * *", "minute", "minute field"),  # an Arabic-Indic digit three
    ("jan * * * *", "minute", "not a number"),
    ("99999999999999999999 * * * *", "minute", "out of range"),
    ("0 0 30 2 *", "day-of-month", "never"),
    ("0 0 31 2 *", "day-of-month", "never"),
    ("0 0 31 4,6,9,11 *", "day-of-month", "never"),
    ("0 0 30,31 feb *", "day-of-month", "never"),
    ("0 0 30 2 */2", "day-of-month", "never"),  # day-of-week starts with *: both must match
]


@pytest.mark.parametrize(("text", "field", "fragment"), INVALID_CASES)
def test_parse_invalid(text: str, field: str, fragment: str) -> None:
    with pytest.raises(CronError) as raised:
        CronExpression.parse(text)
    assert raised.value.field == field
    assert fragment in str(raised.value)
    assert isinstance(raised.value, ValueError)
    if field != "expression":
        assert str(raised.value).startswith(f"{field} field ")


def test_error_messages_read_well() -> None:
    with pytest.raises(
        CronError, match=r"^expected 5 fields \(minute hour day-of-month month day-of-week\) or "
    ):
        CronExpression.parse("a b c")
    with pytest.raises(CronError) as raised:
        CronExpression.parse("0 0 31 4 *")
    assert str(raised.value) == (
        'day-of-month field "31": that day never occurs in Apr, so the schedule would never run'
    )
    with pytest.raises(CronError) as raised:
        CronExpression.parse("x" * 500 + " * * * *")
    assert len(str(raised.value)) < 200  # long garbage is shortened in the message


def test_impossible_day_is_fine_with_the_or_rule() -> None:
    # Both day fields restricted: "the 30th OR a Monday" - runs on Mondays in February.
    expr = CronExpression.parse("0 0 30 2 1")
    assert expr.next_fire(utc(2026, 1, 1), UTC_ZONE) == utc(2026, 2, 2)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from("0123456789*/-, \tjanmonsu@dly\u0663x"), max_size=30))
def test_parse_raises_only_cron_error(text: str) -> None:
    try:
        expr = CronExpression.parse(text)
    except CronError as error:
        assert error.field in {"expression", "minute", "hour", "day-of-month", "month", "day-of-week"}
        assert str(error)
    else:
        assert expr.minutes and expr.hours and expr.days_of_month and expr.months and expr.days_of_week
        expr.next_fire(utc(2026, 1, 1), UTC_ZONE)


# --------------------------------------------------------------------------------------------------
# next_fire in UTC

UTC_CASES: list[tuple[str, datetime, datetime]] = [
    # month ends
    ("0 0 31 * *", datetime(2026, 4, 1), datetime(2026, 5, 31)),
    ("0 0 31 * *", datetime(2026, 1, 31), datetime(2026, 3, 31)),
    ("0 0 31 2,3 *", datetime(2026, 1, 1), datetime(2026, 3, 31)),
    ("59 23 31 12 *", datetime(2026, 12, 31, 23, 59), datetime(2027, 12, 31, 23, 59)),
    ("@monthly", datetime(2026, 1, 31, 12), datetime(2026, 2, 1)),
    ("@yearly", datetime(2026, 6, 15), datetime(2027, 1, 1)),
    # leap years (2100 is not one)
    ("0 0 29 2 *", datetime(2026, 1, 1), datetime(2028, 2, 29)),
    ("0 0 29 2 *", datetime(2028, 2, 29), datetime(2032, 2, 29)),
    ("0 0 29 2 *", datetime(2096, 3, 1), datetime(2104, 2, 29)),
    ("0 12 28-31 2 *", datetime(2027, 2, 28, 12), datetime(2028, 2, 28, 12)),
    ("0 12 28-31 2 *", datetime(2028, 2, 28, 12), datetime(2028, 2, 29, 12)),
    ("0 0 29 2 */7", datetime(2026, 1, 1), datetime(2032, 2, 29)),  # Feb 29 AND a Sunday
    # the day rule: both restricted -> OR; one starting with * -> AND
    ("0 0 13 * 5", datetime(2026, 1, 1), datetime(2026, 1, 2)),  # Friday 2nd
    ("0 0 13 * 5", datetime(2026, 1, 9), datetime(2026, 1, 13)),  # Tuesday 13th
    ("0 0 1-7 * 1", datetime(2026, 1, 7), datetime(2026, 1, 12)),  # a Monday outside 1-7
    ("0 0 */10 * 1", datetime(2026, 1, 1), datetime(2026, 5, 11)),  # day 1/11/21/31 AND Monday
    ("0 0 * * 1", datetime(2026, 1, 1), datetime(2026, 1, 5)),
    ("0 9 * * mon-fri", datetime(2026, 1, 2, 9), datetime(2026, 1, 5, 9)),
    ("@weekly", datetime(2026, 1, 1), datetime(2026, 1, 4)),
    # steps, and "strictly after"
    ("5-50/15 * * * *", datetime(2026, 1, 1, 10, 50), datetime(2026, 1, 1, 11, 5)),
    ("*/20 */6 * * *", datetime(2026, 1, 1, 6, 41), datetime(2026, 1, 1, 12)),
    ("* * * * *", datetime(2026, 1, 1, 12, 0, 30), datetime(2026, 1, 1, 12, 1)),
    ("* * * * *", datetime(2026, 1, 1, 12, 0), datetime(2026, 1, 1, 12, 1)),
    ("0 * * * *", datetime(2026, 1, 1, 23, 59, 59, 999999), datetime(2026, 1, 2)),
    ("@hourly", datetime(2026, 12, 31, 23, 0), datetime(2027, 1, 1)),
]


@pytest.mark.parametrize(("text", "after", "expected"), UTC_CASES)
def test_next_fire_utc(text: str, after: datetime, expected: datetime) -> None:
    result = CronExpression.parse(text).next_fire(after.replace(tzinfo=UTC), UTC_ZONE)
    assert result == expected.replace(tzinfo=UTC)
    assert result.tzinfo is UTC
    assert result.second == 0 and result.microsecond == 0


def test_next_fire_accepts_any_aware_datetime() -> None:
    expr = CronExpression.parse("0 12 * * *")
    after = datetime(2026, 6, 1, 13, 30, tzinfo=LONDON)  # 12:30 UTC
    assert expr.next_fire(after, UTC_ZONE) == utc(2026, 6, 2, 12)


def test_next_fire_rejects_naive_datetime() -> None:
    with pytest.raises(ValueError, match="aware"):
        CronExpression.parse("* * * * *").next_fire(datetime(2026, 1, 1), UTC_ZONE)


def test_fires_between_is_half_open() -> None:
    expr = CronExpression.parse("0 */6 * * *")
    result = list(expr.fires_between(utc(2026, 1, 1), utc(2026, 1, 2), UTC_ZONE))
    assert result == [utc(2026, 1, 1, 6), utc(2026, 1, 1, 12), utc(2026, 1, 1, 18), utc(2026, 1, 2)]
    assert list(expr.fires_between(utc(2026, 1, 1, 1), utc(2026, 1, 1, 5), UTC_ZONE)) == []


def test_matches_local_wall_time() -> None:
    expr = CronExpression.parse("30 9 * * mon-fri")
    assert expr.matches(datetime(2026, 1, 5, 9, 30))  # Monday
    assert expr.matches(datetime(2026, 1, 5, 9, 30, 59))  # minute resolution
    assert not expr.matches(datetime(2026, 1, 4, 9, 30))  # Sunday
    assert not expr.matches(datetime(2026, 1, 5, 9, 31))
    either = CronExpression.parse("0 0 13 * fri")
    assert either.matches(datetime(2026, 1, 13))  # Tuesday the 13th
    assert either.matches(datetime(2026, 1, 2))  # Friday the 2nd
    assert not either.matches(datetime(2026, 1, 3))


def test_describe() -> None:
    assert CronExpression.parse("0 9 * * 1-5").describe() == "at 09:00 on Mon-Fri"
    assert CronExpression.parse("@weekly").describe() == "at 00:00 on Sun"
    assert CronExpression.parse("*/15 * * * *").describe() == "at minute(s) 0,15,30,45 of every hour"
    assert CronExpression.parse("* * * * *").describe() == "every minute"
    assert CronExpression.parse("0 0 13 * 5").describe() == "at 00:00 on day(s) 13 of the month or on Fri"
    assert CronExpression.parse("0,30 8 1 jan,jul *").describe() == (
        "at 08:00 and 08:30 on day(s) 1 of the month in Jan,Jul"
    )
    assert CronExpression.parse("5 4 * * fri-sun").describe() == "at 04:05 on Fri-Sun"


# --------------------------------------------------------------------------------------------------
# Time zones


@pytest.mark.parametrize("name", ["", "  ", None])
def test_parse_timezone_defaults_to_utc(name: str | None) -> None:
    assert parse_timezone(name) == ZoneInfo("UTC")


def test_parse_timezone_known() -> None:
    assert parse_timezone(" Europe/London ") is LONDON
    assert parse_timezone("Asia/Kolkata") is KOLKATA


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("Europe/Londn", 'did you mean "Europe/London"'),
        ("europe/london", 'did you mean "Europe/London"'),
        ("Mars/Olympus_Mons", "such as Europe/London"),
        ("../../etc/passwd", "unknown time zone"),
        ("/etc/localtime", "unknown time zone"),
        ("localtime", "unknown time zone"),
        ("Europe", "unknown time zone"),
        ("x" * 5000, "unknown time zone"),
        ("a\0b", "unknown time zone"),
    ],
)
def test_parse_timezone_unknown(name: str, fragment: str) -> None:
    with pytest.raises(TimezoneError) as raised:
        parse_timezone(name)
    assert fragment in str(raised.value)
    assert isinstance(raised.value, ValueError)
    assert raised.value.zone == name.strip()
    assert len(str(raised.value)) < 200


# --------------------------------------------------------------------------------------------------
# DST: exact instants on the transition days


DST_CASES: list[tuple[str, ZoneInfo, datetime, list[datetime]]] = [
    # London spring forward 2026-03-29: 01:00 GMT -> 02:00 BST at 01:00 UTC; 01:xx does not exist.
    (
        "30 1 * * *",
        LONDON,
        utc(2026, 3, 27, 12),
        [utc(2026, 3, 28, 1, 30), utc(2026, 3, 29, 1), utc(2026, 3, 30, 0, 30)],
    ),
    (
        "*/15 1 * * *",
        LONDON,
        utc(2026, 3, 28, 12),
        [utc(2026, 3, 29, 1), utc(2026, 3, 30, 0), utc(2026, 3, 30, 0, 15)],
    ),
    # 01:00, 01:30 (nonexistent) and 02:00 BST all fall on 01:00 UTC: one fire.
    (
        "0,30 1,2 * * *",
        LONDON,
        utc(2026, 3, 28, 23),
        [utc(2026, 3, 29, 1), utc(2026, 3, 29, 1, 30), utc(2026, 3, 30)],
    ),
    (
        "0 9 * * *",
        LONDON,
        utc(2026, 3, 27, 12),
        [utc(2026, 3, 28, 9), utc(2026, 3, 29, 8), utc(2026, 3, 30, 8)],
    ),
    # London fall back 2026-10-25: 02:00 BST -> 01:00 GMT at 01:00 UTC; 01:xx happens twice.
    (
        "30 1 * * *",
        LONDON,
        utc(2026, 10, 23, 12),
        [utc(2026, 10, 24, 0, 30), utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)],
    ),
    (
        "*/15 1 * * *",
        LONDON,
        utc(2026, 10, 24, 12),
        [
            utc(2026, 10, 25, 0),
            utc(2026, 10, 25, 0, 15),
            utc(2026, 10, 25, 0, 30),
            utc(2026, 10, 25, 0, 45),
            utc(2026, 10, 26, 1),
        ],
    ),
    (
        "0 9 * * *",
        LONDON,
        utc(2026, 10, 23, 12),
        [utc(2026, 10, 24, 8), utc(2026, 10, 25, 9), utc(2026, 10, 26, 9)],
    ),
    # New York spring forward 2026-03-08: 02:00 EST -> 03:00 EDT at 07:00 UTC; 02:xx does not exist.
    (
        "30 2 * * *",
        NEW_YORK,
        utc(2026, 3, 6, 12),
        [utc(2026, 3, 7, 7, 30), utc(2026, 3, 8, 7), utc(2026, 3, 9, 6, 30)],
    ),
    (
        "*/15 2 * * *",
        NEW_YORK,
        utc(2026, 3, 7, 12),
        [utc(2026, 3, 8, 7), utc(2026, 3, 9, 6), utc(2026, 3, 9, 6, 15)],
    ),
    (
        "0 9 * * *",
        NEW_YORK,
        utc(2026, 3, 6, 18),
        [utc(2026, 3, 7, 14), utc(2026, 3, 8, 13), utc(2026, 3, 9, 13)],
    ),
    # New York fall back 2026-11-01: 02:00 EDT -> 01:00 EST at 06:00 UTC; 01:xx happens twice.
    (
        "30 1 * * *",
        NEW_YORK,
        utc(2026, 10, 30, 12),
        [utc(2026, 10, 31, 5, 30), utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30)],
    ),
    (
        "*/15 1 * * *",
        NEW_YORK,
        utc(2026, 10, 31, 12),
        [
            utc(2026, 11, 1, 5),
            utc(2026, 11, 1, 5, 15),
            utc(2026, 11, 1, 5, 30),
            utc(2026, 11, 1, 5, 45),
            utc(2026, 11, 2, 6),
        ],
    ),
    (
        "0 9 * * *",
        NEW_YORK,
        utc(2026, 10, 30, 18),
        [utc(2026, 10, 31, 13), utc(2026, 11, 1, 14), utc(2026, 11, 2, 14)],
    ),
    # Lord Howe (30-minute DST) spring forward 2026-10-04: 02:00 +10:30 -> 02:30 +11 at 15:30 UTC (Oct 3).
    (
        "15 2 * * *",
        LORD_HOWE,
        utc(2026, 10, 2, 12),
        [utc(2026, 10, 2, 15, 45), utc(2026, 10, 3, 15, 30), utc(2026, 10, 4, 15, 15)],
    ),
    # Lord Howe fall back 2026-04-05: 02:00 +11 -> 01:30 +10:30 at 15:00 UTC (Apr 4); 01:30-01:59 twice.
    (
        "45 1 * * *",
        LORD_HOWE,
        utc(2026, 4, 3, 12),
        [utc(2026, 4, 3, 14, 45), utc(2026, 4, 4, 14, 45), utc(2026, 4, 5, 15, 15)],
    ),
]


@pytest.mark.parametrize(("text", "zone", "after", "expected"), DST_CASES)
def test_dst_transition_days(text: str, zone: ZoneInfo, after: datetime, expected: list[datetime]) -> None:
    assert fires(text, zone, after, len(expected)) == expected


def test_every_minute_across_london_spring_forward() -> None:
    # The wall clock jumps from 00:59 GMT to 02:00 BST: local 01:00-02:00 all fire at 01:00 UTC, once.
    result = list(
        CronExpression.parse("* * * * *").fires_between(
            utc(2026, 3, 29, 0, 58), utc(2026, 3, 29, 1, 2), LONDON
        )
    )
    assert result == [
        utc(2026, 3, 29, 0, 59),
        utc(2026, 3, 29, 1),
        utc(2026, 3, 29, 1, 1),
        utc(2026, 3, 29, 1, 2),
    ]


def test_repeated_hour_does_not_fire_twice() -> None:
    # From inside the second pass of 01:xx (GMT), the 01:xx times have already run at their first pass.
    expr = CronExpression.parse("*/15 1 * * *")
    second_pass = utc(2026, 10, 25, 1, 10)
    assert second_pass.astimezone(LONDON).fold == 1
    assert expr.next_fire(second_pass, LONDON) == utc(2026, 10, 26, 1)
    assert expr.next_fire(second_pass.astimezone(LONDON), LONDON) == utc(2026, 10, 26, 1)
    assert CronExpression.parse("* * * * *").next_fire(second_pass, LONDON) == utc(2026, 10, 25, 2)


@pytest.mark.parametrize(
    ("zone", "start"),
    [
        (LONDON, utc(2026, 3, 28)),
        (LONDON, utc(2026, 10, 24)),
        (NEW_YORK, utc(2026, 3, 7)),
        (NEW_YORK, utc(2026, 10, 31)),
        (LORD_HOWE, utc(2026, 4, 3)),
        (LORD_HOWE, utc(2026, 10, 2)),
    ],
)
@pytest.mark.parametrize(
    "text",
    [
        "* * * * *",
        "*/15 1-3 * * *",
        "30 1 * * *",
        "0,30 1,2 * * *",
        "59 0-3 * * *",
        "0 9 * * *",
        "*/7 * * * *",
    ],
)
def test_dst_days_against_simulated_clock(zone: ZoneInfo, start: datetime, text: str) -> None:
    expr = CronExpression.parse(text)
    end = start + timedelta(days=2)
    expected = simulated_fires(expr, zone, start, end)
    assert list(expr.fires_between(start, end, zone)) == expected


# --------------------------------------------------------------------------------------------------
# A year of fires: strictly increasing, no duplicates, the expected count


@pytest.mark.parametrize(
    ("text", "zone", "count"),
    [
        # Every local quarter hour once; at spring forward 01:00-02:00 (5 local times) share one instant.
        ("*/15 * * * *", LONDON, 365 * 96 - 4),
        ("*/15 * * * *", NEW_YORK, 365 * 96 - 4),
        # Lord Howe's gap is 30 minutes: 02:00, 02:15 and 02:30 share one instant.
        ("*/15 * * * *", LORD_HOWE, 365 * 96 - 2),
        ("*/15 * * * *", KOLKATA, 365 * 96),
        ("30 1 * * *", LONDON, 365),
        ("30 2 * * *", NEW_YORK, 365),
        ("0,30 1,2 * * *", LONDON, 365 * 4 - 2),
        ("@weekly", LONDON, 52),
        ("0 0 13 * 5", NEW_YORK, 52 + 12 - 3),  # 2026 has three Friday-13ths
    ],
)
def test_a_year_of_fires(text: str, zone: ZoneInfo, count: int) -> None:
    expr = CronExpression.parse(text)
    start = datetime(2026, 1, 1, tzinfo=zone) - timedelta(microseconds=1)  # local midnight counts
    end = datetime(2027, 1, 1, tzinfo=zone) - timedelta(microseconds=1)
    result = list(expr.fires_between(start, end, zone))
    assert all(earlier < later for earlier, later in itertools.pairwise(result))
    assert len(result) == len(set(result)) == count
    assert all(fire.tzinfo is UTC and fire.second == 0 and fire.microsecond == 0 for fire in result)


# --------------------------------------------------------------------------------------------------
# Property: next_fire agrees with the brute-force oracle


def _transitions(zone: ZoneInfo, first_year: int, last_year: int) -> list[datetime]:
    """The instants at which `zone` changes its UTC offset, to the minute."""

    def offset(instant: datetime) -> timedelta | None:
        return instant.astimezone(zone).utcoffset()

    found = []
    day = datetime(first_year, 1, 1, tzinfo=UTC)
    while day.year <= last_year:
        following = day + timedelta(days=1)
        if offset(day) != offset(following):
            low, high = day, following  # offset(low) != offset(high); narrow down to one minute
            while high - low > timedelta(minutes=1):
                middle = low + (high - low) / 2
                middle = middle.replace(second=0, microsecond=0)
                if offset(middle) == offset(low):
                    low = middle
                else:
                    high = middle
            found.append(high)
        day = following
    return found


TRANSITIONS = {zone: _transitions(zone, 2025, 2027) for zone in ZONES}


def test_transitions_helper() -> None:
    assert utc(2026, 3, 29, 1) in TRANSITIONS[LONDON]
    assert utc(2026, 10, 25, 1) in TRANSITIONS[LONDON]
    assert utc(2026, 3, 8, 7) in TRANSITIONS[NEW_YORK]
    assert utc(2026, 11, 1, 6) in TRANSITIONS[NEW_YORK]
    assert len(TRANSITIONS[LORD_HOWE]) == 6
    assert TRANSITIONS[UTC_ZONE] == TRANSITIONS[KOLKATA] == []


def _item(draw: st.DrawFn, low: int, high: int, names: tuple[str, ...] = ()) -> str:
    """One list item: a value, a range, or either of them or * with a step (names sometimes)."""
    use_names = bool(names) and draw(st.booleans())
    a = draw(st.integers(low, high))
    b = draw(st.integers(a, high))
    first, last = (names[a - low], names[b - low]) if use_names else (str(a), str(b))
    step = draw(st.integers(1, max(1, (high - low + 1) // 2)))
    kind = draw(st.sampled_from(["value", "range", "range-step", "start-step", "star-step"]))
    return {
        "value": first,
        "range": f"{first}-{last}",
        "range-step": f"{first}-{last}/{step}",
        "start-step": f"{first}/{step}",
        "star-step": f"*/{step}",
    }[kind]


@st.composite
def _field(draw: st.DrawFn, low: int, high: int, star: float, names: tuple[str, ...] = ()) -> str:
    if draw(st.floats(0, 1)) < star:
        return "*"
    return ",".join(_item(draw, low, high, names) for _ in range(draw(st.integers(1, 3))))


MONTH_NAMES = tuple(name.lower() for name in calendar.month_abbr[1:])
DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")

expressions = st.tuples(
    _field(0, 59, 0.3),
    # Half the time only early hours, where the DST transitions of the test zones are.
    st.one_of(_field(0, 23, 0.3), _field(0, 3, 0.0)),
    _field(1, 31, 0.7),
    _field(1, 12, 0.85, MONTH_NAMES),
    _field(0, 7, 0.6, DAY_NAMES),
).map(" ".join)


@st.composite
def _zone_and_instant(draw: st.DrawFn) -> tuple[ZoneInfo, datetime]:
    zone = draw(st.sampled_from(ZONES))
    transitions = TRANSITIONS[zone]
    if transitions and draw(st.integers(0, 4)) > 0:
        # Near a transition: within 36 hours, often within 3, often on a whole minute.
        anchor = draw(st.sampled_from(transitions))
        minutes = draw(st.one_of(st.integers(-36 * 60, 36 * 60), st.integers(-180, 180)))
        instant = anchor + timedelta(minutes=minutes)
        if draw(st.booleans()):
            instant += timedelta(seconds=draw(st.integers(0, 59)), microseconds=draw(st.integers(0, 999999)))
    else:
        naive = draw(st.datetimes(datetime(2000, 1, 1), datetime(2040, 1, 1)))
        instant = naive.replace(tzinfo=UTC)
    return zone, instant


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expressions, _zone_and_instant())
@example("*/15 1 * * *", (LONDON, utc(2026, 10, 25, 1, 10)))
@example("0,30 1,2 * * *", (LONDON, utc(2026, 3, 29, 0, 59, 59)))
@example("* 2 * * *", (LORD_HOWE, utc(2026, 10, 3, 15, 29)))
@example("45 1 * * *", (LORD_HOWE, utc(2026, 4, 4, 15, 5)))
def test_next_fire_matches_oracle(text: str, zone_and_instant: tuple[ZoneInfo, datetime]) -> None:
    zone, after = zone_and_instant
    try:
        expr = CronExpression.parse(text)
    except CronError as error:
        # Only expressions with no possible day may be rejected: never with the OR rule, otherwise
        # when no chosen day of the month exists in a chosen month (checked over a leap-year cycle).
        assert error.field == "day-of-month" and "never" in str(error)
        dom, _, dow = text.split()[2:]
        assert dom[0] != "*" and dow[0] == "*"
        months, days = _months(text), _days(text)
        leap_cycle = [date(2028, 1, 1) + timedelta(days=n) for n in range(4 * 365 + 1)]
        assert not any(day.month in months and day.day in days for day in leap_cycle)
        event("rejected: the day never occurs")
        return
    result = expr.next_fire(after, zone)
    expected = oracle_next_fire(expr, after, zone)
    if expected is None:
        event("no fire within the oracle's window")
        assert result > after + timedelta(days=3)  # nothing in the oracle's window, so it is later
    else:
        event("compared with the oracle")
        assert result == expected
    transitions = TRANSITIONS[zone]
    if any(abs(result - transition) <= timedelta(hours=2) for transition in transitions):
        event("fire within 2 hours of a DST transition")
    assert result > after
    assert result.tzinfo is UTC and result.second == 0 and result.microsecond == 0
    # The local time either matches or is the first instant after a nonexistent matching time.
    local = result.astimezone(zone).replace(tzinfo=None)
    before = (result - timedelta(minutes=1)).astimezone(zone).replace(tzinfo=None)
    assert oracle_matches(expr, local) or local - before > timedelta(minutes=1)


def _months(text: str) -> frozenset[int]:
    return CronExpression.parse(f"* * * {text.split()[3]} *").months


def _days(text: str) -> frozenset[int]:
    return CronExpression.parse(f"* * {text.split()[2]} 1 *").days_of_month


@settings(max_examples=50, deadline=None)
@given(expressions, st.sampled_from(ZONES), st.integers(0, 365))
def test_iterating_is_strictly_increasing(text: str, zone: ZoneInfo, day_of_year: int) -> None:
    try:
        expr = CronExpression.parse(text)
    except CronError:
        return
    start = utc(2026, 1, 1) + timedelta(days=day_of_year)
    previous = start
    for fire in _take(expr.fires_between(start, start + timedelta(days=60), zone), 200):
        assert fire > previous
        previous = fire


def _take(iterator: Iterator[datetime], count: int) -> Iterator[datetime]:
    for index, item in enumerate(iterator):
        if index == count:
            return
        yield item

"""The grammar of one cron field (minute, hour, day-of-month, month, day-of-week): values, names,
ranges, steps and lists, and the `CronError` that says which field is wrong and what is allowed
(see `cron.py` for the whole expression and its fire times)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

__all__ = ["SPECS", "CronError", "FieldName", "FieldSpec", "parse_field", "quote"]

FieldName = Literal["expression", "minute", "hour", "day-of-month", "month", "day-of-week"]

MONTH_NAMES: Final = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
DAY_NAMES: Final = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


class CronError(ValueError):
    """A schedule that cannot be used; `field` says which part is wrong.

    The message is meant for end users: it names the field, quotes the offending text and says what
    is allowed, e.g. ``hour field "25": 25 is out of range 0-23``.
    """

    def __init__(self, field: FieldName, message: str) -> None:
        super().__init__(message)
        self.field: FieldName = field


@dataclass(frozen=True)
class FieldSpec:
    name: FieldName
    low: int
    high: int
    names: tuple[str, ...] = ()  # names for the values low, low + 1, ...
    what: str = "value"  # how to call one value in messages

    def allowed(self) -> str:
        if self.name == "day-of-week" and self.names:
            return "0-7 or sun-sat"
        if self.names:
            return f"{self.low}-{self.high} or {self.names[0]}-{self.names[-1]}"
        return f"{self.low}-{self.high}"


MINUTE = FieldSpec("minute", 0, 59)
HOUR = FieldSpec("hour", 0, 23)
DAY_OF_MONTH = FieldSpec("day-of-month", 1, 31, what="day")
MONTH = FieldSpec("month", 1, 12, MONTH_NAMES, what="month")
# Day-of-week accepts 0-7 (7 is Sunday again); values are folded to 0-6 after parsing.
DAY_OF_WEEK = FieldSpec("day-of-week", 0, 7, (*DAY_NAMES, "sun"), what="weekday")
SPECS: Final = (MINUTE, HOUR, DAY_OF_MONTH, MONTH, DAY_OF_WEEK)

_ITEM = re.compile(r"(?P<start>[^-/]*)(?:-(?P<end>[^-/]*))?(?:/(?P<step>[^/]*))?", re.DOTALL)
_QUOTE_LIMIT: Final = 40


class _FieldError(Exception):
    """A problem inside one field; turned into a CronError that quotes the whole field."""


def _short(text: str) -> str:
    """`text` shortened for a message if it is long (messages are shown to users)."""
    return text if len(text) <= _QUOTE_LIMIT else text[: _QUOTE_LIMIT - 3] + "..."


def quote(text: str) -> str:
    return f'"{_short(text)}"'


def _parse_value(text: str, item: str, spec: FieldSpec, *, range_end: bool = False) -> int:
    if not text:
        raise _FieldError(f"missing {spec.what} in {quote(item)} (allowed: {spec.allowed()})")
    if text.isascii() and text.isdigit():
        if len(text) > 4 or not spec.low <= int(text) <= spec.high:
            raise _FieldError(f"{_short(text)} is out of range {spec.allowed()}")
        return int(text)
    lowered = text.lower()
    if spec.names and lowered in spec.names:
        if spec is DAY_OF_WEEK and lowered == "sun" and range_end:
            return 7  # "fri-sun": a closing Sunday is the end of the week
        return spec.low + spec.names.index(lowered)
    kind = "number" if not spec.names else spec.what + " number or name"
    raise _FieldError(f"{quote(text)} is not a {kind} (allowed: {spec.allowed()})")


def _parse_item(item: str, spec: FieldSpec) -> set[int]:
    match = _ITEM.fullmatch(item)
    if match is None:  # two ranges or two steps, e.g. "1-2-3" or "*/2/3"
        raise _FieldError(f"{quote(item)} is not a value, a range a-b or a step */n")
    start_text, end_text, step_text = match.group("start", "end", "step")

    step = 1
    if step_text is not None:
        if not (step_text.isascii() and step_text.isdigit()):
            raise _FieldError(f"step {quote(step_text)} in {quote(item)} is not a whole number")
        step = int(step_text) if len(step_text) <= 4 else 10_000  # huge steps: "larger than" below
        span = 7 if spec is DAY_OF_WEEK else spec.high - spec.low + 1
        if step == 0:
            raise _FieldError(f"step 0 in {quote(item)}: the step must be at least 1")
        if step > span:
            raise _FieldError(f"step in {quote(item)} is larger than the range {spec.allowed()}")

    # "*" and "a/n" run to the end of the field; for day-of-week that is Saturday (6), so that
    # "1/2" is Mon, Wed, Fri and does not pick up Sunday again as 7.
    field_end = 6 if spec is DAY_OF_WEEK else spec.high
    if start_text == "*":
        if end_text is not None:
            raise _FieldError(f"{quote(item)}: write either * or a range a-b, not both")
        low, high = spec.low, field_end
    else:
        low = _parse_value(start_text, item, spec)
        if end_text is not None:
            high = _parse_value(end_text, item, spec, range_end=True)
            if high < low:
                raise _FieldError(
                    f"range {quote(item)} goes backwards; write it from low to high "
                    "(wrap-around is not supported)"
                )
        elif step_text is not None:
            high = max(low, field_end)  # "a/n" means "a-max/n" ("7/2" is just Sunday)
        else:
            high = low
    return set(range(low, high + 1, step))


def parse_field(text: str, spec: FieldSpec) -> frozenset[int]:
    values: set[int] = set()
    try:
        for item in text.split(","):
            if not item:
                raise _FieldError("empty list item (check for a stray comma)")
            values |= _parse_item(item, spec)
    except _FieldError as error:
        raise CronError(spec.name, f"{spec.name} field {quote(text)}: {error}") from None
    if spec is DAY_OF_WEEK:
        values = {value % 7 for value in values}
    return frozenset(values)


# --------------------------------------------------------------------------------------------------
# The expression

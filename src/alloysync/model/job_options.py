"""The optional attributes of a job record: run control, notification and freshness options.

Overlap, ConcurrencyKey, Notify, NotifyOn, MaxAge and Backfill were added after the first release;
a design may lack any of them, and that feature is then off for the deployment (`Features`, from the
design serve reads at start-up). They are validated with the rest of the record — a bad value makes
the record Invalid with a message naming the attribute — but they are not part of the *definition*:
changing one never re-runs a once-now job (see `options_fingerprint` and serve/poller.py).

  Overlap         what a cron fire does while the job's previous run is still running:
                  skip (default), allow, queue-one, replace
  ConcurrencyKey  jobs sharing a key run at most ALLOYSYNC_CONCURRENCY_LIMITS[key] (1) at once
  Notify          e-mail addresses and/or webhook URLs (URLs must start with a prefix in
                  ALLOYSYNC_NOTIFY_URL_ALLOW)
  NotifyOn        failure (default: first failure, overdue, recovery), every-failure, always, never
  MaxAge          `26h`, `90m`, `2d`: no success for that long makes the job Overdue
  Backfill        `FROM..TO`: one run per cron fire in the range (a request: cleared once created)
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from alloysync.alloy.models import Item
from alloysync.model.cron import CronExpression, parse_timezone
from alloysync.model.design import JOB_ATTRIBUTES
from alloysync.model.times import parse_alloy_datetime
from alloysync.settings import JobAttributeCodes, Settings

OPTION_FIELDS = ("overlap", "concurrency_key", "notify", "notify_on", "max_age", "backfill")
ALL_FEATURES: frozenset[str] = frozenset(
    attribute.field for attribute in JOB_ATTRIBUTES if attribute.optional
)

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd]?)$")
_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,199}$")
_EPSILON = timedelta(microseconds=1)  # Backfill's FROM is inclusive; fires_between is (start, end]
_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")


class OverlapPolicy(StrEnum):
    SKIP = "skip"  # the fire never runs; Message notes it
    ALLOW = "allow"  # runs beside the previous run
    QUEUE_ONE = "queue-one"  # at most one run waits for the running one; later fires are dropped
    REPLACE = "replace"  # the running run is cancelled; the new one starts when it has ended


class NotifyPolicy(StrEnum):
    FAILURE = "failure"  # the first failure, overdue, and the recovery
    EVERY_FAILURE = "every-failure"
    ALWAYS = "always"
    NEVER = "never"


class OptionProblem(ValueError):
    def __init__(self, attribute: str, message: str) -> None:
        super().__init__(message)
        self.attribute = attribute
        self.message = message


@dataclass(frozen=True)
class RunControl:
    """The validated optional attributes of a job ('' / None / () where absent or off)."""

    overlap: str = ""  # an OverlapPolicy value; '' when the feature is off (fires overlap freely)
    concurrency_key: str = ""
    notify: tuple[str, ...] = ()
    notify_on: str = ""  # a NotifyPolicy value; '' when the feature is off
    max_age: float | None = None  # seconds
    backfill: tuple[datetime, datetime] | None = None  # (from, to), both inclusive, UTC


def read_options(item: Item, codes: JobAttributeCodes, features: frozenset[str]) -> dict[str, Any]:
    """The raw values of the optional attributes the design has (the others are off)."""
    return {name: item.value(getattr(codes, name)) for name in OPTION_FIELDS if name in features}


def options_fingerprint(options: dict[str, Any]) -> str:
    canonical = json.dumps(options, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def parse_control(
    options: dict[str, Any],
    settings: Settings,
    timezone: str,
    cron: str | None,
    features: frozenset[str],
) -> RunControl:
    """Validate the optional attributes of a job whose cron text is `cron` (None: not a cron job)."""
    codes = settings.attributes
    overlap = ""
    if "overlap" in features:
        overlap = _choice(options.get("overlap"), OverlapPolicy, OverlapPolicy.SKIP, codes.overlap, "Overlap")
    notify_on = ""
    if "notify_on" in features:
        notify_on = _choice(
            options.get("notify_on"), NotifyPolicy, NotifyPolicy.FAILURE, codes.notify_on, "NotifyOn"
        )
    return RunControl(
        overlap=overlap,
        concurrency_key=_concurrency_key(options.get("concurrency_key"), codes),
        notify=parse_notify(options.get("notify"), settings),
        notify_on=notify_on,
        max_age=_max_age(options.get("max_age"), codes),
        backfill=_backfill(options.get("backfill"), settings, timezone, cron),
    )


def parse_duration(text: str) -> float | None:
    """`90m`, `26h`, `2d`, `45s` or plain seconds as seconds; None when it is not such a text."""
    match = _DURATION.match(text.strip().lower())
    if match is None:
        return None
    return float(match.group(1)) * _DURATION_UNITS[match.group(2)]


def parse_notify(value: Any, settings: Settings) -> tuple[str, ...]:
    """Notify's targets: e-mail addresses and allowed webhook URLs (raises OptionProblem)."""
    code = settings.attributes.notify
    if value is None or (isinstance(value, str) and not value.strip()):
        return ()
    where = f"Notify ({code})"
    if not isinstance(value, str):
        raise OptionProblem(code, f"{where} must be text: comma-separated e-mail addresses and/or URLs")
    targets = []
    for part in (piece.strip() for piece in value.split(",")):
        if not part:
            continue
        if part.lower().startswith(("http://", "https://")):
            if not any(part.startswith(prefix) for prefix in settings.notify_url_allow):
                allowed = ", ".join(settings.notify_url_allow) or "none: ALLOYSYNC_NOTIFY_URL_ALLOW is empty"
                raise OptionProblem(
                    code,
                    f"{where}: the URL {part!r} is not allowed; webhook URLs must start with one of the "
                    f"prefixes the operator allows ({allowed})",
                )
        elif not _EMAIL.match(part):
            raise OptionProblem(
                code, f"{where}: {part!r} is neither an e-mail address (name@example.org) nor an http(s) URL"
            )
        targets.append(part)
    return tuple(dict.fromkeys(targets))


def _choice(value: Any, enum: type[StrEnum], default: StrEnum, code: str, name: str) -> str:
    if value is None or (isinstance(value, str) and not value.strip()):
        return default.value
    allowed = ", ".join(member.value for member in enum)
    if not isinstance(value, str):
        raise OptionProblem(code, f"{name} ({code}) must be text: one of {allowed}")
    try:
        return enum(value.strip().lower()).value
    except ValueError:
        raise OptionProblem(code, f"{name} ({code}) {value!r} is not one of {allowed}") from None


def _concurrency_key(value: Any, codes: JobAttributeCodes) -> str:
    if value is None or (isinstance(value, str) and not value.strip()):
        return ""
    where = f"ConcurrencyKey ({codes.concurrency_key})"
    if not isinstance(value, str) or not _KEY.match(value.strip()):
        raise OptionProblem(
            codes.concurrency_key,
            f"{where} must be a short name of letters, digits and . _ : / - (at most 200 characters), "
            "such as 'highways-api'",
        )
    return value.strip()


def _max_age(value: Any, codes: JobAttributeCodes) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    where = f"MaxAge ({codes.max_age})"
    seconds = parse_duration(value) if isinstance(value, str) else None
    if seconds is None or seconds <= 0:
        raise OptionProblem(codes.max_age, f"{where} {value!r} is not a duration such as 26h, 90m or 2d")
    return seconds


def _backfill(
    value: Any, settings: Settings, timezone: str, cron: str | None
) -> tuple[datetime, datetime] | None:
    code = settings.attributes.backfill
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    where = f"Backfill ({code})"
    example = "2026-11-01T00:00..2026-11-01T06:00"
    if not isinstance(value, str) or ".." not in value:
        raise OptionProblem(
            code, f"{where} must be FROM..TO (ISO date-times, both inclusive), e.g. {example}"
        )
    if cron is None:
        raise OptionProblem(code, f"{where}: only a job with a cron Schedule can be backfilled")
    zone = parse_timezone(timezone)
    start_text, _, end_text = value.strip().partition("..")
    try:
        start = parse_alloy_datetime(start_text.strip(), naive_zone=zone)
        end = parse_alloy_datetime(end_text.strip(), naive_zone=zone)
    except ValueError:
        raise OptionProblem(
            code, f"{where} {value!r}: FROM and TO must be ISO date-times, e.g. {example}"
        ) from None
    if end < start:
        raise OptionProblem(code, f"{where} {value!r}: TO is before FROM")
    limit = settings.backfill_max_runs
    expression = CronExpression.parse(cron)
    for fires, _fire in enumerate(expression.fires_between(start - _EPSILON, end, zone), start=1):
        if fires > limit:
            raise OptionProblem(
                code,
                f"{where} {value!r} covers more than {limit} fires of {cron!r} "
                "(ALLOYSYNC_BACKFILL_MAX_RUNS): backfill a shorter range at a time",
            )
    return start, end

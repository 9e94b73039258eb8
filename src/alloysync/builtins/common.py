"""What the built-in task families share: their settings, rows, allow-list checks, JMESPath, times.

**Rows.** Items travel between steps as *rows*, plain JSON objects a later step, a JMESPath
expression or a template can read directly:

    {"itemId": "…", "designCode": "designs_defects", "title": "D-1042", "signature": "…",
     "attributes_defectsStatus": "Open", "status": "Open", …}

`itemId` and `designCode` always; `title` and `signature` when Alloy sent them; then each
attribute under its code, or under the name a query gave it (`"attributes": {"status": "…code…"}`).
A step that takes items accepts a list of rows, a list of item ids, or an object with a `rows` list
(what `data.count` and `data.threshold` pass on).

Every check here raises `ParamsError` naming the option, so the same code serves validation (the
record becomes Invalid before anything runs) and the task at run time (the worker's own settings
are checked again: a worker never acts beyond its operator's allow-lists).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import jmespath
from jmespath import functions as jmespath_functions
from jmespath.exceptions import JMESPathError
from jmespath.parser import ParsedResult

from alloysync.alloy.models import Item
from alloysync.model.context import RunContext
from alloysync.model.job_options import parse_duration
from alloysync.model.params import json_kind
from alloysync.model.registry import ParamsError
from alloysync.model.times import format_alloy_datetime, parse_alloy_datetime, utc_now
from alloysync.settings import Settings
from alloysync.state.builtin_memory import BuiltinMemory
from alloysync.state.connections import connect_async

ROW_KEYS = ("itemId", "designCode", "title", "signature")
ROWS_KEY = "rows"  # an object passing rows on (data.count, data.threshold) keeps them here
_RELATIVE = re.compile(r"^now\s*(?:([+-])\s*(\S+))?$")


class BuiltinError(RuntimeError):
    """A built-in task cannot do what its options ask (the message says what and how to fix it)."""


def settings_of(ctx: RunContext) -> Settings:
    """The worker's settings, which bound what a built-in may do."""
    if ctx.settings is None:
        raise BuiltinError("the run's context carries no settings: built-in tasks run on an alloysync worker")
    return ctx.settings


@asynccontextmanager
async def builtin_memory(settings: Settings) -> AsyncIterator[BuiltinMemory]:
    """The built-ins' memory (state/builtin_memory.py) over a connection of the step's own."""
    client = connect_async(settings.effective_redis_url)
    try:
        yield BuiltinMemory(client)
    finally:
        await client.aclose()


# --- rows ------------------------------------------------------------------------------------


def item_row(item: Item, names: Mapping[str, str] | None = None) -> dict[str, Any]:
    """An item as a row; `names` (name → attribute code) keeps only those attributes, renamed."""
    row: dict[str, Any] = {"itemId": item.itemId, "designCode": item.designCode}
    title = (item.model_extra or {}).get("title")
    if isinstance(title, str):
        row["title"] = title
    if item.signature:
        row["signature"] = item.signature
    values = item.values()
    if names:
        for name, code in names.items():
            row[name] = values.get(code)
    else:
        row.update(values)
    return row


def rows_of(previous: Any, what: str) -> list[dict[str, Any]]:
    """The rows a step received: a list of rows or item ids, or an object with a `rows` list."""
    if previous is None:
        return []
    if isinstance(previous, dict) and isinstance(previous.get(ROWS_KEY), list):
        previous = previous[ROWS_KEY]
    if isinstance(previous, dict) and "itemId" in previous:
        previous = [previous]
    if isinstance(previous, str):
        previous = [previous]
    if not isinstance(previous, list):
        raise BuiltinError(
            f"{what} takes items: a list of rows (objects with an itemId) or of item ids, "
            f"not {json_kind(previous)}"
        )
    rows = []
    for position, entry in enumerate(previous):
        if isinstance(entry, str) and entry:
            rows.append({"itemId": entry})
        elif isinstance(entry, dict) and isinstance(entry.get("itemId"), str) and entry["itemId"]:
            rows.append(entry)
        else:
            raise BuiltinError(
                f"{what}: entry {position + 1} of its input is {json_kind(entry)}, not an item "
                "(an object with an itemId, or an item id)"
            )
    return rows


def check_item_count(count: int, settings: Settings, what: str) -> None:
    if count > settings.builtin_max_items:
        raise BuiltinError(
            f"{what} was given {count} items; one step handles at most {settings.builtin_max_items} "
            "(ALLOYSYNC_BUILTIN_MAX_ITEMS): narrow the query or raise the limit"
        )


def attribute_names(value: Any, option: str = "attributes") -> dict[str, str] | None:
    """The `attributes` option as name → code (None: every attribute under its code)."""
    if value is None:
        return None
    names = {code: code for code in value} if isinstance(value, list) else dict(value)
    for name, code in names.items():
        if not isinstance(code, str) or not code:
            raise ParamsError(f"option {option!r}: {name!r} must name an attribute code")
        if name in ROW_KEYS:
            raise ParamsError(f"option {option!r}: {name!r} is a row's own key; name the attribute otherwise")
    return names


# --- allow-lists -----------------------------------------------------------------------------


def check_design_allowed(design: Any, settings: Settings, option: str = "design") -> str:
    """`design` is a design or interface code in ALLOYSYNC_BUILTIN_ALLOY_DESIGNS (never the jobs design)."""
    if not isinstance(design, str) or not design:
        raise ParamsError(f"option {option!r} must be a design or interface code")
    if design == settings.jobs_design:
        raise ParamsError(
            f"option {option!r}: {design} is the jobs design (ALLOYSYNC_JOBS_DESIGN); "
            "built-in tasks never edit job records"
        )
    if design not in settings.builtin_alloy_designs:
        allowed = (
            ", ".join(settings.builtin_alloy_designs) or "none: ALLOYSYNC_BUILTIN_ALLOY_DESIGNS is empty"
        )
        raise ParamsError(
            f"option {option!r}: design {design} is not one the built-in tasks may edit "
            f"(allowed: {allowed}); ask the operator to add it to ALLOYSYNC_BUILTIN_ALLOY_DESIGNS"
        )
    return design


def url_allowed(url: str, prefixes: list[str]) -> bool:
    """Whether `url` lies under one of `prefixes`: same scheme, host and port, and a path that
    starts with the prefix's path at a segment boundary (`https://a.example/api` allows
    `https://a.example/api/x`, not `https://a.example/apix` nor `https://a.example.evil/`)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username or parts.password:
        return False
    for prefix in prefixes:
        allowed = urlsplit(prefix)
        if (allowed.scheme, allowed.hostname) != (parts.scheme, parts.hostname):
            continue
        if (allowed.port or _default_port(allowed.scheme)) != (port or _default_port(parts.scheme)):
            continue
        base = allowed.path or "/"
        path = parts.path or "/"
        if path == base or path.startswith(base if base.endswith("/") else base + "/"):
            return True
    return False


def check_url_allowed(url: Any, settings: Settings, option: str = "url") -> str:
    if not isinstance(url, str) or not url:
        raise ParamsError(f"option {option!r} must be an http(s) URL")
    if not settings.builtin_http_allow:
        raise ParamsError(
            "http.request is off: ALLOYSYNC_BUILTIN_HTTP_ALLOW is empty (the operator lists the URL "
            "prefixes it may call)"
        )
    if not url_allowed(url, settings.builtin_http_allow):
        raise ParamsError(
            f"option {option!r}: {url} is not under an allowed prefix "
            f"({', '.join(settings.builtin_http_allow)}; ALLOYSYNC_BUILTIN_HTTP_ALLOW)"
        )
    return url


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


# --- JMESPath --------------------------------------------------------------------------------


class _AlloyFunctions(jmespath_functions.Functions):
    """JMESPath functions for Alloy data: dates are ISO texts, so age and comparison need numbers."""

    @jmespath_functions.signature({"types": ["string"]})
    def _func_epoch(self, text: str) -> float | None:
        """`epoch(date)`: seconds since 1970 of an ISO date-time (null when it is not one)."""
        try:
            return parse_alloy_datetime(text).timestamp()
        except ValueError:
            return None

    @jmespath_functions.signature({"types": ["string", "null"]})
    def _func_age_days(self, text: str | None) -> float | None:
        """`age_days(date)`: days since an ISO date-time (null when it is not one)."""
        if text is None:
            return None
        try:
            return (utc_now() - parse_alloy_datetime(text)).total_seconds() / 86_400
        except ValueError:
            return None

    @jmespath_functions.signature()
    def _func_now(self) -> str:
        """`now()`: the current time as Alloy writes it."""
        return format_alloy_datetime(utc_now())


JMESPATH_OPTIONS = jmespath.Options(custom_functions=_AlloyFunctions())


def compile_jmespath(expression: Any, option: str) -> ParsedResult:
    """A JMESPath expression, or ParamsError naming the option and the problem."""
    if not isinstance(expression, str) or not expression.strip():
        raise ParamsError(f"option {option!r} must be a JMESPath expression such as \"[?status=='Open']\"")
    try:
        return jmespath.compile(expression)
    except JMESPathError as error:
        raise ParamsError(f"option {option!r} is not a valid JMESPath expression: {error}") from None


def search(compiled: ParsedResult, data: Any, option: str) -> Any:
    try:
        return compiled.search(data, options=JMESPATH_OPTIONS)
    except JMESPathError as error:
        raise BuiltinError(f"option {option!r}: {error}") from None


def truthy(value: Any) -> bool:
    """JMESPath's truth: false, null and empty strings, lists and objects are false."""
    return value not in (None, False, "", [], {})


# --- times -----------------------------------------------------------------------------------


def moment(text: Any, option: str, now: datetime | None = None) -> datetime:
    """An ISO date-time (with an offset or Z; without one it is UTC), or `now`, `now-30d`,
    `now+2h`, `now-90m` relative to the moment the step runs."""
    if not isinstance(text, str) or not text.strip():
        raise ParamsError(f"option {option!r} must be a date-time such as 2026-07-02T09:30:00Z or now-30d")
    now = now or utc_now()
    relative = _RELATIVE.match(text.strip().lower())
    if relative is not None:
        sign, amount = relative.groups()
        if sign is None:
            return now
        seconds = parse_duration(amount)
        if seconds is None:
            raise ParamsError(
                f"option {option!r}: {text!r} has a bad duration; write e.g. now-30d, now-12h, now+90m"
            )
        return now + timedelta(seconds=seconds if sign == "+" else -seconds)
    try:
        return parse_alloy_datetime(text.strip())
    except ValueError:
        raise ParamsError(
            f"option {option!r}: {text!r} is not a date-time; write e.g. 2026-07-02T09:30:00Z or now-30d"
        ) from None

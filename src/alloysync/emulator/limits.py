"""Alloy's rate limits: per API token, per request family, in fixed windows (60 s by default).

Families: `query` (POST /api/aqs/query, 120), `read` (GET /api/item/..., 300), `write` (POST, PUT
and DELETE /api/item..., 150). Alloy documents limits for these three only; the emulator counts the
design endpoints with them by what they do: GET /api/design... (read a design, list designs) in
`read`, POST/PUT/DELETE /api/design... (create a design, add an attribute) in `write`. `other`
requests are counted in stats but not limited.

Windows are aligned to multiples of the window length since the epoch, so `X-Rate-Limit-Reset` is
the same instant for every request in a window. Every limited response, a 429 or not, carries
exactly Alloy's documented headers `X-Rate-Limit-Remaining` and `X-Rate-Limit-Reset` (ISO time);
nothing else (no `Retry-After`, no limit header). The admin API can change the limits and the
window length (tests shrink the window to keep fast) or switch limiting off.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from alloysync.emulator.checks import is_number
from alloysync.emulator.clock import format_timestamp
from alloysync.emulator.errors import AlloyError, Category, bad_request


class Family(StrEnum):
    QUERY = "query"
    READ = "read"
    WRITE = "write"
    OTHER = "other"


QUERY_PATH = "/api/aqs/query"
ITEM_PATH_PREFIX = "/api/item"
DESIGN_PATH_PREFIX = "/api/design"


def family_of(method: str, path: str) -> Family:
    """Which rate-limit family an API request belongs to."""
    if path == QUERY_PATH and method == "POST":
        return Family.QUERY
    if any(
        path == prefix or path.startswith(prefix + "/") for prefix in (ITEM_PATH_PREFIX, DESIGN_PATH_PREFIX)
    ):
        if method == "GET":
            return Family.READ
        if method in ("POST", "PUT", "DELETE"):
            return Family.WRITE
    return Family.OTHER


@dataclass(frozen=True)
class RateLimitConfig:
    enabled: bool = True
    window_seconds: float = 60.0
    query: int = 120
    read: int = 300
    write: int = 150

    def limit_for(self, family: Family) -> int | None:
        if family is Family.QUERY:
            return self.query
        if family is Family.READ:
            return self.read
        if family is Family.WRITE:
            return self.write
        return None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RateDecision:
    """The outcome of counting one request: allowed or not, and the headers that describe the window."""

    allowed: bool
    limit: int
    remaining: int
    resets_at: float  # epoch seconds

    def headers(self) -> dict[str, str]:
        return {
            "X-Rate-Limit-Remaining": str(self.remaining),
            "X-Rate-Limit-Reset": format_timestamp(datetime.fromtimestamp(self.resets_at, UTC)),
        }

    def error(self, family: Family) -> AlloyError:
        return AlloyError(
            429,
            Category.RATE_LIMITED,
            f"rate limit exceeded: at most {self.limit} {family} requests per window for this API key; "
            f"retry after {format_timestamp(datetime.fromtimestamp(self.resets_at, UTC))}",
            {"limit": self.limit, "family": str(family)},
        )


class RateLimiter:
    """Counts requests per (token, family) in the current fixed window."""

    def __init__(self, config: RateLimitConfig) -> None:
        self.config = config
        self._windows: dict[tuple[str, Family], tuple[float, int]] = {}

    def count(self, token_key: str, family: Family, now: float | None = None) -> RateDecision | None:
        """Count one request; None when the family is not limited or limiting is off."""
        limit = self.config.limit_for(family)
        if limit is None or not self.config.enabled:
            return None
        moment = time.time() if now is None else now
        length = self.config.window_seconds
        window_start = math.floor(moment / length) * length
        start, used = self._windows.get((token_key, family), (window_start, 0))
        if start != window_start:
            used = 0
        allowed = used < limit
        if allowed:
            used += 1
        self._windows[(token_key, family)] = (window_start, used)
        return RateDecision(
            allowed=allowed, limit=limit, remaining=limit - used, resets_at=window_start + length
        )

    def configure(self, updates: Mapping[str, Any]) -> RateLimitConfig:
        """Apply a partial change from the admin API (400 on a bad value); windows start afresh."""
        changes: dict[str, Any] = {}
        for key, value in updates.items():
            if key == "enabled":
                if not isinstance(value, bool):
                    raise bad_request("enabled must be true or false")
                changes[key] = value
            elif key == "window_seconds":
                if not is_number(value) or not 0 < value <= 3600:
                    raise bad_request("window_seconds must be a number of seconds in (0, 3600]")
                changes[key] = float(value)
            elif key in ("query", "read", "write"):
                if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                    raise bad_request(f"{key} must be a whole number of requests per window, 0 or more")
                changes[key] = value
            else:
                raise bad_request(
                    f"unknown rate-limit setting {key!r}; known: enabled, window_seconds, query, read, write"
                )
        self.config = replace(self.config, **changes)
        self.reset_windows()
        return self.config

    def reset_windows(self) -> None:
        self._windows.clear()

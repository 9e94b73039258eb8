"""Client-side rate limiting for the Alloy API: one budget per endpoint family, obeying the server too.

This module owns how fast this process calls Alloy. Alloy limits each API key per 60 s window and per
endpoint family — `query` (AQS queries), `read` (GET item) and `write` (POST/PUT/DELETE item) — and
answers 429 beyond that. Each family gets a `TokenBucket`:

* The bucket is sized so that **no window of `window` seconds ever holds more than `per_window`
  acquisitions**, whatever the timing: it holds `burst` tokens and refills at
  `(per_window - burst) / window` per second, so any window sees at most `burst` (saved up) plus
  `per_window - burst` (refilled) calls. A plain bucket of capacity `per_window` refilling at
  `per_window / window` would allow twice the budget in the window after a quiet spell.
* It also obeys the server. After every response the client feeds `X-Rate-Limit-Remaining` and
  `X-Rate-Limit-Reset` to `observe()`: the bucket never holds more tokens than the server says
  remain, and when the server says none remain, every caller of that family waits until the reset
  time. A 429's `Retry-After` blocks the family the same way (`block_for`). This matters because
  other processes may share the API key.

`acquire()` is safe under any number of concurrent coroutines: waiters are served one at a time, in
arrival order, by an `asyncio.Lock`; it returns the seconds the caller waited.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Literal, Protocol, get_args

from alloysync.alloy.models import parse_alloy_datetime
from alloysync.settings import Settings

__all__ = [
    "FAMILIES",
    "Family",
    "RateLimits",
    "TokenBucket",
    "parse_rate_limit_headers",
    "parse_retry_after",
]

Family = Literal["query", "read", "write"]
FAMILIES: tuple[Family, ...] = get_args(Family)

ALLOY_WINDOW_SECONDS = 60.0
# A server-dictated wait longer than this is treated as a clock problem and capped.
MAX_SERVER_WAIT_SECONDS = 120.0


class TokenBucket:
    """At most `per_window` acquisitions in any `window` seconds, and never against the server's word."""

    def __init__(
        self,
        per_window: int,
        window: float = ALLOY_WINDOW_SECONDS,
        *,
        burst: int | None = None,
        max_server_wait: float = MAX_SERVER_WAIT_SECONDS,
    ) -> None:
        if per_window < 1:
            raise ValueError("per_window must be at least 1")
        if window <= 0:
            raise ValueError("window must be positive")
        self.per_window = per_window
        self.window = window
        # A tenth of the budget may go out at once; the rest is paced evenly over the window.
        self.burst = max(1, min(burst if burst is not None else per_window // 10, per_window))
        refill = per_window - self.burst if per_window > self.burst else per_window
        self.rate = refill / window  # tokens per second
        self.max_server_wait = max_server_wait
        self._tokens = float(self.burst)
        self._updated = time.monotonic()
        self._blocked_until = 0.0
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"TokenBucket(per_window={self.per_window}, window={self.window:g}, burst={self.burst})"

    @property
    def tokens(self) -> float:
        """Tokens available right now (for tests and diagnostics)."""
        self._refill(time.monotonic())
        return self._tokens

    @property
    def blocked_for(self) -> float:
        """Seconds until the server allows this family again (0 when not blocked)."""
        return max(0.0, self._blocked_until - time.monotonic())

    async def acquire(self) -> float:
        """Wait for a token (and for any server block to pass); return the seconds waited."""
        started = time.monotonic()
        async with self._lock:
            while True:
                now = time.monotonic()
                self._refill(now)
                delay = self._blocked_until - now
                if delay <= 0:
                    if self._tokens >= 1:
                        self._tokens -= 1
                        break
                    delay = (1 - self._tokens) / self.rate
                await asyncio.sleep(delay)
        return time.monotonic() - started

    def observe(self, remaining: int | None, reset_at: datetime | None) -> None:
        """Take in the server's view after a response: calls remaining in its window, and its reset time."""
        if remaining is None:
            return
        now = time.monotonic()
        self._refill(now)
        self._tokens = min(self._tokens, float(max(remaining, 0)))
        if remaining <= 0 and reset_at is not None:
            self.block_for((reset_at - datetime.now(UTC)).total_seconds())

    def block_for(self, seconds: float) -> None:
        """Make every caller of this family wait `seconds` (capped at `max_server_wait`) from now."""
        if seconds <= 0:
            return
        until = time.monotonic() + min(seconds, self.max_server_wait)
        self._blocked_until = max(self._blocked_until, until)

    def _refill(self, now: float) -> None:
        elapsed = now - self._updated
        if elapsed > 0:
            self._tokens = min(float(self.burst), self._tokens + elapsed * self.rate)
            self._updated = now


class SharedLimiter(Protocol):
    """A budget shared with other processes using the same API key (see `state/budgets.py`)."""

    async def acquire(self, family: str) -> float: ...


class RateLimits:
    """The three family buckets of one client, and optionally the deployment's shared budget.

    A call waits for its family's bucket (this process's pace, and the server's word), then for a
    slot of the shared budget when there is one (every process's calls together)."""

    def __init__(
        self,
        query: TokenBucket,
        read: TokenBucket,
        write: TokenBucket,
        shared: SharedLimiter | None = None,
    ) -> None:
        self._buckets: dict[Family, TokenBucket] = {"query": query, "read": read, "write": write}
        self.shared = shared

    @classmethod
    def per_minute(
        cls,
        query: int = 120,
        read: int = 300,
        write: int = 150,
        shared: SharedLimiter | None = None,
        window: float = ALLOY_WINDOW_SECONDS,
    ) -> RateLimits:
        """Budgets per 60 s window (or `window`); the defaults are Alloy's published limits."""
        return cls(TokenBucket(query, window), TokenBucket(read, window), TokenBucket(write, window), shared)

    @classmethod
    def from_settings(cls, settings: Settings, shared: SharedLimiter | None = None) -> RateLimits:
        """Budgets from `ALLOYSYNC_ALLOY_{QUERY,READ,WRITE}_PER_MINUTE`, with `shared` on top."""
        return cls.per_minute(
            settings.alloy_query_per_minute,
            settings.alloy_read_per_minute,
            settings.alloy_write_per_minute,
            shared,
            settings.alloy_rate_window,
        )

    def __getitem__(self, family: Family) -> TokenBucket:
        return self._buckets[family]

    def __repr__(self) -> str:
        return f"RateLimits({self._buckets!r})"

    async def acquire(self, family: Family) -> float:
        """Wait for `family`'s budget (and the shared one); return the seconds waited."""
        waited = await self._buckets[family].acquire()
        if self.shared is not None:
            waited += await self.shared.acquire(family)
        return waited

    def observe_headers(self, family: Family, headers: Mapping[str, str]) -> None:
        """Feed a response's rate-limit headers to `family`'s bucket."""
        remaining, reset_at = parse_rate_limit_headers(headers)
        self._buckets[family].observe(remaining, reset_at)

    def block_for(self, family: Family, seconds: float) -> None:
        """Make callers of `family` wait `seconds` (after a 429)."""
        self._buckets[family].block_for(seconds)


def parse_rate_limit_headers(headers: Mapping[str, str]) -> tuple[int | None, datetime | None]:
    """`(X-Rate-Limit-Remaining, X-Rate-Limit-Reset)` from response headers; None for absent or garbled.

    The reset is an ISO time; a bare number is read as Unix seconds (or milliseconds when huge).
    """
    lowered = {key.lower(): value for key, value in headers.items()}
    remaining: int | None = None
    raw_remaining = lowered.get("x-rate-limit-remaining")
    if raw_remaining is not None:
        try:
            remaining = int(float(raw_remaining.strip()))
        except (ValueError, OverflowError):
            remaining = None
    reset_at: datetime | None = None
    raw_reset = lowered.get("x-rate-limit-reset")
    if raw_reset is not None:
        reset_at = _parse_reset(raw_reset.strip())
    return remaining, reset_at


def _parse_reset(text: str) -> datetime | None:
    try:
        number = float(text)
    except ValueError:
        try:
            return parse_alloy_datetime(text)
        except ValueError:
            return None
    if number > 1e11:  # milliseconds since the epoch
        number /= 1000
    try:
        return datetime.fromtimestamp(number, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or an HTTP date); None if unusable."""
    if value is None:
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - datetime.now(UTC)).total_seconds())

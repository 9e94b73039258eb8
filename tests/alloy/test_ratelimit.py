"""The client-side limiter: budgets hold under concurrency, and the server's headers are obeyed."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest

from alloysync.alloy.ratelimit import (
    RateLimits,
    TokenBucket,
    parse_rate_limit_headers,
    parse_retry_after,
)
from alloysync.settings import Settings


def _max_in_any_window(times: list[float], window: float) -> int:
    times = sorted(times)
    best = 0
    start = 0
    for end, moment in enumerate(times):
        while moment - times[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


async def test_budget_holds_under_concurrency() -> None:
    bucket = TokenBucket(10, window=0.5)
    granted: list[float] = []

    async def caller() -> float:
        waited = await bucket.acquire()
        granted.append(time.monotonic())
        return waited

    started = time.monotonic()
    waits = await asyncio.gather(*(caller() for _ in range(40)))

    assert len(granted) == 40
    assert _max_in_any_window(granted, 0.5) <= 10
    # 40 calls at 10 per 0.5 s cannot finish in less than ~1.5 s, nor should they take much longer.
    elapsed = time.monotonic() - started
    assert 1.4 <= elapsed <= 4.0
    assert max(waits) == pytest.approx(elapsed, abs=0.1)
    assert min(waits) < 0.01  # the burst goes out at once


async def test_after_a_quiet_spell_the_window_still_holds() -> None:
    bucket = TokenBucket(6, window=0.3, burst=3)
    await asyncio.sleep(0.4)  # a full bucket must not allow burst + whole budget in the next window
    granted: list[float] = []

    async def caller() -> None:
        await bucket.acquire()
        granted.append(time.monotonic())

    await asyncio.gather(*(caller() for _ in range(12)))
    assert _max_in_any_window(granted, 0.3) <= 6


async def test_server_zero_remaining_blocks_until_reset() -> None:
    bucket = TokenBucket(1000, window=60)
    reset = datetime.now(UTC) + timedelta(seconds=0.4)

    bucket.observe(0, reset)
    assert bucket.blocked_for > 0.3

    waited = await asyncio.gather(bucket.acquire(), bucket.acquire())
    assert min(waited) >= 0.3  # every caller of the family waits, not just the one that saw it
    assert bucket.blocked_for == 0


async def test_server_remaining_caps_tokens() -> None:
    bucket = TokenBucket(1000, window=60)  # burst of 100
    bucket.observe(2, datetime.now(UTC) + timedelta(seconds=30))
    assert bucket.tokens < 2.1  # (plus what refilled since)
    bucket.observe(None, None)  # no headers: nothing changes
    assert bucket.blocked_for == 0


async def test_block_for_is_capped() -> None:
    bucket = TokenBucket(10, window=1, max_server_wait=0.2)
    bucket.block_for(3600)
    assert bucket.blocked_for <= 0.2
    bucket.block_for(-5)
    assert bucket.blocked_for <= 0.2


async def test_families_are_independent_and_headers_are_case_insensitive() -> None:
    limits = RateLimits(TokenBucket(5, 1), TokenBucket(5, 1), TokenBucket(5, 1))
    reset = (datetime.now(UTC) + timedelta(seconds=5)).isoformat()
    limits.observe_headers("write", {"x-rate-limit-remaining": "0", "X-RATE-LIMIT-RESET": reset})

    assert limits["write"].blocked_for > 4
    assert limits["read"].blocked_for == 0
    assert await limits.acquire("read") < 0.05


def test_from_settings_uses_the_configured_budgets() -> None:
    settings = Settings(alloy_query_per_minute=12, alloy_read_per_minute=30, alloy_write_per_minute=15)
    limits = RateLimits.from_settings(settings)
    assert (limits["query"].per_window, limits["read"].per_window, limits["write"].per_window) == (12, 30, 15)
    assert limits["write"].window == 60
    default = RateLimits.per_minute()
    assert (default["query"].per_window, default["read"].per_window, default["write"].per_window) == (
        120,
        300,
        150,
    )


def test_bucket_arithmetic() -> None:
    bucket = TokenBucket(150)
    assert bucket.burst == 15
    assert bucket.rate == pytest.approx(135 / 60)
    single = TokenBucket(1, window=2)
    assert single.burst == 1 and single.rate == pytest.approx(0.5)
    with pytest.raises(ValueError, match="per_window"):
        TokenBucket(0)


@pytest.mark.parametrize(
    ("headers", "remaining", "reset"),
    [
        (
            {"X-Rate-Limit-Remaining": "7", "X-Rate-Limit-Reset": "2024-07-02T00:01:00.000Z"},
            7,
            datetime(2024, 7, 2, 0, 1, tzinfo=UTC),
        ),
        ({"X-Rate-Limit-Reset": "1719878460"}, None, datetime(2024, 7, 2, 0, 1, tzinfo=UTC)),
        ({"X-Rate-Limit-Reset": "1719878460000"}, None, datetime(2024, 7, 2, 0, 1, tzinfo=UTC)),
        ({"X-Rate-Limit-Remaining": "lots", "X-Rate-Limit-Reset": "soon"}, None, None),
        ({"X-Rate-Limit-Remaining": "inf", "X-Rate-Limit-Reset": "nan"}, None, None),
        ({}, None, None),
    ],
)
def test_parse_rate_limit_headers(
    headers: dict[str, str], remaining: int | None, reset: datetime | None
) -> None:
    assert parse_rate_limit_headers(headers) == (remaining, reset)


def test_parse_retry_after() -> None:
    assert parse_retry_after(None) is None
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("-1") == 0.0
    assert parse_retry_after("whenever") is None
    later = (datetime.now(UTC) + timedelta(seconds=30)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    retry = parse_retry_after(later)
    assert retry is not None and 25 < retry <= 30

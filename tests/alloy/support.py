"""Helpers shared by the Alloy client tests."""

from __future__ import annotations

from alloysync.alloy.ratelimit import RateLimits, TokenBucket


def generous_limits() -> RateLimits:
    """Client budgets far above the emulator's, for tests that are not about client-side pacing."""
    return RateLimits(TokenBucket(100_000), TokenBucket(100_000), TokenBucket(100_000))

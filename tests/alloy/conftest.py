"""Fixtures for the Alloy client tests: a client pointed at the per-test emulator."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from alloysync.alloy.client import AlloyClient
from tests.alloy.support import generous_limits
from tests.support.emulator import EmulatorProcess


@pytest.fixture
async def alloy(emulator: EmulatorProcess) -> AsyncIterator[AlloyClient]:
    """A client for the emulator with fast backoff (tests should not sleep for real-world delays)."""
    async with AlloyClient(
        emulator.url,
        emulator.token,
        timeout=5.0,
        max_retries=5,
        limits=generous_limits(),
        backoff_base=0.02,
        backoff_max=0.2,
    ) as client:
        yield client

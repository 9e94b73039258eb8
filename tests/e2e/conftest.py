"""End-to-end fixtures: a `System` of real alloysync processes per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from alloysync.local.redis_server import RedisServer
from tests.support.emulator import EmulatorProcess
from tests.support.system import System, system_fixture


@pytest.fixture
def system(tmp_path: Path, redis_server: RedisServer, emulator: EmulatorProcess) -> Iterator[System]:
    yield from system_fixture(tmp_path, redis_server, emulator)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.slow)

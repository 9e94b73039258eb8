"""Shared fixtures: a private redis-server and an `alloysync emulator` subprocess, each on a free port."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from alloysync.local.redis_server import RedisServer
from alloysync.settings import Settings
from tests.support.emulator import EmulatorProcess


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of the test's own (AOF on), stoppable and restartable by the test."""
    server = RedisServer(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def settings(redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings for the test's own Redis, with the test tasks registered."""
    monkeypatch.setenv("ALLOYSYNC_REDIS_URL", redis_server.url)
    monkeypatch.setenv("ALLOYSYNC_TASK_MODULES", "tests.support.tasks")
    return Settings()


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[EmulatorProcess]:
    """An emulator with no data and rate limits on; token `test-token`."""
    process = EmulatorProcess(tmp_path / "emulator")
    process.start()
    yield process
    process.stop()

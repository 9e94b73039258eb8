"""Fixtures for the built-in tasks: settings for the test's Redis and emulator with the recipe
designs, and run contexts the tasks are called with directly (as the worker calls them)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import pytest
from pydantic import SecretStr

from alloysync.alloy.client import AlloyClient
from alloysync.local.redis_server import RedisServer
from alloysync.model.context import RunContext
from alloysync.settings import Settings
from tests.support.emulator import EmulatorProcess
from tests.support.recipes import DEFECTS, HIGHWAY_JOBS, define_recipe_designs

ContextFactory = Callable[..., AbstractAsyncContextManager[RunContext]]


def make_settings(redis_server: RedisServer, emulator: EmulatorProcess | None, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "redis_url": redis_server.url,
        "alloy_url": emulator.url if emulator is not None else "http://127.0.0.1:9",
        "alloy_token": SecretStr(emulator.token if emulator is not None else "none"),
        "alloy_max_retries": 1,
        "builtin_alloy_designs": [DEFECTS, HIGHWAY_JOBS],
        "builtin_mail_allow": ["council.example"],
        "smtp_host": "127.0.0.1",
        **overrides,
    }
    return Settings(**values)


@pytest.fixture
def recipe_emulator(emulator: EmulatorProcess) -> EmulatorProcess:
    define_recipe_designs(emulator)
    return emulator


@pytest.fixture
def builtin_settings(redis_server: RedisServer, recipe_emulator: EmulatorProcess) -> Settings:
    return make_settings(redis_server, recipe_emulator)


@pytest.fixture
def context() -> ContextFactory:
    """`async with context(settings, run_id=..., step=...) as ctx`: a run's context with a live
    Alloy client; lines logged through ctx.log go to the `tests.builtins` logger."""

    @asynccontextmanager
    async def make(
        settings: Settings, run_id: str = "now:job-1:v1", step: int = 0, item_id: str = "job-1"
    ) -> AsyncIterator[RunContext]:
        alloy = AlloyClient.from_settings(settings)
        ctx = RunContext(
            run_id=run_id,
            item_id=item_id,
            job_title="Test job",
            kind="now",
            scheduled_at=None,
            attempt=1,
            step=step,
            log=logging.LoggerAdapter(logging.getLogger("tests.builtins"), {"run_id": run_id}),
            alloy=alloy,
            settings=settings,
        )
        try:
            yield ctx
        finally:
            await alloy.close()

    return make

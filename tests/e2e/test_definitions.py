"""A definition runs once per version; alloysync's own write-back never triggers a run; RunRequested
runs exactly once more and is reset — against the emulator's real-Alloy default (items carry no
lastEditDate) and, once, with `--item-dates` (nothing may depend on them either way)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from alloysync.local.redis_server import RedisServer
from tests.support.emulator import EmulatorProcess
from tests.support.system import System, system_fixture

QUIET = 3.0  # six poll intervals


@pytest.fixture
def dated_system(tmp_path: Path, redis_server: RedisServer) -> Iterator[System]:
    """A system whose emulator adds lastEditDate/createdDate to items (`--item-dates`)."""
    emulator = EmulatorProcess(tmp_path / "emulator", item_dates=True)
    emulator.start()
    try:
        yield from system_fixture(tmp_path, redis_server, emulator)
    finally:
        emulator.stop()


def test_once_per_definition_own_writes_ignored_and_run_requested_once(system: System) -> None:
    assert "lastEditDate" not in system.emulator.get_item(
        system.create_job("probe", "tests.record", enabled=False)
    )
    once_per_definition_own_writes_ignored_and_run_requested_once(system)


def test_the_same_with_item_dates(dated_system: System) -> None:
    assert "lastEditDate" in dated_system.emulator.get_item(
        dated_system.create_job("probe", "tests.record", enabled=False)
    )
    once_per_definition_own_writes_ignored_and_run_requested_once(dated_system)


def once_per_definition_own_writes_ignored_and_run_requested_once(system: System) -> None:
    system.start_serve()
    system.start_worker()
    item = system.create_job("counter", "tests.record", params={"label": "v1"})
    system.wait_for_status(item, "Succeeded")
    time.sleep(QUIET)  # our Status/Message/Result/RunCount writes were polled back: no new run
    assert len(system.executions()) == 1

    system.edit_job(item, title="counter (renamed)")  # not part of the definition
    time.sleep(QUIET)
    assert len(system.executions()) == 1

    system.edit_job(item, params={"label": "v2"})  # a definition change
    system.wait_until(lambda: system.job(item)["run_count"] == 2, 20, "the changed definition to run")
    assert [entry["label"] for entry in system.executions()] == ["v1", "v2"]

    system.edit_job(item, run_requested=True)
    system.wait_until(
        lambda: system.job(item)["run_count"] == 3 and system.job(item)["run_requested"] is False,
        20,
        "the requested run to finish and RunRequested to be reset",
    )
    time.sleep(QUIET)
    assert [entry["label"] for entry in system.executions()] == ["v1", "v2", "v2"]
    assert system.job(item)["status"] == "Succeeded"

    system.edit_job(item, run_requested=True)  # a second request is a new request
    system.wait_until(lambda: system.job(item)["run_count"] == 4, 20, "the second request to run")
    time.sleep(QUIET)
    assert len(system.executions()) == 4


def test_disabled_job_does_not_run_until_enabled(system: System) -> None:
    system.start_serve()
    system.start_worker()
    item = system.create_job("paused", "tests.record", params={"label": "p"}, enabled=False)
    system.wait_until(lambda: "Paused" in (system.job(item)["message"] or ""), 20, "the paused message")
    system.edit_job(item, run_requested=True)
    system.wait_until(lambda: system.job(item)["run_requested"] is False, 20, "the request to be reset")
    assert "RunRequested ignored: the job is disabled" in system.job(item)["message"]
    assert system.executions() == []
    system.edit_job(item, enabled=True)
    system.wait_for_status(item, "Succeeded")
    assert len(system.executions()) == 1

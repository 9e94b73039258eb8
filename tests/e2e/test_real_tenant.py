"""Day one on a real tenant: from an Alloy with no jobs design (`--seed empty`), `alloysync setup`
creates it and prints the generated codes, `alloysync check` passes with them, and serve and worker
configured with exactly those lines run a job created under the generated codes; RunRequested
reruns it exactly once and is reset. Items carry no lastEditDate, as from real Alloy."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from alloysync.local.redis_server import RedisServer
from tests.support.emulator import EmulatorProcess
from tests.support.system import REPO, system_fixture

GENERATED = r"_[0-9a-f]{24}$"


@pytest.fixture
def empty_tenant(tmp_path: Path) -> Iterator[EmulatorProcess]:
    emulator = EmulatorProcess(tmp_path / "emulator", seed="empty")
    emulator.start()
    yield emulator
    emulator.stop()


def alloysync(
    emulator: EmulatorProcess, redis_server: RedisServer, workdir: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("ALLOYSYNC_")  # only what the test gives, as on a fresh host
    }
    env |= {
        "ALLOYSYNC_ALLOY_URL": emulator.url,
        "ALLOYSYNC_ALLOY_TOKEN": emulator.token,
        "ALLOYSYNC_REDIS_URL": redis_server.url,
        "ALLOYSYNC_TASK_MODULES": "tests.support.tasks",
        "PYTHONPATH": str(REPO),
    }
    return subprocess.run(
        [sys.executable, "-m", "alloysync", *args],
        cwd=workdir,  # the env file written there is read as `.env`
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def read_env_file(path: Path) -> dict[str, str]:
    lines = [line for line in path.read_text().splitlines() if line and not line.startswith("#")]
    return dict(line.split("=", 1) for line in lines)


def test_setup_check_serve_and_worker_on_a_tenant_without_a_jobs_design(
    tmp_path: Path, redis_server: RedisServer, empty_tenant: EmulatorProcess
) -> None:
    workdir = tmp_path / "host"
    workdir.mkdir()
    setup = alloysync(empty_tenant, redis_server, workdir, "setup", "--env-file", ".env")
    assert setup.returncode == 0, setup.stderr
    settings = read_env_file(workdir / ".env")
    assert empty_tenant.token not in setup.stdout + setup.stderr + (workdir / ".env").read_text()
    design = settings["ALLOYSYNC_JOBS_DESIGN"]
    assert design.startswith("designs_alloysyncJobs_") and re.search(GENERATED, design)
    codes = {key.removeprefix("ALLOYSYNC_ATTRIBUTES__").lower(): value for key, value in settings.items()}
    assert codes["title"] == "attributes_itemsTitle"  # Alloy's interface attribute, not a new one
    assert codes["status"].startswith("attributes_alloysyncJobsStatus_") and re.search(
        GENERATED, codes["status"]
    )

    check = alloysync(empty_tenant, redis_server, workdir, "check")
    assert check.returncode == 0, check.stdout + check.stderr
    again = alloysync(empty_tenant, redis_server, workdir, "setup")
    assert again.returncode == 0 and "ALLOYSYNC_JOBS_DESIGN=" + design in again.stdout

    with contextlib.contextmanager(system_fixture)(
        tmp_path, redis_server, empty_tenant, **settings
    ) as system:
        system.start_serve()
        system.start_worker()
        item_id: str = empty_tenant.create_item(
            design,
            {
                codes["title"]: "first job",
                codes["enabled"]: True,
                codes["task"]: "tests.record",
                codes["params"]: {"label": "day-one"},
            },
        )["itemId"]
        assert "lastEditDate" not in empty_tenant.get_item(item_id)

        def values() -> dict[str, Any]:
            attributes = empty_tenant.attributes(item_id)
            return {name: attributes.get(code) for name, code in codes.items()}

        system.wait_until(lambda: values()["status"] == "Succeeded", 30, "the job to succeed")
        assert values()["run_count"] == 1
        empty_tenant.edit_item(item_id, {codes["run_requested"]: True})
        system.wait_until(
            lambda: values()["run_count"] == 2 and values()["run_requested"] is False,
            30,
            "the requested run to finish and RunRequested to be reset",
        )
        time.sleep(3)  # six poll intervals: the reset and our own writes start nothing more
        assert [entry["label"] for entry in system.executions()] == ["day-one", "day-one"]
        assert values()["status"] == "Succeeded"

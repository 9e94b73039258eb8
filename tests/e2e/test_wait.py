"""wait.until on real processes: the run sleeps without holding a worker thread, wakes at its time
and goes on; a cancel while it sleeps ends it at once."""

from __future__ import annotations

import time
from typing import Any

from alloysync.model.times import parse_alloy_datetime
from tests.support.system import System


def runs(system: System, item: str) -> list[dict[str, Any]]:
    runs_: list[dict[str, Any]] = system.api(f"/api/jobs/{item}")["runs"]
    return runs_


def test_a_sleeping_step_holds_no_worker_and_wakes_at_its_time(system: System) -> None:
    system.start_serve()
    system.start_worker(ALLOYSYNC_WORKER_THREADS="1")  # one thread: a held thread would block the rest
    params = {"steps": [{"label": "before"}, {"delay": "6s"}, None]}
    sleeper = system.create_job("sleeps", "tests.record | wait.until | tests.echo", params=params)
    job = system.wait_until(
        lambda: (j := system.job(sleeper))["message"] and "sleeps until" in j["message"] and j,
        30,
        "the run to sleep",
    )
    assert job["status"] == "Running" and "step 2/3 (wait.until) sleeps until" in job["message"]
    # While it sleeps, the single worker thread runs another job at once.
    other = system.create_job("meanwhile", "tests.record", params={"label": "meanwhile"})
    other_job = system.wait_for_status(other, "Succeeded", timeout=20)
    assert system.job(sleeper)["status"] == "Running"
    done = system.wait_for_status(sleeper, "Succeeded", timeout=40)
    assert done["result"] == {"summary": "recorded before", "label": "before"}
    assert parse_alloy_datetime(other_job["last_run_finished"]) < parse_alloy_datetime(
        done["last_run_finished"]
    )
    elapsed = parse_alloy_datetime(done["last_run_finished"]) - parse_alloy_datetime(done["last_run_started"])
    assert elapsed.total_seconds() >= 6
    assert [entry["label"] for entry in system.executions()] == ["before", "meanwhile"]
    (run,) = runs(system, sleeper)
    assert run["state"] == "succeeded" and run["attempts"] == 1  # waking is no retry


def test_a_cancel_ends_a_sleeping_run_at_once(system: System) -> None:
    system.start_serve()
    system.start_worker()
    params = {"steps": [{"label": "first"}, {"delay": "1h"}, None]}
    item = system.create_job("sleeps long", "tests.record | wait.until | tests.echo", params=params)
    system.wait_until(lambda: "sleeps until" in (system.job(item)["message"] or ""), 30, "the run to sleep")
    asked = time.monotonic()
    system.edit_job(item, cancel_requested=True)
    system.wait_for_status(item, "Cancelled", timeout=20)
    assert time.monotonic() - asked < 10
    assert [run["state"] for run in runs(system, item)] == ["cancelled"]

"""A worker killed with SIGKILL mid-run: the run is redelivered and finished by another worker within
90 s, with exactly one Succeeded and RunCount 1. Uses the default heartbeat settings."""

from __future__ import annotations

import time

from tests.support.system import System


def test_killed_worker_run_is_finished_by_another(system: System) -> None:
    system.start_serve()
    doomed = system.start_worker("worker-a")
    item = system.create_job("slow", "tests.record", params={"label": "slow", "sleep": 4})
    system.wait_until(lambda: system.executions("slow"), 30, "the run to start on worker-a")
    # The record shows the run in progress (within the reporter's coalescing window, 1 s).
    system.wait_until(lambda: system.job(item)["status"] in ("Queued", "Running"), 5, "Queued or Running")
    killed_at = time.monotonic()
    doomed.kill()  # SIGKILL to the whole worker pool, mid-task
    system.start_worker("worker-b")

    job = system.wait_for_status(item, "Succeeded", timeout=90)
    recovered_in = time.monotonic() - killed_at
    assert recovered_in < 90, recovered_in
    print(f"run finished {recovered_in:.1f} s after the worker was killed")

    executions = system.executions("slow")
    assert len(executions) == 2  # at-least-once: the step ran again on worker-b
    assert executions[0]["pid"] != executions[1]["pid"]
    time.sleep(2)
    assert system.job(item)["run_count"] == 1 == job["run_count"]
    runs = system.api(f"/api/jobs/{item}")["runs"]
    assert [run["state"] for run in runs] == ["succeeded"]
    assert runs[0]["attempts"] == 2

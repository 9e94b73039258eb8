"""Alloy down for 30 s while runs finish: every status lands after recovery, none lost or doubled."""

from __future__ import annotations

import time

from tests.support.system import System


def test_statuses_land_after_alloy_recovers(system: System) -> None:
    system.start_serve()
    system.start_worker(ALLOYSYNC_WORKER_THREADS="8")
    items = [
        system.create_job(f"job {n}", "tests.record", params={"label": f"o{n}", "sleep": 3}) for n in range(8)
    ]
    system.wait_until(
        lambda: all(system.job(item)["status"] in ("Queued", "Running") for item in items),
        30,
        "every job to be picked up",
    )
    system.emulator.set_faults(down=True, down_mode="503")
    went_down = time.monotonic()
    system.wait_until(lambda: len(system.executions()) == 8, 25, "the runs to execute while Alloy is down")
    time.sleep(max(0.0, 15 - (time.monotonic() - went_down)))
    system.emulator.set_faults(down_mode="reset")  # the second half: connections dropped
    time.sleep(max(0.0, 30 - (time.monotonic() - went_down)))
    depth = system.redis.xlen("alloysync:outbox")
    assert depth >= 8, "the outcomes wait in the outbox while Alloy is down"
    system.emulator.set_faults(down=False)

    for item in items:
        job = system.wait_for_status(item, "Succeeded", timeout=60)
        assert job["run_count"] == 1
        assert job["message"].startswith("Succeeded in ")
    system.wait_until(lambda: system.redis.xlen("alloysync:outbox") == 0, 30, "the outbox to drain")
    assert len(system.executions()) == 8

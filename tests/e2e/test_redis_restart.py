"""Redis restarted under a running system (with its append-only file): runs in flight finish, every
status lands once, and the system carries on."""

from __future__ import annotations

import time

from tests.support.system import System


def test_runs_survive_a_redis_restart(system: System) -> None:
    system.start_serve()
    system.start_worker()
    system.start_scheduler()
    items = [
        system.create_job(f"job {n}", "tests.record", params={"label": f"k{n}", "sleep": 2}) for n in range(6)
    ]
    system.wait_until(lambda: len(system.executions()) >= 2, 30, "runs to be in flight")
    system.redis_server.stop()
    time.sleep(3)  # Redis is down: workers, poller, reporter and scheduler all lose it
    system.redis_server.start()
    for item in items:
        job = system.wait_for_status(item, "Succeeded", timeout=90)
        assert job["run_count"] == 1
    labels = [entry["label"] for entry in system.executions()]
    assert sorted(set(labels)) == sorted(f"k{n}" for n in range(6))
    assert all(labels.count(label) <= 2 for label in set(labels))  # at-least-once, never more than a re-run
    after = system.create_job("after the restart", "tests.record", params={"label": "after"})
    assert system.wait_for_status(after, "Succeeded", timeout=30)["run_count"] == 1
    for name, child in system.children.items():
        assert child.alive, f"{name} died when Redis restarted\n{system.logs()}"


def test_a_redis_outage_longer_than_the_heartbeat_timeout_runs_nothing_twice(system: System) -> None:
    # worker-a heartbeats every 4 s, the idle worker-b every 0.5 s: when Redis returns, worker-b
    # looks at the heartbeats long before worker-a has renewed its own.
    system.start_serve()
    system.start_worker(
        "worker-a", ALLOYSYNC_WORKER_HEARTBEAT_TIMEOUT="5", ALLOYSYNC_WORKER_MAINTENANCE_INTERVAL="4"
    )
    item = system.create_job("long", "tests.record", params={"label": "long", "sleep": 12})
    system.wait_until(lambda: system.executions("long"), 30, "the run to start on worker-a")
    # idle, ready to pick up anything requeued
    system.start_worker(
        "worker-b", ALLOYSYNC_WORKER_HEARTBEAT_TIMEOUT="5", ALLOYSYNC_WORKER_MAINTENANCE_INTERVAL="0.5"
    )
    system.redis_server.stop()
    time.sleep(8)  # longer than the heartbeat timeout: every heartbeat is old when Redis returns
    system.redis_server.start()
    job = system.wait_for_status(item, "Succeeded", timeout=60)
    time.sleep(3)
    assert len(system.executions("long")) == 1, system.executions("long")  # worker-a was never declared dead
    assert job["run_count"] == 1

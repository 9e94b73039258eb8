"""Two serve replicas: each run is enqueued once; when the active one dies the other takes over."""

from __future__ import annotations

import time

from tests.support.system import System


def test_two_replicas_enqueue_each_run_once_and_fail_over(system: System) -> None:
    first = system.start_serve("serve-1")
    system.start_serve("serve-2")
    system.start_worker()
    items = [system.create_job(f"job {n}", "tests.record", params={"label": f"r{n}"}) for n in range(20)]
    for item in items:
        assert system.wait_for_status(item, "Succeeded")["run_count"] == 1
    time.sleep(2)
    labels = sorted(entry["label"] for entry in system.executions())
    assert labels == sorted(f"r{n}" for n in range(20))
    assert len(system.redis.keys("alloysync:run:now:*")) == 20

    pollers = {name: system.api("/healthz", name)["poller"] for name in ("serve-1", "serve-2")}
    assert sorted(pollers.values()) == [False, True]
    leader = "serve-1" if pollers["serve-1"] else "serve-2"
    standby = "serve-2" if leader == "serve-1" else "serve-1"
    killed_at = time.monotonic()
    system.children[leader].kill()
    system.wait_until(lambda: system.api("/healthz", standby)["poller"], 20, "the standby to take over")
    took_over_in = time.monotonic() - killed_at
    assert took_over_in < 15, took_over_in
    print(f"standby took over {took_over_in:.1f} s after the leader was killed")

    late = system.create_job("after failover", "tests.record", params={"label": "late"})
    assert system.wait_for_status(late, "Succeeded")["run_count"] == 1
    assert len(system.executions("late")) == 1
    del first

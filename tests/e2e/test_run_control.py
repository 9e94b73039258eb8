"""Run control from the record, against real serve, worker and scheduler processes: Overlap (skip,
replace, queue-one), concurrency keys (also across a SIGKILLed worker), CancelRequested (a running
step and a queued pipeline), RunContext, RunParams and Backfill.

Cron fires come from a real `SchedulerCore` on a simulated clock (tests/support/sim_scheduler.py,
30-60 simulated seconds per real second), so a minute-by-minute schedule takes seconds."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import time
import urllib.error
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.support.system import CODES, DESIGN, REPO, System

MINUTE = timedelta(minutes=1)


def sim_scheduler(system: System, speed: float, minutes: float) -> subprocess.Popen[bytes]:
    """A scheduler on a simulated clock starting now, `speed` times real time, for `minutes`."""
    start = datetime.now(UTC)
    end = start + timedelta(minutes=minutes)
    command = [
        sys.executable, "-m", "tests.support.sim_scheduler", "--name", "sim", "--start", start.isoformat(),
        "--epoch", str(time.time()), "--speed", str(speed), "--end", end.isoformat(),
    ]  # fmt: skip
    log = (system.workdir / "logs" / "sim-scheduler.log").open("ab")
    return subprocess.Popen(command, env=system.env(), cwd=REPO, stdout=log, stderr=subprocess.STDOUT)


def intervals(system: System, kind: str = "slow") -> list[tuple[float, float, str]]:
    """(start, end, run id) of every execution of tests.slow (end = when it ended or stopped)."""
    starts: dict[str, float] = {}
    ends: dict[str, float] = {}
    for entry in system.executions():
        if entry["task"] == f"{kind}-start":
            starts[entry["run_id"]] = entry["at"]
        elif entry["task"] in (f"{kind}-end", f"{kind}-stopped"):
            ends[entry["run_id"]] = entry["at"]
    return sorted((at, ends.get(run_id, float("inf")), run_id) for run_id, at in starts.items())


def assert_no_overlap(spans: list[tuple[float, float, str]]) -> None:
    for (_start, end, run_id), (next_start, _end, next_run) in itertools.pairwise(spans):
        assert next_start >= end, f"{next_run} started before {run_id} ended"


def runs(system: System, item: str) -> list[dict[str, Any]]:
    """The job's recent runs, newest first ([] while serve has not seen the job yet)."""
    try:
        found: list[dict[str, Any]] = system.api(f"/api/jobs/{item}")["runs"]
    except urllib.error.HTTPError as error:
        if error.code == 404:
            return []
        raise
    return found


def test_overlap_skip_never_overlaps_and_shows_the_skipped_fires(system: System) -> None:
    system.start_serve()
    system.start_worker()
    item = system.create_job(
        "every minute, slow", "tests.slow", params={"label": "skip", "seconds": 5}, schedule="* * * * *",
        overlap="skip",
    )  # fmt: skip
    system.wait_until(lambda: system.redis.hexists("alloysync:schedules", item), 20, "the schedule")
    scheduler = sim_scheduler(system, speed=30, minutes=6)  # a fire every 2 s, runs of 5 s
    assert scheduler.wait(60) == 0
    system.wait_until(lambda: all(end < float("inf") for _s, end, _r in intervals(system)), 30, "runs to end")
    spans = intervals(system)
    assert len(spans) >= 2
    assert_no_overlap(spans)
    skipped = [run for run in runs(system, item) if run["state"] == "skipped"]
    assert skipped, runs(system, item)
    assert all("Overlap skip" in run["error"] for run in skipped)
    assert system.api(f"/api/jobs/{item}")["overlap"] == "skip"


def test_overlap_replace_cancels_the_running_run_and_the_new_one_succeeds(system: System) -> None:
    system.start_serve()
    system.start_worker()
    item = system.create_job(
        "replace", "tests.slow", params={"label": "replace", "seconds": 6}, schedule="* * * * *",
        overlap="replace",
    )  # fmt: skip
    system.wait_until(lambda: system.redis.hexists("alloysync:schedules", item), 20, "the schedule")
    scheduler = sim_scheduler(system, speed=20, minutes=2.5)  # two or three fires 3 s apart; 6 s runs
    assert scheduler.wait(60) == 0

    def settled() -> list[dict[str, Any]] | None:
        found = runs(system, item)
        ended = len(found) >= 2 and all(r["state"] in ("succeeded", "cancelled") for r in found)
        return found if ended and found[0]["state"] == "succeeded" else None

    newest, *older = system.wait_until(settled, 40, "the replaced runs to end and the newest to succeed")
    assert newest["state"] == "succeeded"
    assert older and all(run["state"] == "cancelled" for run in older), older
    assert all("replaced by a newer run" in run["error"] for run in older)
    kinds = [entry["task"] for entry in system.executions()]
    # Every replaced run that had started was stopped (a run replaced while still queued never
    # starts), at least one was, and only the newest ran to its end.
    started, stopped = kinds.count("slow-start"), kinds.count("slow-stopped")
    assert stopped >= 1 and stopped == started - 1 <= len(older) and kinds.count("slow-end") == 1
    assert_no_overlap(intervals(system))


def test_overlap_queue_one_lets_at_most_one_run_wait(system: System) -> None:
    system.start_serve()
    system.start_worker()
    item = system.create_job(
        "queue one", "tests.slow", params={"label": "q1", "seconds": 3.5}, schedule="* * * * *",
        overlap="queue-one",
    )  # fmt: skip
    system.wait_until(lambda: system.redis.hexists("alloysync:schedules", item), 20, "the schedule")
    scheduler = sim_scheduler(system, speed=60, minutes=7)  # a fire every second, runs of 3.5 s
    most_waiting = 0
    while scheduler.poll() is None:
        most_waiting = max(most_waiting, int(system.redis.llen(f"alloysync:job:{item}:waiting")))
        time.sleep(0.05)
    assert scheduler.returncode == 0
    system.wait_until(
        lambda: not any(r["state"] in ("waiting", "queued", "running") for r in runs(system, item)),
        60,
        "every admitted run to end",
    )
    assert most_waiting == 1
    found = runs(system, item)
    dropped = [run for run in found if run["state"] == "skipped"]
    assert dropped and all("queue-one" in run["error"] for run in dropped)
    assert {run["state"] for run in found} == {"succeeded", "skipped"}
    assert_no_overlap(intervals(system))


def test_jobs_sharing_a_concurrency_key_never_overlap_even_across_a_killed_worker(system: System) -> None:
    system.start_serve()
    doomed = system.start_worker("worker-a")
    items = [
        system.create_job(
            f"keyed {n}", "tests.slow", params={"label": f"k{n}", "seconds": 2}, concurrency_key="shared-api"
        )
        for n in range(4)
    ]
    system.wait_until(lambda: intervals(system), 30, "the first run to start")
    time.sleep(0.5)
    doomed.kill()  # SIGKILL mid-run: its slot must come free again
    system.start_worker("worker-b")
    for item in items:
        system.wait_for_status(item, "Succeeded", timeout=120)
    spans = intervals(system)
    finished = [span for span in spans if span[1] < float("inf")]
    assert len(finished) == 4
    assert_no_overlap(finished)
    assert all(system.job(item)["run_count"] == 1 for item in items)


def test_cancel_interrupts_a_running_step_and_a_queued_pipeline_runs_nothing(system: System) -> None:
    system.start_serve()
    system.start_worker()
    running = system.create_job(
        "long", "tests.stubborn", params={"label": "long", "seconds": 120}, concurrency_key="one-at-a-time"
    )
    system.wait_until(lambda: system.executions("long"), 30, "the long step to start")
    waiting = system.create_job(
        "waits", "tests.record | tests.echo", params={"label": "never"}, concurrency_key="one-at-a-time"
    )
    system.wait_until(lambda: [r for r in runs(system, waiting) if r["state"] == "waiting"], 30, "waiting")

    system.edit_job(waiting, cancel_requested=True)
    job = system.wait_until(
        lambda: (j := system.job(waiting))["status"] == "Cancelled" and j["cancel_requested"] is False and j,
        20,
        "the queued pipeline to be cancelled and the flag reset",
    )
    assert "CancelRequested" in job["message"]
    asked = time.monotonic()
    system.edit_job(running, cancel_requested=True)
    system.wait_until(
        lambda: [r for r in runs(system, running) if r["state"] == "cancelled"], 20, "the step interrupted"
    )
    interrupted_in = time.monotonic() - asked
    assert interrupted_in < 10, interrupted_in
    system.wait_until(lambda: system.job(running)["cancel_requested"] is False, 20, "the flag reset")
    # The flag's reset and the worker's Cancelled are separate events: the second may still be in
    # the reporter's coalescing window (ALLOYSYNC_REPORT_COALESCE, 1 s) when the first is written.
    system.wait_until(lambda: system.job(running)["status"] == "Cancelled", 5, "Status Cancelled")
    time.sleep(3)
    tasks = [entry["task"] for entry in system.executions()]
    assert tasks == ["stubborn-start"]  # the long step never completed; the pipeline never ran
    assert system.job(running)["run_count"] in (0, None)


def test_a_task_sees_its_run_context(system: System) -> None:
    system.start_serve()
    system.start_worker()
    item = system.create_job("context", "tests.context", params={"label": "ctx"})
    system.wait_for_status(item, "Succeeded")
    [entry] = [e for e in system.executions() if e["task"] == "context"]
    assert entry["run_id"] == f"now:{item}:v1" and entry["item_id"] == item
    assert (entry["kind"], entry["scheduled_at"], entry["job_title"]) == ("now", None, "context")
    assert (entry["attempt"], entry["step"]) == (1, 0)
    at = (datetime.now(UTC) + timedelta(seconds=3)).replace(microsecond=0)
    timed = system.create_job("at", "tests.context", params={"label": "at"}, schedule=at.isoformat())
    system.start_scheduler()
    system.wait_for_status(timed, "Succeeded", timeout=30)
    [entry] = [e for e in system.executions() if e["task"] == "context" and e["label"] == "at"]
    assert entry["kind"] == "at" and entry["scheduled_at"] == at.isoformat()


def test_run_params_apply_to_one_run_and_are_cleared(system: System) -> None:
    system.start_serve()
    system.start_worker()
    item = system.create_job("params", "tests.record", params={"label": "base"})
    system.wait_for_status(item, "Succeeded")
    system.edit_job(item, run_params={"label": "override"}, run_requested=True)
    system.wait_until(
        lambda: (j := system.job(item))["run_count"] == 2 and j["run_requested"] is False and j,
        30,
        "the requested run",
    )
    job = system.job(item)
    assert job["run_params"] is None and job["params"] == {"label": "base"}
    assert [entry["label"] for entry in system.executions()] == ["base", "override"]
    system.edit_job(item, run_params={"label": 5, "bogus": True}, run_requested=True)
    system.wait_until(lambda: system.job(item)["run_requested"] is False, 30, "the failed request's reset")
    job = system.job(item)
    assert "RunRequested not run" in job["message"] and "RunParams" in job["message"]
    assert job["run_params"] is None and len(system.executions()) == 2
    assert system.api(f"/api/jobs/{item}")["status"] != "Invalid"


def test_backfill_runs_each_fire_once_with_its_scheduled_time(system: System) -> None:
    system.start_serve()
    system.start_worker()
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    first, last = hour - timedelta(hours=7), hour - timedelta(hours=2)
    backfill = f"{first:%Y-%m-%dT%H:%M}Z..{last:%Y-%m-%dT%H:%M}Z"
    item = system.create_job("hourly", "tests.context", params={"label": "bf"}, schedule="0 * * * *")
    system.wait_until(lambda: system.job(item)["status"] == "Scheduled", 20, "the schedule")
    system.edit_job(item, backfill=backfill)

    def contexts() -> list[dict[str, Any]]:
        return [entry for entry in system.executions() if entry["task"] == "context"]

    system.wait_until(lambda: len(contexts()) == 6, 60, "six backfill runs")
    expected = [(first + timedelta(hours=n)).isoformat() for n in range(6)]
    assert [entry["scheduled_at"] for entry in contexts()] == expected  # oldest first
    assert {entry["kind"] for entry in contexts()} == {"backfill"}
    assert [entry["run_id"] for entry in contexts()] == [
        f"cron:{item}:{(first + timedelta(hours=n)).strftime('%Y-%m-%dT%H:%M:%S.000Z')}" for n in range(6)
    ]
    system.wait_until(lambda: system.job(item)["backfill"] is None, 20, "Backfill to be cleared")
    system.edit_job(item, backfill=backfill)  # the same range again: those fires ran already
    system.wait_until(lambda: system.job(item)["backfill"] is None, 20, "Backfill to be cleared again")
    time.sleep(3)
    assert len(contexts()) == 6
    assert json.dumps(system.job(item)["message"])  # the record says what the backfill did


def test_task_edits_through_ctx_alloy_share_the_keys_budget_with_serve(system: System) -> None:
    # A tenant whose window is 10 s, with 20 edits in it: serve's status writes and the task's own
    # edits together exceed it several times over, and must be paced, not refused.
    system.emulator.set_rate_limits(enabled=True, window_seconds=10, query=200, read=200, write=20)
    limits = {
        "ALLOYSYNC_ALLOY_RATE_WINDOW": "10",
        "ALLOYSYNC_ALLOY_WRITE_PER_MINUTE": "20",
        "ALLOYSYNC_ALLOY_READ_PER_MINUTE": "200",
        "ALLOYSYNC_ALLOY_QUERY_PER_MINUTE": "200",
    }
    system.overrides.update(limits)
    system.start_serve()
    system.start_worker()
    before = system.emulator.stats()

    def draft(title: str, task: str, params: dict[str, Any], enabled: bool = True) -> dict[str, Any]:
        values = {CODES.title: title, CODES.enabled: enabled, CODES.task: task, CODES.params: params}
        return {
            "designCode": DESIGN,
            "attributes": [{"attributeCode": c, "value": v} for c, v in values.items()],
        }

    # Created through the emulator's admin API: the test's own writes spend none of the budget.
    [target] = [
        i["itemId"] for i in system.emulator.bulk_create([draft("edited", "tests.record", {}, False)])
    ]
    created = system.emulator.bulk_create(
        [draft("editor", "tests.alloy_edits", {"item_id": target, "count": 30, "attribute": CODES.title})]
        + [draft(f"other {n}", "tests.record", {"label": f"o{n}"}) for n in range(6)]
    )
    editor, *others = [item["itemId"] for item in created]
    started = time.monotonic()
    for item in [editor, *others]:
        system.wait_for_status(item, "Succeeded", timeout=120)
    elapsed = time.monotonic() - started
    after = system.emulator.stats()
    writes = sum(after["write"].values()) - sum(before.get("write", {}).values())
    refused = {family: statuses.get("429", 0) - before.get(family, {}).get("429", 0)
               for family, statuses in after.items()}  # fmt: skip
    assert all(count == 0 for count in refused.values()), refused
    assert writes > 40  # the task's 30 edits and serve's status writes, well over one window's 20
    assert elapsed > 10  # so they were spread over several windows
    assert system.emulator.attributes(target)[CODES.title] == "edit 29"

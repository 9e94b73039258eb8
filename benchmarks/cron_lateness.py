"""Cron lateness: 1,000 cron jobs due in the same minute.

A fresh stack (redis-server, emulator, `alloysync serve`, `alloysync scheduler`, `alloysync worker`
with 2 processes x 8 threads) gets N job records with schedule `* * * * *` (UTC) at once through the
emulator's admin bulk create. The emulator runs with its rate limits OFF for this benchmark: what
is measured is the scheduler and the worker pool, not Alloy reads, and with limits on the poller's
first sync of 1,000 records and the reporter's 1,000 NextRun writes would only delay the start.
(alloysync's own client-side budgets still apply; the reporter still paces its writes at 120/min in
the background, which is fine.)

Once every schedule is registered (Redis hash `alloysync:schedules` has N entries), the benchmark
picks the next minute boundary B at least `--margin` seconds away and measures, for each job's fire
at B: lateness = run start (`at` recorded by `tests.record` at the top of the task body) minus B,
reporting p50 / p99 / max. It also reports how long the scheduler's pass took to enqueue all N
fires: the `created` times of the run records `alloysync:run:cron:{item}:{B}` relative to B, and the
time of the scheduler's "scheduler pass" log line for B.

A background thread samples the scheduler's `alloysync_scheduler_last_tick_timestamp_seconds` so
the result also shows how often the scheduler made a pass over the schedules.

Run:  .venv/bin/python -m benchmarks.cron_lateness   (or ./dev bench cron_lateness)
"""

from __future__ import annotations

import sys
from pathlib import Path

if not __package__:  # run as a script (`python benchmarks/cron_lateness.py`, i.e. ./dev bench)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import json
import math
import threading
import time
from datetime import UTC, datetime
from typing import Any

from alloysync.model.times import format_alloy_datetime as format_time
from alloysync.state import keys
from benchmarks.common import (
    add_appendfsync_option,
    add_dramatiq_timeout_option,
    add_result_name_option,
    dramatiq_env,
    machine_info,
    parse_alloy_time,
    pick,
    progress,
    run_main,
    running_stack,
    scrape,
    sleep_until,
    summarize,
    write_result,
)
from tests.support.system import CODES, DESIGN
from tests.support.tasks import EXECUTIONS

NAME = "cron_lateness"
TICK_METRIC = "alloysync_scheduler_last_tick_timestamp_seconds"


class TickWatcher:
    """Samples the scheduler's last-tick gauge and keeps every distinct value (one per pass)."""

    def __init__(self, url: str, interval: float = 0.2) -> None:
        self.url = url
        self.interval = interval
        self.ticks: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tick-watcher", daemon=True)

    def start(self) -> TickWatcher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                value = scrape(self.url).get(TICK_METRIC)
            except OSError:
                value = None
            if value and (not self.ticks or value != self.ticks[-1]):
                self.ticks.append(value)
            self._stop.wait(self.interval)

    def between(self, start: float, end: float) -> int:
        return sum(1 for tick in self.ticks if start <= tick < end)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="cron_lateness",
        description="N cron jobs (* * * * *) due at the same minute boundary: lateness of each run's "
        "start (p50/p99/max) and the time the scheduler's pass took to enqueue them all.",
    )
    parser.add_argument("--jobs", type=int, default=1000, help="cron jobs (default 1000)")
    parser.add_argument("--processes", default="2", help="worker processes (2)")
    parser.add_argument("--threads", default="8", help="threads per worker process (8)")
    parser.add_argument("--poll-interval", default="1", help="ALLOYSYNC_POLL_INTERVAL (1)")
    parser.add_argument(
        "--margin", type=float, default=5, help="the measured boundary is at least this many s away (5)"
    )
    parser.add_argument("--timeout", type=float, default=300, help="give up after this many seconds")
    add_dramatiq_timeout_option(parser)
    add_appendfsync_option(parser)
    add_result_name_option(parser, NAME)
    parser.add_argument("--keep-workdir", action="store_true", help="keep the temp folder with the logs")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    return args


def job_drafts(count: int) -> list[dict[str, Any]]:
    return [
        {
            "designCode": DESIGN,
            "collection": "Live",
            "attributes": [
                {"attributeCode": CODES.title, "value": f"cron {number}"},
                {"attributeCode": CODES.enabled, "value": True},
                {"attributeCode": CODES.task, "value": "tests.record"},
                {"attributeCode": CODES.params, "value": {"label": f"cron-{number}"}},
                {"attributeCode": CODES.schedule, "value": "* * * * *"},
                {"attributeCode": CODES.timezone, "value": "UTC"},
            ],
        }
        for number in range(1, count + 1)
    ]


def scheduler_passes(log_path: Path, since: float) -> list[dict[str, Any]]:
    """The scheduler's "scheduler pass" log lines (JSON) logged at or after `since`."""
    passes = []
    for line in log_path.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if not isinstance(entry, dict) or entry.get("event") != "scheduler pass":
            continue
        logged = parse_alloy_time(str(entry.get("timestamp", "")))
        if logged >= since:
            passes.append({**entry, "unix": logged})
    return passes


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    machine = machine_info()
    wall = time.monotonic()
    env = {
        "ALLOYSYNC_POLL_INTERVAL": args.poll_interval,
        "ALLOYSYNC_WORKER_PROCESSES": args.processes,
        "ALLOYSYNC_WORKER_THREADS": args.threads,
        **dramatiq_env(args.dramatiq_worker_timeout),
    }
    progress("starting redis-server, emulator (rate limits OFF), serve, scheduler and worker ...")
    with running_stack(
        NAME, rate_limits=False, keep_workdir=args.keep_workdir, appendfsync=args.appendfsync, **env
    ) as stack:
        system = stack.system
        system.start_serve()
        system.start_scheduler()
        system.start_worker()
        stack.wait_for_poller()
        watcher = TickWatcher(system.url("scheduler")).start()
        try:
            progress(f"creating {args.jobs} cron jobs (* * * * *, UTC) at once (admin bulk create) ...")
            created_at = time.time()
            created = stack.emulator.bulk_create(job_drafts(args.jobs))
            label_of = {item["itemId"]: f"cron-{number}" for number, item in enumerate(created, 1)}
            deadline = time.monotonic() + args.timeout
            while (registered := int(system.redis.hlen(keys.SCHEDULES))) < args.jobs:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"only {registered}/{args.jobs} schedules registered")
                progress(f"schedules registered: {registered}/{args.jobs}")
                time.sleep(1)
            registered_at = time.time()
            progress(f"{args.jobs} schedules registered, {registered_at - created_at:.1f} s after creation")
            boundary = math.ceil((time.time() + args.margin) / 60) * 60
            fire = format_time(datetime.fromtimestamp(boundary, UTC))
            progress(f"waiting {boundary - time.time():.1f} s for the boundary {fire} ...")
            sleep_until(boundary)
            run_keys = {item_id: keys.run(f"cron:{item_id}:{fire}") for item_id in label_of}
            starts: dict[str, float] = {}
            while True:
                for raw in system.redis.lrange(EXECUTIONS, 0, -1):
                    entry = json.loads(raw)
                    at = float(entry["at"])
                    # The fire at `boundary`: the first execution of the label at or after it (an
                    # earlier boundary's fire starts before it; the next one a minute later).
                    if boundary <= at < boundary + 60 and entry["label"] not in starts:
                        starts[entry["label"]] = at
                done = len(starts)
                progress(f"runs for {fire} started: {done}/{args.jobs}")
                if done >= args.jobs:
                    break
                if time.time() > boundary + 59 or time.monotonic() > deadline:
                    progress("giving up: not every run started within the minute")
                    break
                time.sleep(1)
            pipe = system.redis.pipeline(transaction=False)
            for run_key in run_keys.values():
                pipe.hmget(run_key, "created", "started", "state")
            records = dict(zip(run_keys, pipe.execute(), strict=True))
            time.sleep(2)  # let the pass's log line and a few more scheduler ticks in
            worker_metrics = scrape(system.url("worker"))
            scheduler_metrics = scrape(system.url("scheduler"))
            passes = scheduler_passes(system.workdir / "logs" / "scheduler.log", boundary - 1)
        finally:
            watcher.stop()
        shutdown = stack.stop_processes()
        problems = stack.log_problems()

    labels = set(label_of.values())
    lateness = [at - boundary for label, at in starts.items() if label in labels]
    created_offsets = [parse_alloy_time(r[0]) - boundary for r in records.values() if r[0]]
    record_starts = [parse_alloy_time(r[1]) - boundary for r in records.values() if r[1]]
    queue_waits = [parse_alloy_time(r[1]) - parse_alloy_time(r[0]) for r in records.values() if r[0] and r[1]]
    states: dict[str, int] = {}
    for record in records.values():
        states[record[2] or "(no run record)"] = states.get(record[2] or "(no run record)", 0) + 1
    boundary_pass = next((entry for entry in passes if entry.get("enqueued")), None)
    results: dict[str, Any] = {
        "boundary": fire,
        "runs_started_for_boundary": len(lateness),
        "lateness_s": summarize(lateness, (0.5, 0.99)),
        "scheduler_pass": {
            "first_run_record_created_after_boundary_s": round(min(created_offsets), 3)
            if created_offsets
            else None,
            "last_run_record_created_after_boundary_s": round(max(created_offsets), 3)
            if created_offsets
            else None,
            "run_records_created": len(created_offsets),
            "pass_log_line_after_boundary_s": round(boundary_pass["unix"] - boundary, 3)
            if boundary_pass
            else None,
            "pass_log_line": {k: v for k, v in (boundary_pass or {}).items() if k not in ("unix",)},
        },
        "run_record_started_after_boundary_s": summarize(record_starts, (0.5, 0.99)),
        "queue_wait_created_to_started_s": summarize(queue_waits, (0.5, 0.99)),
        "run_record_states": states,
        "schedules_registered_after_creation_s": round(registered_at - created_at, 2),
        "scheduler_ticks_observed": {
            "from_registration_to_boundary": watcher.between(registered_at, boundary),
            "seconds_from_registration_to_boundary": round(boundary - registered_at, 1),
            "from_boundary_to_end": watcher.between(boundary, time.time() + 1),
            "all_tick_times_after_registration": [
                round(tick - boundary, 3) for tick in watcher.ticks if tick >= registered_at
            ],
        },
        "logged_warnings_and_errors": problems,
        "shutdown": shutdown,
        "worker_metrics": pick(worker_metrics, "alloysync_schedule_lateness_seconds"),
        "scheduler_metrics": pick(
            scheduler_metrics, "alloysync_scheduler_fires_total", "alloysync_schedules", TICK_METRIC
        ),
    }
    payload = {
        "benchmark": NAME,
        "parameters": {
            "jobs": args.jobs,
            "schedule": "* * * * * (UTC)",
            "worker_processes": int(args.processes),
            "worker_threads": int(args.threads),
            "redis_appendfsync": args.appendfsync,
            "dramatiq_worker_timeout_ms": args.dramatiq_worker_timeout or "unset (Dramatiq default 1000)",
            "poll_interval_s": float(args.poll_interval),
            "margin_s": args.margin,
            "task": "tests.record (records time.time() at the top of the task body)",
            "creation": "emulator admin bulk create",
            "emulator_rate_limits": "OFF (reads are not what is measured; client-side budgets still apply)",
        },
        "machine": machine,
        "results": results,
        "wall_time_s": round(time.monotonic() - wall, 1),
    }
    path = write_result(args.result_name, payload)
    stats = results["lateness_s"]
    sched = results["scheduler_pass"]
    print(
        f"\nResult: {args.jobs} cron jobs (* * * * *) due at {fire}, worker pool "
        f"{args.processes}x{args.threads}, {machine['cpu_count']} CPUs: {len(lateness)} runs started for "
        f"that boundary; lateness (run start minus scheduled time) p50 {stats.get('p50')} s, p99 "
        f"{stats.get('p99')} s, max {stats.get('max')} s. The scheduler's pass created the run records "
        f"from {sched['first_run_record_created_after_boundary_s']} s to "
        f"{sched['last_run_record_created_after_boundary_s']} s after the boundary (its 'scheduler pass' "
        f"log line came {sched['pass_log_line_after_boundary_s']} s after it). Written to {path}."
    )
    return 0


if __name__ == "__main__":
    run_main(main)

"""Burst: 500 one-off jobs created at once, with Alloy's rate limits on.

A fresh stack (redis-server, emulator with its default limits of 120 queries / 300 reads / 150
writes per 60 s, `alloysync serve`, `alloysync worker` with 2 processes x 8 threads) gets N job
records at once through the emulator's admin bulk create (which bypasses rate limits and counts no
request). Every job is `tests.record` (trivial: it appends one line to a Redis list).

Measured once every record shows Status Succeeded and RunCount 1:
  - Alloy edit calls alloysync made per completed job (emulator stats, write family; the benchmark
    itself makes no write call: its reads go through the emulator's observer API);
  - total time from the bulk create to the last record reaching Succeeded (its lastEditDate), and
    to the last task execution (which shows how much of it is the paced write-back);
  - 429s received (all families).
Then it waits for the outbox to drain and counts again, so writes made after completion show up.

Status writes are paced at ALLOYSYNC_REPORT_WRITES_PER_MINUTE (default 120), so the full run takes
a few minutes; `--jobs 50` makes a quick one.

Run:  .venv/bin/python -m benchmarks.burst   (or ./dev bench burst)
"""

from __future__ import annotations

import sys
from pathlib import Path

if not __package__:  # run as a script (`python benchmarks/burst.py`, i.e. ./dev bench)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import json
import time
from collections import Counter
from typing import Any

from alloysync.state import keys
from benchmarks.common import (
    Stack,
    add_appendfsync_option,
    add_result_name_option,
    attributes_of,
    count_status,
    machine_info,
    parse_alloy_time,
    pick,
    progress,
    request_delta,
    run_main,
    running_stack,
    scrape,
    write_result,
)
from tests.support.system import CODES, DESIGN
from tests.support.tasks import EXECUTIONS

NAME = "burst"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="burst",
        description="Create N one-off jobs at once (rate limits on) and measure Alloy edit calls per "
        "completed job, total time to complete, and 429s.",
    )
    parser.add_argument("--jobs", type=int, default=500, help="jobs in the burst (default 500)")
    parser.add_argument("--processes", default="2", help="worker processes (2)")
    parser.add_argument("--threads", default="8", help="threads per worker process (8)")
    parser.add_argument("--poll-interval", default="1", help="ALLOYSYNC_POLL_INTERVAL (1)")
    parser.add_argument(
        "--writes-per-minute",
        default="120",
        help="ALLOYSYNC_REPORT_WRITES_PER_MINUTE, the reporter's pace (120, the default)",
    )
    parser.add_argument("--every", type=float, default=5, help="progress line every N seconds (5)")
    parser.add_argument("--timeout", type=float, default=1800, help="give up after this many seconds")
    parser.add_argument(
        "--settle", type=float, default=10, help="after completion, the outbox must stay empty this long"
    )
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
                {"attributeCode": CODES.title, "value": f"burst {number}"},
                {"attributeCode": CODES.enabled, "value": True},
                {"attributeCode": CODES.task, "value": "tests.record"},
                {"attributeCode": CODES.params, "value": {"label": f"burst-{number}"}},
                {"attributeCode": CODES.schedule, "value": ""},
            ],
        }
        for number in range(1, count + 1)
    ]


def snapshot(stack: Stack, item_ids: set[str]) -> tuple[int, Counter[str], float]:
    """(records Succeeded with RunCount 1, statuses, newest lastEditDate among our records)."""
    done = 0
    statuses: Counter[str] = Counter()
    newest = 0.0
    for item in stack.job_items():
        if item["itemId"] not in item_ids:
            continue
        values = attributes_of(item)
        status = values.get(CODES.status) or "(none)"
        statuses[status] += 1
        if status == "Succeeded" and values.get(CODES.run_count) == 1:
            done += 1
        newest = max(newest, parse_alloy_time(item["lastEditDate"]))
    return done, statuses, newest


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    machine = machine_info()
    wall = time.monotonic()
    env = {
        "ALLOYSYNC_POLL_INTERVAL": args.poll_interval,
        "ALLOYSYNC_WORKER_PROCESSES": args.processes,
        "ALLOYSYNC_WORKER_THREADS": args.threads,
        "ALLOYSYNC_REPORT_WRITES_PER_MINUTE": args.writes_per_minute,
    }
    progress("starting redis-server, emulator (rate limits on), serve and worker ...")
    with running_stack(
        NAME,
        rate_limits=True,
        keep_workdir=args.keep_workdir,
        appendfsync=args.appendfsync,
        item_dates=True,  # the benchmark times completion by lastEditDate; alloysync never reads it
        **env,
    ) as stack:
        system = stack.system
        system.start_serve()
        system.start_worker()
        stack.wait_for_poller()
        time.sleep(1)
        before = stack.emulator_counts()
        progress(f"creating {args.jobs} jobs at once (admin bulk create) ...")
        created = stack.emulator.bulk_create(job_drafts(args.jobs))
        item_ids = {item["itemId"] for item in created}
        origin = min(parse_alloy_time(item["createdDate"]) for item in created)
        timeline: list[dict[str, Any]] = []
        next_line = 0.0
        deadline = time.monotonic() + args.timeout
        while True:
            done, statuses, newest = snapshot(stack, item_ids)
            outbox = int(system.redis.xlen(keys.OUTBOX))
            executed = int(system.redis.llen(EXECUTIONS))
            now = time.time()
            if time.monotonic() >= next_line or done == args.jobs:
                next_line = time.monotonic() + args.every
                timeline.append(
                    {"t": round(now - origin, 1), "succeeded": done, "executed": executed, "outbox": outbox}
                )
                progress(
                    f"succeeded (RunCount 1) {done}/{args.jobs}; tasks executed {executed}; "
                    f"outbox depth {outbox}; statuses {dict(statuses)}"
                )
            if done == args.jobs:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {done}/{args.jobs} jobs succeeded within {args.timeout:g} s")
            time.sleep(1)
        completed_at = newest  # the last record's final edit: when the last one showed Succeeded
        at_completion = stack.emulator_counts()
        progress("all succeeded; waiting for the outbox to drain and stay empty ...")
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < args.settle:
            if system.redis.xlen(keys.OUTBOX):
                quiet_since = time.monotonic()
            if time.monotonic() > deadline:
                break
            time.sleep(0.5)
        settled = stack.emulator_counts()
        entries = [json.loads(raw) for raw in system.redis.lrange(EXECUTIONS, 0, -1)]
        serve_metrics = scrape(system.url())
        _, final_statuses, _ = snapshot(stack, item_ids)
        shutdown = stack.stop_processes()
        problems = stack.log_problems()

    labels = Counter(entry["label"] for entry in entries)
    last_start = max(float(entry["at"]) for entry in entries)
    first_start = min(float(entry["at"]) for entry in entries)
    delta_done = request_delta(before, at_completion)
    delta_settled = request_delta(before, settled)
    writes_done = sum(delta_done.get("write", {}).values())
    writes_settled = sum(delta_settled.get("write", {}).values())
    passes = serve_metrics.get('alloysync_poll_duration_seconds_count{kind="incremental"}', 0.0)
    pass_seconds = serve_metrics.get('alloysync_poll_duration_seconds_sum{kind="incremental"}', 0.0)
    per_minute = int(args.writes_per_minute)
    burst_tokens = max(1, per_minute // 10)  # the reporter's TokenBucket: a tenth at once, rest paced
    floor_s = max(0, args.jobs - burst_tokens) / ((per_minute - burst_tokens) / 60)
    results = {
        "jobs_completed": args.jobs,
        "alloy_edit_calls_at_completion": writes_done,
        "alloy_edit_calls_per_job_at_completion": round(writes_done / args.jobs, 3),
        "alloy_edit_calls_after_settling": writes_settled,
        "alloy_edit_calls_per_job_after_settling": round(writes_settled / args.jobs, 3),
        "http_429_total": count_status(delta_settled, "429"),
        "http_429_by_family": {f: s.get("429", 0) for f, s in delta_settled.items()},
        "emulator_requests_at_completion": delta_done,
        "emulator_requests_after_settling": delta_settled,
        "time_to_all_succeeded_s": round(completed_at - origin, 1),
        "time_to_last_task_start_s": round(last_start - origin, 2),
        "time_to_first_task_start_s": round(first_start - origin, 2),
        "paced_write_floor_s": round(floor_s, 1),
        "task_executions": len(entries),
        "distinct_jobs_executed": len(labels),
        "jobs_executed_more_than_once": sorted(label for label, n in labels.items() if n > 1),
        "final_statuses": dict(final_statuses),
        # The poller keeps polling while statuses are written back; its passes re-read recent edits.
        "poller_incremental_passes": int(passes),
        "poller_incremental_pass_mean_s": round(pass_seconds / passes, 3) if passes else None,
        "poller_query_budget_wait_s": round(
            serve_metrics.get('alloysync_alloy_rate_limit_wait_seconds_total{endpoint="query"}', 0.0), 1
        ),
        "logged_warnings_and_errors": problems,
        "shutdown": shutdown,
        "timeline": timeline,
        "serve_metrics": pick(
            serve_metrics,
            "alloysync_alloy_requests_total",
            "alloysync_alloy_rate_limit_wait_seconds_total",
            "alloysync_reporter_writes_total",
            "alloysync_reporter_events_total",
            "alloysync_runs_enqueued_total",
            "alloysync_poll_duration_seconds_count",
            "alloysync_poll_duration_seconds_sum",
            "alloysync_poll_items_total",
        ),
    }
    payload = {
        "benchmark": NAME,
        "parameters": {
            "jobs": args.jobs,
            "worker_processes": int(args.processes),
            "worker_threads": int(args.threads),
            "redis_appendfsync": args.appendfsync,
            "poll_interval_s": float(args.poll_interval),
            "report_writes_per_minute": per_minute,
            "task": "tests.record",
            "creation": "emulator admin bulk create (no rate limit, not counted in stats)",
            "emulator_rate_limits": "on (Alloy defaults: 120 queries, 300 reads, 150 writes per 60 s)",
        },
        "machine": machine,
        "results": results,
        "wall_time_s": round(time.monotonic() - wall, 1),
    }
    path = write_result(args.result_name, payload)
    print(
        f"\nResult: a burst of {args.jobs} one-off jobs (worker pool {args.processes}x{args.threads}, rate "
        f"limits on, status writes paced at {per_minute}/min, {machine['cpu_count']} CPUs) completed — "
        f"every record Succeeded with RunCount 1 — {results['time_to_all_succeeded_s']} s after the bulk "
        f"create (the last task started after {results['time_to_last_task_start_s']} s; writing "
        f"{args.jobs} statuses at the paced rate takes at least {results['paced_write_floor_s']} s). "
        f"alloysync made {writes_done} Alloy edit calls by then, "
        f"{results['alloy_edit_calls_per_job_at_completion']} per completed job "
        f"({writes_settled} = {results['alloy_edit_calls_per_job_after_settling']} per job once the "
        f"outbox had drained), and received {results['http_429_total']} HTTP 429s. "
        f"{len(entries)} task executions for {len(labels)} jobs. Written to {path}."
    )
    return 0


if __name__ == "__main__":
    run_main(main)

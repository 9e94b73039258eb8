"""Sync cost: what polling 10,000 job records costs in Alloy queries, with Alloy's rate limits on.

A fresh stack (redis-server, the emulator in its real-Alloy default — items carry no lastEditDate —
with its limits of 120 queries / 300 reads / 150 writes per 60 s, and `alloysync serve`) gets N
paused job records (Enabled false: nothing runs, each record gets one "Paused" status write) through
the emulator's admin bulk create, which bypasses rate limits and counts no request.

Measured from the emulator's request counts (query family) and serve's /metrics:
  - the first pass (no cursor yet: it reads every record): queries and seconds;
  - idle incremental passes: queries per pass over a quiet minute (the reporter keeps writing the
    Paused statuses meanwhile, so each pass re-reads the records edited within the overlap window);
  - one full reconciliation (paced at a quarter of ALLOYSYNC_ALLOY_QUERY_PER_MINUTE): queries,
    seconds, queries per minute as a share of the key's budget, and the incremental passes that
    ran beside it (not starved: their count and longest duration);
  - HTTP 429s received, all families.

Run:  .venv/bin/python -m benchmarks.sync_cost   (or ./dev bench sync_cost); about 6 minutes at 10k.
"""

from __future__ import annotations

import sys
from pathlib import Path

if not __package__:  # run as a script (`python benchmarks/sync_cost.py`, i.e. ./dev bench)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import time
from typing import Any

from benchmarks.common import (
    add_result_name_option,
    count_status,
    machine_info,
    progress,
    request_delta,
    run_main,
    running_stack,
    scrape,
    write_result,
)
from tests.support.system import CODES, DESIGN

NAME = "sync_cost"
QUERY_BUDGET_PER_MINUTE = 120  # Alloy's published limit, and ALLOYSYNC_ALLOY_QUERY_PER_MINUTE's default


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="sync_cost",
        description="Poll N job records with Alloy's rate limits on and measure the queries of an idle "
        "incremental pass and of a full reconciliation, its duration and share of the query budget, "
        "and 429s.",
    )
    parser.add_argument("--records", type=int, default=10_000, help="job records (default 10000)")
    parser.add_argument("--poll-interval", default="5", help="ALLOYSYNC_POLL_INTERVAL (5, the default)")
    parser.add_argument("--idle", type=float, default=60, help="seconds of idle passes to count (60)")
    parser.add_argument(
        "--full-sync-interval",
        type=float,
        default=90,
        help="ALLOYSYNC_FULL_SYNC_INTERVAL: the full reconciliation starts this long after the first "
        "pass, which read every record (90)",
    )
    parser.add_argument("--timeout", type=float, default=1200, help="give up after this many seconds")
    add_result_name_option(parser, NAME)
    parser.add_argument("--keep-workdir", action="store_true", help="keep the temp folder with the logs")
    args = parser.parse_args(argv)
    if args.records < 1:
        parser.error("--records must be at least 1")
    if args.idle + 5 >= args.full_sync_interval:
        parser.error("--idle must end before the full reconciliation starts (--full-sync-interval)")
    return args


def job_drafts(count: int) -> list[dict[str, Any]]:
    return [
        {
            "designCode": DESIGN,
            "collection": "Live",
            "attributes": [
                {"attributeCode": CODES.title, "value": f"paused {number}"},
                {"attributeCode": CODES.enabled, "value": False},
                {"attributeCode": CODES.task, "value": "tests.record"},
                {"attributeCode": CODES.schedule, "value": "0 7 * * 1"},
            ],
        }
        for number in range(1, count + 1)
    ]


def queries(stack: Any) -> int:
    return sum(stack.emulator_counts()["requests"].get("query", {}).values())


def metric(samples: dict[str, float], name: str) -> float:
    return samples.get(name, 0.0)


def incremental_passes(samples: dict[str, float]) -> float:
    return metric(samples, 'alloysync_poll_duration_seconds_count{kind="incremental"}')


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    machine = machine_info()
    wall = time.monotonic()
    env = {
        "ALLOYSYNC_POLL_INTERVAL": args.poll_interval,
        "ALLOYSYNC_FULL_SYNC_INTERVAL": str(args.full_sync_interval),
    }
    progress("starting redis-server, emulator (rate limits on, no item dates) ...")
    with running_stack(NAME, rate_limits=True, keep_workdir=args.keep_workdir, **env) as stack:
        system = stack.system
        progress(f"creating {args.records} paused job records (admin bulk create) ...")
        for start in range(0, args.records, 1000):
            stack.emulator.bulk_create(job_drafts(min(1000, args.records - start)))
        # Records edited within ALLOYSYNC_SYNC_OVERLAP (10 s) of the first pass are read again by the
        # second: let the overlap pass, so the idle window below measures idle passes only. (The
        # emulator keeps edit dates strictly increasing, 1 ms apart: a bulk create of N records
        # stamps them over N ms.)
        time.sleep(12 + args.records / 1000)
        before = stack.emulator_counts()
        progress("starting serve ...")
        started = time.monotonic()
        system.start_serve()
        stack.wait_for_poller()
        deadline = time.monotonic() + args.timeout

        # 1. The first pass: no cursor, every record is read.
        system.wait_until(
            lambda: incremental_passes(scrape(system.url())) >= 1, args.timeout, "the first pass"
        )
        first_pass_s = time.monotonic() - started
        first_queries = queries(stack)
        progress(f"first pass done: {first_queries} queries, {first_pass_s:.1f} s since serve started")

        # 2. Idle incremental passes.
        time.sleep(2 * float(args.poll_interval))
        samples = scrape(system.url())
        passes_before, queries_before = incremental_passes(samples), queries(stack)
        progress(f"counting idle incremental passes for {args.idle:g} s ...")
        time.sleep(args.idle)
        samples = scrape(system.url())
        idle_passes = incremental_passes(samples) - passes_before
        idle_queries = queries(stack) - queries_before
        if metric(samples, "alloysync_full_sync_queries"):
            raise RuntimeError("a full reconciliation ran during the idle window; raise --full-sync-interval")
        progress(f"idle: {idle_passes:g} passes, {idle_queries} queries")

        # 3. One full reconciliation, with incremental passes beside it.
        progress("waiting for the full reconciliation (paced at a quarter of the query budget) ...")
        system.wait_until(
            lambda: metric(scrape(system.url()), "alloysync_full_sync_queries") > 0,
            max(1.0, deadline - time.monotonic()),
            "the full reconciliation",
            interval=1.0,
        )
        samples = scrape(system.url())
        full_s = metric(samples, "alloysync_full_sync_duration_seconds")
        full_queries = int(metric(samples, "alloysync_full_sync_queries"))
        passes_total = incremental_passes(samples)
        settled = stack.emulator_counts()
        shutdown = stack.stop_processes()
        problems = stack.log_problems()

    delta = request_delta(before, settled)
    full_per_minute = full_queries / full_s * 60 if full_s else 0.0
    results = {
        "records": args.records,
        "first_pass_queries": first_queries,
        "first_pass_s_since_serve_start": round(first_pass_s, 1),
        "idle_incremental_passes": int(idle_passes),
        "idle_incremental_queries": idle_queries,
        "idle_queries_per_pass": round(idle_queries / idle_passes, 3) if idle_passes else None,
        "full_reconciliation_queries": full_queries,
        "full_reconciliation_s": round(full_s, 1),
        "full_reconciliation_queries_per_minute": round(full_per_minute, 1),
        "full_reconciliation_share_of_query_budget": round(full_per_minute / QUERY_BUDGET_PER_MINUTE, 3),
        "incremental_passes_total": int(passes_total),
        "incremental_pass_mean_s": round(
            metric(samples, 'alloysync_poll_duration_seconds_sum{kind="incremental"}') / passes_total, 3
        )
        if passes_total
        else None,
        "http_429_total": count_status(delta, "429"),
        "emulator_requests": delta,
        "logged_warnings_and_errors": problems,
        "shutdown": shutdown,
    }
    payload = {
        "benchmark": NAME,
        "parameters": {
            "records": args.records,
            "poll_interval_s": float(args.poll_interval),
            "full_sync_interval_s": args.full_sync_interval,
            "idle_window_s": args.idle,
            "emulator": "rate limits on (120 queries, 300 reads, 150 writes per 60 s), no item dates",
        },
        "machine": machine,
        "results": results,
        "wall_time_s": round(time.monotonic() - wall, 1),
    }
    path = write_result(args.result_name, payload)
    print(
        f"\nResult: {args.records} job records, rate limits on. First pass (no cursor): "
        f"{first_queries} queries. Idle incremental passes: {results['idle_queries_per_pass']} queries "
        f"per pass ({idle_queries} over {int(idle_passes)} passes). Full reconciliation: {full_queries} "
        f"queries in {results['full_reconciliation_s']} s = "
        f"{results['full_reconciliation_queries_per_minute']}/min, "
        f"{results['full_reconciliation_share_of_query_budget']:.0%} of the "
        f"{QUERY_BUDGET_PER_MINUTE}/min query budget. HTTP 429s: {results['http_429_total']}. "
        f"Written to {path}."
    )
    return 0


if __name__ == "__main__":
    run_main(main)

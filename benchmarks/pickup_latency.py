"""Pickup latency: from a job record being created in Alloy to its run starting on a worker.

For each mode a fresh stack is started (redis-server, emulator with Alloy's rate limits on,
`alloysync serve` and `alloysync worker`), then jobs (`tests.record`, run once, now) are created
one at a time through the emulator's public API, spaced by a random gap so creations are not
aligned with poll ticks. Latency = the worker's start time (`at`, recorded by `tests.record` at the
top of the task body) minus the record's `createdDate` in the emulator (both on this machine's
clock).

Modes:
  poll     ALLOYSYNC_POLL_INTERVAL=1 (default): only the poller finds new records.
  webhook  the emulator's call-out (what Alloy's "Http Request" workflow action does) POSTs to
           serve's /webhooks/alloy with the shared secret; the poll interval is 3600 s, so the
           webhook is what triggers the sync.

Run:  .venv/bin/python -m benchmarks.pickup_latency   (or ./dev bench pickup_latency)
"""

from __future__ import annotations

import sys
from pathlib import Path

if not __package__:  # run as a script (`python benchmarks/pickup_latency.py`, i.e. ./dev bench)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import json
import random
import time
from dataclasses import asdict, dataclass
from typing import Any

from benchmarks.common import (
    Stack,
    add_appendfsync_option,
    add_dramatiq_timeout_option,
    add_result_name_option,
    count_status,
    dramatiq_env,
    machine_info,
    parse_alloy_time,
    pick,
    progress,
    request_delta,
    run_main,
    running_stack,
    scrape,
    summarize,
    write_result,
)
from tests.support.system import CODES, DESIGN, WEBHOOK_SECRET
from tests.support.tasks import EXECUTIONS

NAME = "pickup_latency"
MODES = ("poll", "webhook")


@dataclass
class Sample:
    label: str
    item_id: str
    created: float  # the record's createdDate (unix seconds)
    started: float | None = None  # `at` recorded by tests.record on the worker
    create_429s: int = 0  # 429s the benchmark's own create got before it went through

    @property
    def latency(self) -> float | None:
        return None if self.started is None else self.started - self.created


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="pickup_latency",
        description="Time from a job record's creation in Alloy (the emulator) to its run starting on a "
        "worker, by polling and through the webhook; reports p50/p95/max per mode.",
    )
    parser.add_argument("--jobs", type=int, default=40, help="jobs per mode (default 40)")
    parser.add_argument("--modes", default=",".join(MODES), help="poll,webhook (default: both)")
    parser.add_argument("--min-gap", type=float, default=0.2, help="shortest pause between creations, s")
    parser.add_argument("--max-gap", type=float, default=1.5, help="longest pause between creations, s")
    parser.add_argument("--poll-interval", default="1", help="ALLOYSYNC_POLL_INTERVAL in poll mode (1)")
    parser.add_argument(
        "--webhook-poll-interval", default="3600", help="ALLOYSYNC_POLL_INTERVAL in webhook mode (3600)"
    )
    parser.add_argument("--processes", default="1", help="worker processes (1)")
    parser.add_argument("--threads", default="4", help="threads per worker process (4)")
    parser.add_argument("--seed", type=int, default=None, help="random seed for the gaps")
    parser.add_argument("--timeout", type=float, default=60, help="wait for the last runs this long, s")
    add_dramatiq_timeout_option(parser)
    add_appendfsync_option(parser)
    add_result_name_option(parser, NAME)
    parser.add_argument("--keep-workdir", action="store_true", help="keep the temp folder with the logs")
    args = parser.parse_args(argv)
    args.modes = [mode.strip() for mode in args.modes.split(",") if mode.strip()]
    unknown = set(args.modes) - set(MODES)
    if unknown:
        parser.error(f"unknown mode(s) {', '.join(sorted(unknown))}; choose from {', '.join(MODES)}")
    if not 0 <= args.min_gap <= args.max_gap:
        parser.error("need 0 <= --min-gap <= --max-gap")
    return args


def create_job(stack: Stack, label: str) -> Sample:
    """Create a run-once-now job as a user would: POST /api/item, counted against the rate limits.

    A 429 (the write budget is shared with alloysync's own status writes, as with a real API key)
    is retried after a second; the record's createdDate is when the create went through."""
    body = {
        "designCode": DESIGN,
        "collection": "Live",
        "attributes": [
            {"attributeCode": CODES.title, "value": f"pickup {label}"},
            {"attributeCode": CODES.enabled, "value": True},
            {"attributeCode": CODES.task, "value": "tests.record"},
            {"attributeCode": CODES.params, "value": {"label": label}},
            {"attributeCode": CODES.schedule, "value": ""},
        ],
    }
    rejected = 0
    while True:
        status, payload = stack.emulator.request("POST", "/api/item", body)
        if status == 429:
            rejected += 1
            time.sleep(1.0)
            continue
        if status >= 400:
            raise RuntimeError(f"creating {label} failed with {status}: {payload}")
        item = payload["item"]
        return Sample(label, item["itemId"], parse_alloy_time(item["createdDate"]), create_429s=rejected)


def collect_starts(stack: Stack, samples: dict[str, Sample]) -> None:
    """Fill in `started` from the executions tests.record appended to Redis."""
    for raw in stack.system.redis.lrange(EXECUTIONS, 0, -1):
        entry = json.loads(raw)
        sample = samples.get(entry["label"])
        if sample is not None and sample.started is None:
            sample.started = float(entry["at"])


def run_mode(mode: str, args: argparse.Namespace, rng: random.Random) -> dict[str, Any]:
    webhook = mode == "webhook"
    poll_interval = args.webhook_poll_interval if webhook else args.poll_interval
    env = {
        "ALLOYSYNC_POLL_INTERVAL": poll_interval,
        "ALLOYSYNC_WORKER_PROCESSES": args.processes,
        "ALLOYSYNC_WORKER_THREADS": args.threads,
        **dramatiq_env(args.dramatiq_worker_timeout),
    }
    if webhook:
        env["ALLOYSYNC_FULL_SYNC_INTERVAL"] = "3600"
    progress(f"[{mode}] starting redis-server, emulator (rate limits on), serve and worker ...")
    with running_stack(
        f"{NAME}-{mode}",
        rate_limits=True,
        item_dates=True,  # the benchmark times pickup from createdDate; alloysync never reads it
        keep_workdir=args.keep_workdir,
        appendfsync=args.appendfsync,
        **env,
    ) as stack:
        system = stack.system
        system.start_serve()
        system.start_worker()
        stack.wait_for_poller()
        if webhook:
            stack.emulator.set_webhook(
                f"{system.url()}/webhooks/alloy", {"X-Alloysync-Secret": WEBHOOK_SECRET}, [DESIGN]
            )
        time.sleep(2)  # let the startup sync pass finish: from here on, new records are what moves
        before = stack.emulator_counts()
        samples: dict[str, Sample] = {}
        began = time.monotonic()
        for number in range(1, args.jobs + 1):
            time.sleep(rng.uniform(args.min_gap, args.max_gap))
            sample = create_job(stack, f"{mode}-{number}")
            samples[sample.label] = sample
            collect_starts(stack, samples)
            done = [s.latency for s in samples.values() if s.latency is not None]
            last = f"{done[-1]:.3f} s" if done else "-"
            retried = f", create got {sample.create_429s} x 429 first" if sample.create_429s else ""
            progress(f"[{mode}] created {number}/{args.jobs}; started {len(done)}, latest {last}{retried}")
        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline:
            collect_starts(stack, samples)
            if all(sample.started is not None for sample in samples.values()):
                break
            time.sleep(0.2)
        elapsed = time.monotonic() - began
        time.sleep(1)  # let the last status writes go out before counting requests
        after = stack.emulator_counts()
        serve_metrics = scrape(system.url())
        duplicates = len(system.redis.lrange(EXECUTIONS, 0, -1)) - sum(
            1 for sample in samples.values() if sample.started is not None
        )
        shutdown = stack.stop_processes()
        problems = stack.log_problems()
    latencies = [sample.latency for sample in samples.values() if sample.latency is not None]
    missing = [sample.label for sample in samples.values() if sample.started is None]
    delta = request_delta(before, after)
    result = {
        "mode": mode,
        "poll_interval_s": float(poll_interval),
        "latency_s": summarize(latencies, (0.5, 0.95)),
        "missing_runs": missing,
        "extra_executions": duplicates,
        "benchmark_create_429s": sum(sample.create_429s for sample in samples.values()),
        "emulator_requests_during_run": delta,
        "emulator_429s_total": count_status(delta, "429"),
        "webhook_callouts": after["callouts"],
        "duration_s": round(elapsed, 1),
        "logged_warnings_and_errors": problems,
        "shutdown": shutdown,
        "serve_metrics": pick(
            serve_metrics,
            "alloysync_alloy_requests_total",
            "alloysync_alloy_rate_limit_wait_seconds_total",
            "alloysync_webhook_requests_total",
            "alloysync_poll_duration_seconds_count",
            "alloysync_poll_duration_seconds_sum",
            "alloysync_reporter_writes_total",
        ),
        "samples": [
            {**asdict(sample), "latency": None if sample.latency is None else round(sample.latency, 4)}
            for sample in samples.values()
        ],
    }
    stats = result["latency_s"]
    progress(
        f"[{mode}] done: p50 {stats.get('p50')} s, p95 {stats.get('p95')} s, max {stats.get('max')} s "
        f"over {stats['count']} runs; missing {len(missing)}"
    )
    return result


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    rng = random.Random(args.seed)
    machine = machine_info()
    started = time.monotonic()
    modes = {mode: run_mode(mode, args, rng) for mode in args.modes}
    payload = {
        "benchmark": NAME,
        "parameters": {
            "jobs_per_mode": args.jobs,
            "gap_s": [args.min_gap, args.max_gap],
            "poll_interval_s": float(args.poll_interval),
            "webhook_mode_poll_interval_s": float(args.webhook_poll_interval),
            "worker_processes": int(args.processes),
            "worker_threads": int(args.threads),
            "redis_appendfsync": args.appendfsync,
            "dramatiq_worker_timeout_ms": args.dramatiq_worker_timeout or "unset (Dramatiq default 1000)",
            "task": "tests.record (records time.time() at the top of the task body)",
            "emulator_rate_limits": "on (Alloy defaults: 120 queries, 300 reads, 150 writes per 60 s)",
            "seed": args.seed,
        },
        "machine": machine,
        "results": modes,
        "wall_time_s": round(time.monotonic() - started, 1),
    }
    path = write_result(args.result_name, payload)
    lines = []
    for mode, result in modes.items():
        stats = result["latency_s"]
        lines.append(
            f"{mode} (poll interval {result['poll_interval_s']:g} s): p50 {stats.get('p50')} s, "
            f"p95 {stats.get('p95')} s, max {stats.get('max')} s over {stats['count']} runs"
            + (f", {len(result['missing_runs'])} never started" if result["missing_runs"] else "")
            + f", {result['emulator_429s_total']} x 429 from the emulator"
        )
    print(
        f"\nResult: pickup latency from record creation to run start ({args.jobs} jobs per mode, "
        f"creations spaced {args.min_gap:g}-{args.max_gap:g} s apart, worker pool "
        f"{args.processes}x{args.threads}, {machine['cpu_count']} CPUs): " + "; ".join(lines) + f". "
        f"Written to {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}."
    )
    return 0


if __name__ == "__main__":
    run_main(main)

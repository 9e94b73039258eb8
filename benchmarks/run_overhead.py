"""Run overhead: what the bookkeeping of one run costs in Redis — create, claim, finish — with and
without the run-control checks (Overlap, concurrency keys) the scripts make.

In one process, against a private redis-server (AOF, `appendfsync always`, as the tests run it) and
a real Dramatiq broker, N runs of N different jobs go through the life of a one-step run: created in
batches of 500 (`RunQueue.submit_many`: the create script and the Dramatiq enqueue), claimed
(`Claims.claim`) and finished (`Claims.finish_step`). Variants, measured side by side in one run:
  plain    no Overlap policy, no concurrency key (every check is skipped at once);
  control  Overlap `skip` on every run (the job's active-run index is read and written) and one
           concurrency key with a limit of N (each claim takes a slot, each finish frees it).
Reported per run: wall time of each phase, and Redis calls and server time (INFO commandstats).
`--repeat` runs both variants that many times, alternating, and keeps every figure.

Run:  .venv/bin/python -m benchmarks.run_overhead   (or ./dev bench run_overhead)
"""

from __future__ import annotations

import sys
from pathlib import Path

if not __package__:  # run as a script (`python benchmarks/run_overhead.py`, i.e. ./dev bench)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import tempfile
import time
from typing import Any

import redis

from alloysync.broker import build_broker
from alloysync.enqueue import RunQueue
from alloysync.local.redis_server import RedisServer
from alloysync.model.events import Event, Status
from alloysync.model.registry import load_task_modules
from alloysync.model.runs import RunKind, RunRequest
from alloysync.settings import Settings
from alloysync.state.claims import Claims
from benchmarks.common import add_result_name_option, machine_info, progress, run_main, write_result

NAME = "run_overhead"
NOW = "2026-11-21T10:00:00.000Z"
LATER = 4_102_444_800_000


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="run_overhead", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000, help="runs per variant (2000)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds of both variants (3)")
    parser.add_argument(
        "--plain-only",
        action="store_true",
        help="measure only the plain variant (runs against code from before run control, too)",
    )
    add_result_name_option(parser, NAME)
    return parser.parse_args(argv)


def commandstats(client: redis.Redis) -> tuple[int, int]:
    """(calls, server microseconds) over every command so far."""
    stats: dict[str, Any] = client.info("commandstats")
    return sum(int(v["calls"]) for v in stats.values()), sum(int(v["usec"]) for v in stats.values())


def one_variant(
    client: redis.Redis, runs: RunQueue, claims: Claims, count: int, variant: str, round_: int
) -> dict[str, Any]:
    control = variant == "control"
    # Run-control fields only where used, so `--plain-only` also runs against older checkouts.
    control_options: dict[str, Any] = {"overlap": "skip", "concurrency_key": "bench-key"} if control else {}
    requests = [
        RunRequest(
            run_id=f"cron:{variant}{round_}-{n}:2026-11-21T10:00:00.000Z",
            item_id=f"{variant}{round_}-{n}",
            kind=RunKind.CRON,
            steps=("tests.record",),
            params={"label": str(n)},
            source="bench",
            reason="Queued: benchmark",
            recurring=True,
            **control_options,
        )
        for n in range(count)
    ]
    # The slot limit (a newer argument; `--plain-only` also measures a checkout from before it).
    limit: tuple[Any, ...] = (count,) if control else ()
    calls_0, usec_0 = commandstats(client)
    started = time.perf_counter()
    for start in range(0, count, 500):
        runs.submit_many(requests[start : start + 500])
    created = time.perf_counter()
    loaded = [runs.store.load(request.run_id) for request in requests]
    calls_1, usec_1 = commandstats(client)
    claim_started = time.perf_counter()
    for run in loaded:
        assert run is not None
        started_event = Event(run.item_id, "started", {"status": Status.RUNNING})
        claims.claim(run, 0, f"m-{run.run_id}", NOW, "bench", LATER, started_event, *limit)
    claimed = time.perf_counter()
    for run in loaded:
        assert run is not None
        done = Event(run.item_id, "succeeded", {"status": Status.SUCCEEDED})
        claims.finish_step(run, 0, f"m-{run.run_id}", NOW, '"ok"', int(time.time() * 1000), done)
    finished = time.perf_counter()
    calls_2, usec_2 = commandstats(client)
    loads = count  # the loads between the phases are the benchmark's, not the bookkeeping's
    return {
        "variant": variant,
        "create_us_per_run": round((created - started) / count * 1e6, 1),
        "claim_us_per_run": round((claimed - claim_started) / count * 1e6, 1),
        "finish_us_per_run": round((finished - claimed) / count * 1e6, 1),
        "total_us_per_run": round(((created - started) + (finished - claim_started)) / count * 1e6, 1),
        "redis_calls_per_run": round(((calls_1 - calls_0) + (calls_2 - calls_1) - loads) / count, 2),
        "redis_server_us_per_run": round(((usec_1 - usec_0) + (usec_2 - usec_1)) / count, 1),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    machine = machine_info()
    with tempfile.TemporaryDirectory(prefix="alloysync-bench-run-overhead-") as folder:
        server = RedisServer(Path(folder) / "redis")
        server.start()
        try:
            settings = Settings(redis_url=server.url, task_modules=["tests.support.tasks"])
            client = redis.Redis.from_url(server.url, decode_responses=True)
            broker = build_broker(settings)
            broker.declare_queue("default")
            runs = RunQueue(client, broker, load_task_modules(settings.task_modules), settings)
            claims = Claims(client)
            rounds: list[dict[str, Any]] = []
            for round_ in range(args.repeat):
                for variant in ("plain",) if args.plain_only else ("plain", "control"):
                    figures = one_variant(client, runs, claims, args.runs, variant, round_)
                    progress(f"round {round_ + 1} {variant}: {figures}")
                    rounds.append(figures)
            broker.close()
            client.close()
        finally:
            server.stop()

    def best(variant: str, key: str) -> float:
        return float(min(figures[key] for figures in rounds if figures["variant"] == variant))

    keys = ("create_us_per_run", "claim_us_per_run", "finish_us_per_run", "total_us_per_run",
            "redis_calls_per_run", "redis_server_us_per_run")  # fmt: skip
    variants = ("plain",) if args.plain_only else ("plain", "control")
    summary = {variant: {key: best(variant, key) for key in keys} for variant in variants}
    if args.plain_only:
        print(f"\nResult (plain only, best of {args.repeat} rounds): {summary['plain']}")
        write_result(args.result_name, {"benchmark": NAME, "parameters": vars(args), "machine": machine,
                                        "rounds": rounds, "best_of_rounds": summary})  # fmt: skip
        return 0
    overhead = {key: round(summary["control"][key] - summary["plain"][key], 2) for key in keys}
    path = write_result(
        args.result_name,
        {"benchmark": NAME, "parameters": vars(args), "machine": machine, "rounds": rounds,
         "best_of_rounds": summary, "control_minus_plain": overhead},
    )  # fmt: skip
    print(
        f"\nResult (best of {args.repeat} rounds, {args.runs} runs each): a run's bookkeeping costs "
        f"{summary['plain']['total_us_per_run']} us and {summary['plain']['redis_calls_per_run']} "
        f"Redis calls without run control, {summary['control']['total_us_per_run']} us and "
        f"{summary['control']['redis_calls_per_run']} calls with Overlap and a concurrency key "
        f"(+{overhead['total_us_per_run']} us, +{overhead['redis_server_us_per_run']} us of Redis "
        "server time). "
        f"Written to {path}."
    )
    return 0


if __name__ == "__main__":
    run_main(main)

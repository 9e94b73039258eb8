"""Log capture: what keeping a step's log lines with its run costs per run.

In one process, against a private redis-server (AOF, `appendfsync always`, as the tests run it;
`--appendfsync everysec` for production's setting), the same loop of N "steps" runs with and
without worker/run_log.py's `RunLogCapture` on the root logger, side by side and alternating, in
one run. Each step logs K lines through a task logger (as `ctx.log` does) and one warning; with
capture, the step's lines are kept in memory and appended to `alloysync:run:{id}:log` when it ends
(one pipelined RPUSH + LTRIM + EXPIRE), as in a worker.
Reported: the time per run of each variant, the difference (the cost of capture), and Redis calls
per run.

Run:  .venv/bin/python -m benchmarks.log_capture   (or ./dev bench log_capture)
"""

from __future__ import annotations

import sys
from pathlib import Path

if not __package__:  # run as a script (`python benchmarks/log_capture.py`, i.e. ./dev bench)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import logging
import tempfile
import time
from typing import Any

import redis

from alloysync.local.redis_server import RedisServer
from alloysync.settings import Settings
from alloysync.state.run_logs import RunLogWriter
from alloysync.worker.run_log import RunLogCapture
from benchmarks.common import (
    add_appendfsync_option,
    add_result_name_option,
    machine_info,
    progress,
    run_main,
    write_result,
)

NAME = "log_capture"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="log_capture", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000, help="runs per variant and round (2000)")
    parser.add_argument("--lines", type=int, default=10, help="lines each run logs (10)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds of both variants (3)")
    add_appendfsync_option(parser)
    add_result_name_option(parser, NAME)
    return parser.parse_args(argv)


def calls(client: redis.Redis) -> int:
    stats: dict[str, Any] = client.info("commandstats")
    return sum(int(v["calls"]) for v in stats.values())


def steps(count: int, lines: int, capture: RunLogCapture | None, round_: int) -> float:
    """Seconds per run of `count` runs that each log `lines` lines."""
    task_log = logging.LoggerAdapter(logging.getLogger("alloysync.task.bench"), {"run_id": "r"})
    started = time.perf_counter()
    for number in range(count):
        run_id = f"bench-{round_}-{number}"
        step_log = capture.begin(run_id, 0) if capture is not None else None
        for line in range(lines):
            task_log.info("processing record %s of run %s", line, run_id)
        logging.getLogger("some.library").warning("a library warns about %s", run_id)
        if capture is not None and step_log is not None:
            capture.end(step_log)
    return (time.perf_counter() - started) / count


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    machine = machine_info()
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    root.handlers[:] = [logging.NullHandler()]  # the process's own output is not what is measured
    with tempfile.TemporaryDirectory(prefix="alloysync-bench-log-capture-") as folder:
        server = RedisServer(Path(folder) / "redis")
        server.start()
        try:
            client = redis.Redis.from_url(server.url, decode_responses=True)
            client.config_set("appendfsync", args.appendfsync)
            settings = Settings(redis_url=server.url)
            capture = RunLogCapture(RunLogWriter(client, settings.run_log_max_lines), settings)
            rounds: list[dict[str, Any]] = []
            for round_ in range(args.repeat):
                plain = steps(args.runs, args.lines, None, round_)
                root.addHandler(capture)
                before = calls(client)
                captured = steps(args.runs, args.lines, capture, round_)
                redis_calls = (calls(client) - before - 1) / args.runs
                root.removeHandler(capture)
                figures = {
                    "without_us_per_run": round(plain * 1e6, 1),
                    "with_us_per_run": round(captured * 1e6, 1),
                    "capture_us_per_run": round((captured - plain) * 1e6, 1),
                    "redis_calls_per_run": round(redis_calls, 2),
                }
                progress(f"round {round_ + 1}: {figures}")
                rounds.append(figures)
            kept = client.llen(f"alloysync:run:bench-0-{args.runs - 1}:log")
            client.close()
        finally:
            server.stop()
    best = min(rounds, key=lambda figures: figures["capture_us_per_run"])
    path = write_result(
        args.result_name,
        {"benchmark": NAME, "parameters": vars(args), "machine": machine, "rounds": rounds,
         "best_round": best, "lines_kept_for_one_run": kept},
    )  # fmt: skip
    print(
        f"\nResult (best of {args.repeat} rounds, {args.runs} runs of {args.lines} lines + 1 warning): "
        f"{best['without_us_per_run']} us per run without capture, {best['with_us_per_run']} us with it: "
        f"capture costs {best['capture_us_per_run']} us and {best['redis_calls_per_run']} Redis calls per "
        f"run. Written to {path}."
    )
    return 0


if __name__ == "__main__":
    run_main(main)

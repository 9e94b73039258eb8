"""A scheduler process on a simulated clock, for tests: `python -m tests.support.sim_scheduler`.

Simulated time is `start + (real time - epoch) * speed`, so several processes given the same
epoch agree on the clock (and contend for the same fires), and a process killed and restarted
finds the clock moved on. It ticks a real `SchedulerCore` against real Redis and a real broker
until simulated time reaches `end`, writing its latest simulated time to `test:sim:{name}`.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime, timedelta

import redis

from alloysync.broker import build_broker
from alloysync.enqueue import RunQueue
from alloysync.model.registry import load_task_modules
from alloysync.scheduler import SchedulerCore
from alloysync.settings import load_settings


def simulated_now(start: datetime, epoch: float, speed: float) -> datetime:
    return start + timedelta(seconds=(time.time() - epoch) * speed)


def wait_at_barrier(client: redis.Redis, parties: int) -> float:
    """Wait until `parties` processes are ready (however slowly each started), then agree on an epoch."""
    client.incr("test:sim:ready")
    while int(client.get("test:sim:ready") or 0) < parties:
        time.sleep(0.01)
    client.set("test:sim:epoch", str(time.time() + 0.2), nx=True)
    return float(str(client.get("test:sim:epoch")))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--name", required=True)
    parser.add_argument("--start", required=True, help="simulated time at the epoch (ISO)")
    parser.add_argument("--epoch", type=float, help="real unix time of the simulated start")
    parser.add_argument(
        "--barrier",
        type=int,
        default=0,
        help="start the clock together with this many processes (no --epoch)",
    )
    parser.add_argument("--speed", type=float, required=True)
    parser.add_argument("--end", required=True, help="simulated time to stop at (ISO)")
    parser.add_argument("--interval", type=float, default=0.01, help="real seconds between ticks")
    args = parser.parse_args()
    settings = load_settings()
    registry = load_task_modules(settings.task_modules)
    client = redis.Redis.from_url(settings.effective_redis_url, decode_responses=True)
    core = SchedulerCore(settings, client, RunQueue(client, build_broker(settings), registry, settings))
    start = datetime.fromisoformat(args.start).astimezone(UTC)
    end = datetime.fromisoformat(args.end).astimezone(UTC)
    epoch = args.epoch if args.epoch is not None else wait_at_barrier(client, args.barrier)
    while True:
        now = min(simulated_now(start, epoch, args.speed), end)
        report = core.tick(now)
        client.set(f"test:sim:{args.name}", now.isoformat())
        client.incrby(f"test:sim:{args.name}:enqueued", report.enqueued)
        client.incrby(f"test:sim:{args.name}:duplicates", report.duplicates)
        if now >= end:
            return
        time.sleep(args.interval)


if __name__ == "__main__":
    main()

"""The names of every Redis key alloysync uses (Dramatiq's own keys live under `dramatiq:`).

See docs/architecture.md for what each key holds.
"""

from __future__ import annotations

PREFIX = "alloysync:"

JOBS = PREFIX + "jobs"
SYNC_CURSOR = PREFIX + "sync:cursor"
SYNC_REQUESTS = PREFIX + "sync:requests"
SYNC_THROUGH = PREFIX + "sync:through"  # start of the last completed incremental pass
SCHEDULES = PREFIX + "schedules"
SCHEDULES_CHANGED = PREFIX + "schedules:changed"  # pub/sub channel
LAST_FIRE = PREFIX + "sched:last_fire"
CATCH_UP = PREFIX + "sched:catch_up"  # item -> the fire a skipped stale fire deferred to (policy once)
RUNS_PENDING = PREFIX + "runs:pending"
RUNS_RUNNING = PREFIX + "runs:running"  # run id -> deadline (ms) of its current step
OUTBOX = PREFIX + "outbox"
OUTBOX_GROUP = "reporter"
REPORTED = PREFIX + "reported"  # item -> id of the newest outbox event written to Alloy
LEASE = PREFIX + "lease:poller"
LEASE_FENCE = PREFIX + "lease:poller:fence"
WORKERS = PREFIX + "workers"
WORKER_NAMES = PREFIX + "workers:names"


def job(item_id: str) -> str:
    return f"{PREFIX}job:{item_id}"


def job_runs(item_id: str) -> str:
    return f"{PREFIX}job:{item_id}:runs"


def run(run_id: str) -> str:
    return f"{PREFIX}run:{run_id}"

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
RUNS_CANCELLING = PREFIX + "runs:cancelling"  # running runs their worker must interrupt
OUTBOX = PREFIX + "outbox"
OUTBOX_GROUP = "reporter"
NOTIFY = PREFIX + "notify"  # notifications to send (stream), consumer group `notifier`
NOTIFY_GROUP = "notifier"
REPORTED = PREFIX + "reported"  # item -> id of the newest outbox event written to Alloy
LEASE = PREFIX + "lease:poller"
LEASE_FENCE = PREFIX + "lease:poller:fence"
WORKERS = PREFIX + "workers"
WORKER_NAMES = PREFIX + "workers:names"


def job(item_id: str) -> str:
    return f"{PREFIX}job:{item_id}"


def notify_delivered(entry_id: str) -> str:
    """Hash: target -> how delivering notification `entry_id` to it ended (sent, refused, skipped)."""
    return f"{NOTIFY}:{entry_id}:delivered"


def job_runs(item_id: str) -> str:
    return f"{PREFIX}job:{item_id}:runs"


def run(run_id: str) -> str:
    return f"{PREFIX}run:{run_id}"


def run_log(run_id: str) -> str:
    """The run's log lines (state/run_logs.py); not under `run:` so `run:*` names run records only."""
    return f"{PREFIX}runlog:{run_id}"


# Run control (Overlap, ConcurrencyKey, backfill): see state/lua/helpers.lua, which derives the
# same names inside the scripts.
def job_active(item_id: str) -> str:
    return f"{PREFIX}job:{item_id}:active"


def job_waiting(item_id: str) -> str:
    return f"{PREFIX}job:{item_id}:waiting"


def job_backfill(item_id: str) -> str:
    return f"{PREFIX}job:{item_id}:backfill"


def slot_holders(key: str) -> str:
    return f"{PREFIX}ckey:{key}:holders"


def slot_waiting(key: str) -> str:
    return f"{PREFIX}ckey:{key}:waiting"


# What the built-in tasks remember (state/builtin_memory.py).
def step_memory(run_id: str, step: int) -> str:
    """Hash: what one step of a run already did (items edited, requests sent, mail sent, wake time)."""
    return f"{PREFIX}run:{run_id}:step:{step}:memory"


def job_memory(item_id: str) -> str:
    """Hash: what the built-in tasks of a job carry from one run to the next (data.threshold)."""
    return f"{PREFIX}job:{item_id}:memory"

"""The names of every Redis key alloysync uses (Dramatiq's own keys live under `dramatiq:`).

See docs/architecture.md for what each key holds.
"""

from __future__ import annotations

from collections.abc import Callable

PREFIX = "alloysync:"

JOBS = PREFIX + "jobs"
JOBS_WITH_MAX_AGE = PREFIX + "jobs:max_age"  # set: jobs whose decision has a MaxAge (freshness)
JOBS_WITH_MAX_AGE_BUILT = PREFIX + "jobs:max_age:built"  # set once the index covers every job
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
LEGACY_REPORTED = PREFIX + "reported"  # item -> newest entry written, before it moved into the job hash
LEASE = PREFIX + "lease:poller"
LEASE_FENCE = PREFIX + "lease:poller:fence"
WORKERS = PREFIX + "workers"
WORKER_NAMES = PREFIX + "workers:names"


def _per_id(template: str) -> Callable[[str], str]:
    """The names of a family of keys, one per id: `template` under PREFIX, the id in place of `{}`."""
    return (PREFIX + template).format


job = _per_id("job:{}")
job_runs = _per_id("job:{}:runs")
run = _per_id("run:{}")
# The run's log lines (state/run_logs.py); not under `run:` so `run:*` names run records only.
run_log = _per_id("runlog:{}")
# Hash (under NOTIFY): target -> how delivering the notification to it ended (sent, refused, skipped).
notify_delivered = _per_id("notify:{}:delivered")

# Run control (Overlap, ConcurrencyKey, backfill): see state/lua/helpers.lua, which derives the
# same names inside the scripts.
job_active = _per_id("job:{}:active")
job_waiting = _per_id("job:{}:waiting")
job_backfill = _per_id("job:{}:backfill")
slot_holders = _per_id("ckey:{}:holders")
slot_waiting = _per_id("ckey:{}:waiting")

# What the built-in tasks remember (state/builtin_memory.py). Hash: what the built-in tasks of a
# job carry from one run to the next (data.threshold).
job_memory = _per_id("job:{}:memory")


def step_memory(run_id: str, step: int) -> str:
    """Hash: what one step of a run already did (items edited, requests sent, mail sent, wake time)."""
    return f"{PREFIX}run:{run_id}:step:{step}:memory"

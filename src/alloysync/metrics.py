"""Prometheus metrics: every metric alloysync exports, in one place.

Conventions: prefix `alloysync_`, base units (seconds), counters end in `_total`, labels are bounded
(task, outcome, queue, endpoint, kind, process). The one exception are the per-job gauges
(`alloysync_jobs_overdue`, `alloysync_job_*`), labelled `item_id` and `title`: only jobs that opt in
(a MaxAge) or are failing right now have series, and a job's series disappear as soon as it no
longer qualifies (see `alloysync.serve.samplers`). Their label is `title`, not `job`, because
Prometheus sets `job` to the scrape job. Worker processes run with
`PROMETHEUS_MULTIPROC_DIR` set before this module is imported (see `alloysync.worker.launch`), so
the same objects aggregate across Dramatiq's worker processes; gauges therefore name a multiprocess mode.

Which process updates what:
  serve      poll_*, sync_lag, outbox_*, reporter_*, queue_messages, workers, poller_lease_held,
             jobs, jobs_overdue, job_*, webhook_requests, alloy_* (its own client)
  worker     runs_total, run_duration, schedule_lateness, runs_started
  scheduler  scheduler_fires, schedules, schedule_tick
  all        process_heartbeat, runs_enqueued
"""

from __future__ import annotations

import threading
import time
from typing import Literal

from prometheus_client import Counter, Gauge, Histogram

from alloysync import __version__

DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 900, 1200, 1800)
LATENESS_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 20, 30, 60, 120, 300, 600)
POLL_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


# A gauge, not an Info: Info metrics are not collected in multiprocess mode (workers).
class OwnedGauge:
    """An unlabelled gauge registered on its first `set`, so only the process that owns it exports it.

    A plain unlabelled gauge is exported (as 0) by every process that imports this module: a worker
    would report a scheduler tick at time 0 and no live workers, which reads as an outage.
    """

    def __init__(
        self, name: str, documentation: str, multiprocess_mode: Literal["max", "min", "livesum"] = "max"
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.multiprocess_mode = multiprocess_mode
        self._gauge: Gauge | None = None
        self._lock = threading.Lock()
        OWNED_GAUGES.append(self)

    def set(self, value: float) -> None:
        if self._gauge is None:
            with self._lock:
                if self._gauge is None:
                    self._gauge = Gauge(
                        self.name, self.documentation, multiprocess_mode=self.multiprocess_mode
                    )
        self._gauge.set(value)

    def value(self) -> float | None:
        """The value last set in this process (None before the first `set`)."""
        return None if self._gauge is None else self._gauge._value.get()


OWNED_GAUGES: list[OwnedGauge] = []


BUILD_INFO = Gauge(
    "alloysync_build_info",
    "Always 1; the version of alloysync running.",
    ["version"],
    multiprocess_mode="max",
)
BUILD_INFO.labels(version=__version__).set(1)

PROCESS_HEARTBEAT = Gauge(
    "alloysync_process_heartbeat_timestamp_seconds",
    "Unix time of the last sign of life of this alloysync process.",
    ["process"],
    multiprocess_mode="max",
)

# --- runs (worker) -------------------------------------------------------------------------
RUNS = Counter(
    "alloysync_runs_total",
    "Runs that ended, by task and outcome (succeeded, failed; skipped: stale per the missed-runs policy, "
    "or cancelled because the job was paused or made invalid while the run waited).",
    ["task", "outcome"],
)
RUNS_STARTED = Counter("alloysync_runs_started_total", "Runs that started on a worker.", ["task"])
RUN_DURATION = Histogram(
    "alloysync_run_duration_seconds",
    "Wall time of a run from its first step's start to its end.",
    ["task"],
    buckets=DURATION_BUCKETS,
)
SCHEDULE_LATENESS = Histogram(
    "alloysync_schedule_lateness_seconds",
    "How late a scheduled run started: its start time minus the time it was scheduled for.",
    ["task"],
    buckets=LATENESS_BUCKETS,
)
OVERLAP_SKIPS = Counter(
    "alloysync_overlap_skips_total",
    "Cron fires not run because the job's previous run was still running (Overlap skip, or "
    "queue-one with a run already waiting).",
    ["task"],
)
RUNS_ENQUEUED = Counter(
    "alloysync_runs_enqueued_total",
    "Run messages put on a Dramatiq queue, by who asked (poller, request, scheduler, recovery).",
    ["source"],
)

# --- poller (serve) ------------------------------------------------------------------------
POLL_DURATION = Histogram(
    "alloysync_poll_duration_seconds",
    "Time one sync pass against Alloy took, by kind (incremental, full, webhook).",
    ["kind"],
    buckets=POLL_BUCKETS,
)
POLL_ITEMS = Counter("alloysync_poll_items_total", "Job items read from Alloy by sync passes.", ["kind"])
SYNC_LAG = OwnedGauge(
    "alloysync_sync_lag_seconds",
    "How far behind Alloy the synced state may be: now minus the start of the last completed sync pass "
    "(a pass that started at T has seen every edit made before T). Grows while passes fail or stall.",
)
SYNC_LAST_SUCCESS = OwnedGauge(
    "alloysync_sync_last_success_timestamp_seconds",
    "Unix time at which the last sync pass completed.",
)
FULL_SYNC_DURATION = OwnedGauge(
    "alloysync_full_sync_duration_seconds",
    "How long the last full reconciliation took (it is paced to a quarter of the query budget).",
)
FULL_SYNC_QUERIES = OwnedGauge(
    "alloysync_full_sync_queries",
    "AQS queries (pages) the last full reconciliation used.",
)
POLLER_LEASE_HELD = OwnedGauge(
    "alloysync_poller_lease_held",
    "1 when this serve replica holds the poller lease (is the active poller and reporter), else 0.",
)
JOBS = Gauge(
    "alloysync_jobs", "Known job records by their current status.", ["status"], multiprocess_mode="max"
)
WEBHOOK_REQUESTS = Counter(
    "alloysync_webhook_requests_total",
    "Webhook calls by outcome (accepted, unauthorized, rejected, disabled).",
    ["outcome"],
)

# --- per job (serve samples the job store; the module docstring says why they are labelled so) ---
JOB_LABELS = ("item_id", "title")
JOB_TITLE_LABEL_MAX = 80  # a job's title is cut to this many characters in the `title` label
JOBS_OVERDUE = Gauge(
    "alloysync_jobs_overdue",
    "1 while a job has had no success for longer than its MaxAge (status Overdue), else 0; "
    "one series per job with a MaxAge.",
    JOB_LABELS,
    multiprocess_mode="max",
)
JOB_LAST_SUCCESS = Gauge(
    "alloysync_job_last_success_timestamp_seconds",
    "Unix time of the last successful run of a job with a MaxAge (no series before its first success).",
    JOB_LABELS,
    multiprocess_mode="max",
)
JOB_MAX_AGE = Gauge(
    "alloysync_job_max_age_seconds",
    "A job's MaxAge: how long it may go without a success before it is Overdue.",
    JOB_LABELS,
    multiprocess_mode="max",
)
JOB_CONSECUTIVE_FAILURES = Gauge(
    "alloysync_job_consecutive_failures",
    "Failed runs of a job since its last success (ConsecutiveFailures); only jobs with at least one "
    "that are not paused.",
    JOB_LABELS,
    multiprocess_mode="max",
)

# --- outbox and reporter (serve) -----------------------------------------------------------
OUTBOX_EVENTS = OwnedGauge("alloysync_outbox_events", "Run events waiting to be written back to Alloy.")
OUTBOX_OLDEST_AGE = OwnedGauge(
    "alloysync_outbox_oldest_event_age_seconds",
    "Age of the oldest run event not yet written back to Alloy (0 when the outbox is empty).",
)
REPORTER_WRITES = Counter(
    "alloysync_reporter_writes_total",
    "Alloy item edits made by the reporter, by outcome (ok, gone, rejected, error).",
    ["outcome"],
)
REPORTER_EVENTS = Counter(
    "alloysync_reporter_events_total", "Run events written back to Alloy (after coalescing)."
)

# --- Alloy API client (any process) --------------------------------------------------------
ALLOY_REQUESTS = Counter(
    "alloysync_alloy_requests_total",
    "Requests to the Alloy API by endpoint family (query, read, write) and HTTP status (or 'error').",
    ["endpoint", "status"],
)
ALLOY_REQUEST_DURATION = Histogram(
    "alloysync_alloy_request_duration_seconds",
    "Alloy API request latency by endpoint family.",
    ["endpoint"],
    buckets=REQUEST_BUCKETS,
)
ALLOY_RATE_LIMIT_WAIT = Counter(
    "alloysync_alloy_rate_limit_wait_seconds_total",
    "Time spent waiting for the Alloy rate-limit budget, by endpoint family.",
    ["endpoint"],
)

# --- broker (serve samples Redis) ----------------------------------------------------------
QUEUE_MESSAGES = Gauge(
    "alloysync_queue_messages",
    "Messages waiting in a Dramatiq queue (ready plus delayed for retry).",
    ["queue"],
    multiprocess_mode="max",
)
WORKERS = OwnedGauge(
    "alloysync_workers",
    "Worker processes with a broker heartbeat within the heartbeat timeout.",
)

# --- scheduler -----------------------------------------------------------------------------
SCHEDULER_FIRES = Counter(
    "alloysync_scheduler_fires_total",
    "Scheduled fires by outcome (enqueued; duplicate: another scheduler had it; missed: dropped by policy).",
    ["outcome"],
)
SCHEDULES = OwnedGauge("alloysync_schedules", "Active cron and run-at schedules.")
SCHEDULER_TICK = OwnedGauge(
    "alloysync_scheduler_last_tick_timestamp_seconds",
    "Unix time of the scheduler's last pass over the schedules.",
)


def beat(process: str) -> None:
    """Record a heartbeat for this process kind."""
    PROCESS_HEARTBEAT.labels(process=process).set(time.time())

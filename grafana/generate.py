"""Generate alloysync's Grafana dashboards from code with grafana-foundation-sdk.

    python -m grafana.generate           write grafana/dashboards/*.json
    python -m grafana.generate --check   exit 1 when the committed JSON differs from the code

Dashboards (uids are stable; Grafana loads them through grafana/provisioning/dashboards):
  alloysync-overview  the whole system: runs, queues and workers, write-back, the Alloy API, sync,
                      scheduler and processes
  alloysync-task      one task (template variable `task`): runs by outcome, failure ratio, run
                      duration and schedule lateness
  alloysync-jobs      per job: overdue jobs and time since each job's last success against its
                      MaxAge, failure streaks (ConsecutiveFailures)

Every panel and every query uses the `datasource` template variable, whose default is the
provisioned Prometheus datasource (uid `alloysync-prometheus`). Panels are described declaratively
below (`PanelSpec`), laid out on the 24-column grid by `_layout`, and rendered with the SDK's
builders (a table panel merges its queries into one row per job, one column per query).
`all_panel_queries()` lists every panel expression for tests that evaluate them against a running
Prometheus; `render_query()` substitutes the Grafana variables they contain.
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple

from grafana_foundation_sdk.builders import bargauge, prometheus, stat, table, timeseries
from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dashboard_builders
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import prometheus as prometheus_models
from grafana_foundation_sdk.models.dashboard import (
    DashboardCursorSync,
    DashboardLinkType,
    DataSourceRef,
    DataTransformerConfig,
    DynamicConfigValue,
    GridPos,
    Threshold,
    ThresholdsMode,
    VariableOption,
    VariableRefresh,
    VariableSort,
)

DASHBOARDS_DIR = Path(__file__).resolve().parent / "dashboards"
DATASOURCE_UID = "alloysync-prometheus"
DATASOURCE_NAME = "Prometheus (alloysync)"
DATASOURCE_VARIABLE = "datasource"
DATASOURCE = DataSourceRef(type_val="prometheus", uid="${" + DATASOURCE_VARIABLE + "}")
TASK_VARIABLE_QUERY = "label_values(alloysync_runs_total, task)"
OVERVIEW_UID = "alloysync-overview"
TASK_UID = "alloysync-task"
JOBS_UID = "alloysync-jobs"
GRID_WIDTH = 24
TAGS = ["alloysync"]

# Prometheus job names from deploy/prometheus/prometheus.yml. Every alloysync process exports every
# unlabelled gauge of metrics.py (0 where it does not set it), so gauges owned by serve or by the
# scheduler are selected by job.
ALLOYSYNC_JOBS = "alloysync-serve|alloysync-worker|alloysync-scheduler"

RATE = "$__rate_interval"


# --- panel descriptions ------------------------------------------------------------------------


@dataclass(frozen=True)
class Query:
    """One PromQL target of a panel."""

    expr: str
    legend: str


Steps = tuple[tuple[float | None, str], ...]  # (value from which the colour applies, colour); first None


@dataclass(frozen=True)
class Column:
    """A value column of a table panel: what one of its queries returns for each row (job)."""

    header: str
    unit: str
    thresholds: Steps = ()  # colours the cell's background
    mappings: tuple[tuple[float, str, str], ...] = ()  # (value, text shown instead, colour)


@dataclass(frozen=True)
class PanelSpec:
    """What a panel shows; `_layout` decides where."""

    title: str
    description: str
    queries: tuple[Query, ...]
    unit: str
    kind: Literal["timeseries", "stat", "bargauge", "table"] = "timeseries"
    width: int = 8
    height: int = 8
    min: float | None = 0
    max: float | None = None
    # stat and bar gauge panels: the value's colour
    thresholds: Steps = ()
    links_to_task: bool = False
    # table panels: one column per query, in order, after the label columns; rows are sorted by the
    # first column, highest first
    columns: tuple[Column, ...] = ()


@dataclass(frozen=True)
class Section:
    """A row header followed by its panels."""

    title: str
    panels: tuple[PanelSpec, ...] = field(default_factory=tuple)


def _q(expr: str, legend: str) -> Query:
    return Query(" ".join(expr.split()), legend)


def _quantiles(metric: str, selector: str = "", by: str = "", window: str = RATE) -> tuple[Query, ...]:
    """p50, p95 and p99 of a histogram, optionally split by a label."""
    group = f"{by}, le" if by else "le"
    prefix = f"{{{{{by}}}}} " if by else ""
    return tuple(
        _q(
            f"histogram_quantile({q}, sum by ({group}) (rate({metric}_bucket{selector}[{window}])))",
            f"{prefix}p{round(q * 100)}",
        )
        for q in (0.5, 0.95, 0.99)
    )


def _failure_ratio(selector: str = "", by: str = "", window: str = RATE) -> str:
    """Failed runs / runs that ended (skipped runs excluded); 0 while a task has no failed series."""
    inner = selector.strip("{}")
    failed = "{" + ", ".join(part for part in (inner, 'outcome="failed"') if part) + "}"
    ended = "{" + ", ".join(part for part in (inner, 'outcome!="skipped"') if part) + "}"
    total = f"sum by ({by}) " if by else "sum"
    ratio = (
        f"{total}(rate(alloysync_runs_total{failed}[{window}])) "
        f"/ {total}(rate(alloysync_runs_total{ended}[{window}]))"
    )
    fallback = f"{total}(rate(alloysync_runs_total{selector}[{window}])) * 0"
    return f"{ratio} or {fallback}"


UP_GREEN_ONE = ((None, "red"), (1, "green"))

OVERVIEW: tuple[Section, ...] = (
    Section(
        "Health at a glance",
        (
            PanelSpec(
                "Failure ratio (last hour)",
                "Runs that failed among the runs that ended in the last hour, all tasks (skipped runs "
                "not counted). Alert: AlloySyncJobsFailing (per task).",
                (_q(_failure_ratio(window="1h"), "failure ratio"),),
                "percentunit",
                kind="stat",
                width=4,
                height=4,
                max=1,
                thresholds=((None, "green"), (0.05, "orange"), (0.25, "red")),
            ),
            PanelSpec(
                "Workers alive",
                "Dramatiq worker processes with a broker heartbeat within the heartbeat timeout "
                "(alloysync_workers, sampled by serve). Alert: AlloySyncNoWorkers.",
                (_q('max(alloysync_workers{job="alloysync-serve"})', "workers"),),
                "short",
                kind="stat",
                width=4,
                height=4,
                thresholds=UP_GREEN_ONE,
            ),
            PanelSpec(
                "Poller lease holders",
                "Serve replicas holding the poller lease; exactly 1 is healthy. Alerts: "
                "AlloySyncNoPollerLeaseHolder, AlloySyncMultiplePollerLeaseHolders.",
                (_q('sum(alloysync_poller_lease_held{job="alloysync-serve"})', "lease holders"),),
                "short",
                kind="stat",
                width=4,
                height=4,
                thresholds=((None, "red"), (1, "green"), (2, "orange")),
            ),
            PanelSpec(
                "Queued messages",
                "Messages waiting in all Dramatiq queues (ready plus delayed for retry). "
                "Alert: AlloySyncQueueBacklogGrowing.",
                (_q("sum(max by (queue) (alloysync_queue_messages))", "messages"),),
                "short",
                kind="stat",
                width=4,
                height=4,
                thresholds=((None, "green"), (100, "orange")),
            ),
            PanelSpec(
                "Oldest outbox event",
                "Age of the oldest run event not yet written back to Alloy (0 when the outbox is "
                "empty). Alert: AlloySyncStatusWriteBackStalled.",
                (_q('max(alloysync_outbox_oldest_event_age_seconds{job="alloysync-serve"})', "age"),),
                "s",
                kind="stat",
                width=4,
                height=4,
                thresholds=((None, "green"), (300, "orange"), (900, "red")),
            ),
            PanelSpec(
                "Sync lag",
                "Now minus the newest lastEditDate the poller has synced from Alloy. "
                "Alert: AlloySyncSyncLagHigh.",
                (_q('max(alloysync_sync_lag_seconds{job="alloysync-serve"})', "sync lag"),),
                "s",
                kind="stat",
                width=4,
                height=4,
                thresholds=((None, "green"), (300, "orange"), (600, "red")),
            ),
        ),
    ),
    Section(
        "Runs",
        (
            PanelSpec(
                "Runs per second by outcome",
                "Runs that ended per second, all tasks, by outcome (succeeded, failed, skipped).",
                (_q(f"sum by (outcome) (rate(alloysync_runs_total[{RATE}]))", "{{outcome}}"),),
                "ops",
            ),
            PanelSpec(
                "Failure ratio",
                "Failed runs among the runs that ended (skipped runs not counted), for all tasks and "
                "per task. Click a task's series to open its dashboard.",
                (
                    _q(_failure_ratio(), "all tasks"),
                    _q(_failure_ratio(by="task"), "{{task}}"),
                ),
                "percentunit",
                max=1,
                links_to_task=True,
            ),
            PanelSpec(
                "Run duration percentiles",
                "Wall time of a run from its first step's start to its end "
                "(alloysync_run_duration_seconds), all tasks.",
                _quantiles("alloysync_run_duration_seconds"),
                "s",
            ),
            PanelSpec(
                "Runs enqueued and started",
                "Run messages put on a Dramatiq queue per second by who asked (poller, request, "
                "scheduler, recovery), and runs that started on a worker.",
                (
                    _q(
                        f"sum by (source) (rate(alloysync_runs_enqueued_total[{RATE}]))",
                        "enqueued by {{source}}",
                    ),
                    _q(f"sum(rate(alloysync_runs_started_total[{RATE}]))", "started"),
                ),
                "ops",
            ),
            PanelSpec(
                "Schedule lateness percentiles",
                "How late scheduled (cron and run-at) runs started: start time minus scheduled time. "
                "Alert: AlloySyncScheduledRunsLate (p95 over 15 minutes).",
                _quantiles("alloysync_schedule_lateness_seconds"),
                "s",
            ),
            PanelSpec(
                "Run duration p95 by task",
                "95th percentile of run wall time per task. Click a series to open the task's dashboard.",
                (
                    _q(
                        "histogram_quantile(0.95, sum by (task, le) "
                        f"(rate(alloysync_run_duration_seconds_bucket[{RATE}])))",
                        "{{task}}",
                    ),
                ),
                "s",
                links_to_task=True,
            ),
        ),
    ),
    Section(
        "Queues and workers",
        (
            PanelSpec(
                "Queue depth",
                "Messages waiting per Dramatiq queue (Redis list dramatiq:<queue> plus its delay "
                "queue), sampled by serve.",
                (_q("max by (queue) (alloysync_queue_messages)", "{{queue}}"),),
                "short",
            ),
            PanelSpec(
                "Workers",
                "Worker processes with a broker heartbeat (alloysync_workers) and worker metrics "
                "targets Prometheus can scrape (up).",
                (
                    _q('max(alloysync_workers{job="alloysync-serve"})', "with heartbeat"),
                    _q('sum(up{job="alloysync-worker"})', "targets up"),
                ),
                "short",
                width=4,
            ),
            PanelSpec(
                "Messages in progress",
                "Messages the Dramatiq workers are processing right now, by queue.",
                (_q("sum by (queue_name) (dramatiq_messages_inprogress)", "{{queue_name}}"),),
                "short",
                width=6,
            ),
            PanelSpec(
                "Dramatiq errors, retries and rejects",
                "Messages per second that raised, were retried or were dead-lettered "
                "(Dramatiq's middleware; 0 when none happened yet).",
                (
                    _q(f"sum(rate(dramatiq_message_errors_total[{RATE}])) or vector(0)", "errors"),
                    # Dramatiq counts a retry on the delay queue (`<queue>.DQ`) and again when it
                    # is re-enqueued on the queue itself: count it once.
                    _q(
                        "sum(rate(dramatiq_message_retries_total"
                        f'{{queue_name!~".*\\\\.DQ"}}[{RATE}])) or vector(0)',
                        "retries",
                    ),
                    _q(f"sum(rate(dramatiq_message_rejects_total[{RATE}])) or vector(0)", "rejects"),
                ),
                "ops",
                width=6,
            ),
        ),
    ),
    Section(
        "Write-back to Alloy",
        (
            PanelSpec(
                "Outbox depth",
                "Run events in the outbox (stream alloysync:outbox) waiting to be written back to Alloy.",
                (_q('max(alloysync_outbox_events{job="alloysync-serve"})', "events"),),
                "short",
            ),
            PanelSpec(
                "Oldest outbox event age",
                "Age of the oldest run event not yet written back (0 when the outbox is empty). "
                "Alert: AlloySyncStatusWriteBackStalled (> 15 minutes).",
                (
                    _q(
                        'max(alloysync_outbox_oldest_event_age_seconds{job="alloysync-serve"})',
                        "oldest event",
                    ),
                ),
                "s",
            ),
            PanelSpec(
                "Reporter writes",
                "Alloy item edits made by the reporter per second by outcome (ok, gone, rejected, "
                "error), and run events they carried after coalescing. Alert: AlloySyncStatusWritesFailing.",
                (
                    _q(
                        f"sum by (outcome) (rate(alloysync_reporter_writes_total[{RATE}]))",
                        "edits {{outcome}}",
                    ),
                    _q(f"sum(rate(alloysync_reporter_events_total[{RATE}]))", "events written"),
                ),
                "ops",
            ),
        ),
    ),
    Section(
        "Alloy API",
        (
            PanelSpec(
                "Alloy requests by status",
                "Requests to the Alloy API per second by HTTP status ('error' = no response). "
                "Alerts: AlloySyncAlloyUnreachable, AlloySyncAlloyUnauthorized, AlloySyncAlloyRateLimited.",
                (_q(f"sum by (status) (rate(alloysync_alloy_requests_total[{RATE}]))", "{{status}}"),),
                "reqps",
            ),
            PanelSpec(
                "Alloy request latency",
                "Median and 95th percentile Alloy API latency by endpoint family (query, read, write).",
                (
                    _q(
                        "histogram_quantile(0.5, sum by (endpoint, le) "
                        f"(rate(alloysync_alloy_request_duration_seconds_bucket[{RATE}])))",
                        "{{endpoint}} p50",
                    ),
                    _q(
                        "histogram_quantile(0.95, sum by (endpoint, le) "
                        f"(rate(alloysync_alloy_request_duration_seconds_bucket[{RATE}])))",
                        "{{endpoint}} p95",
                    ),
                ),
                "s",
            ),
            PanelSpec(
                "Rate-limit waits",
                "Seconds spent waiting for the client-side Alloy rate-limit budget per second, by "
                "endpoint family (0.5 = on average half a caller always waiting). "
                "Alert: AlloySyncAlloyRateLimitSaturated.",
                (
                    _q(
                        f"sum by (endpoint) (rate(alloysync_alloy_rate_limit_wait_seconds_total[{RATE}])) or "
                        "sum by (endpoint) "
                        f"(rate(alloysync_alloy_request_duration_seconds_count[{RATE}])) * 0",
                        "{{endpoint}}",
                    ),
                ),
                "s",
            ),
        ),
    ),
    Section(
        "Sync and scheduler",
        (
            PanelSpec(
                "Sync lag",
                "Now minus the newest lastEditDate the poller has synced, and the time since the "
                "last completed sync pass. Alerts: AlloySyncSyncLagHigh, AlloySyncSyncStalled.",
                (
                    _q('max(alloysync_sync_lag_seconds{job="alloysync-serve"})', "sync lag"),
                    _q(
                        'time() - max(alloysync_sync_last_success_timestamp_seconds{job="alloysync-serve"})',
                        "since last completed pass",
                    ),
                ),
                "s",
                width=6,
            ),
            PanelSpec(
                "Sync pass duration p95",
                "95th percentile of the time one sync pass against Alloy took, by kind "
                "(incremental, full, webhook).",
                (
                    _q(
                        "histogram_quantile(0.95, sum by (kind, le) "
                        f"(rate(alloysync_poll_duration_seconds_bucket[{RATE}])))",
                        "{{kind}}",
                    ),
                ),
                "s",
                width=6,
            ),
            PanelSpec(
                "Jobs by status",
                "Known job records by their current status (Scheduled, Queued, Running, Succeeded, "
                "Failed, Invalid).",
                (_q("max by (status) (alloysync_jobs)", "{{status}}"),),
                "short",
                width=6,
            ),
            PanelSpec(
                "Scheduler fires by outcome",
                "Scheduled fires per second by outcome (enqueued, duplicate = another scheduler had "
                "it, missed = skipped by the missed-runs policy); 0 before the first fire.",
                (
                    _q(
                        f"sum by (outcome) (rate(alloysync_scheduler_fires_total[{RATE}])) or on() vector(0)",
                        "{{outcome}}",
                    ),
                ),
                "ops",
                width=6,
            ),
        ),
    ),
    Section(
        "Processes",
        (
            PanelSpec(
                "Targets up",
                "alloysync processes Prometheus can scrape, per job. Alert: AlloySyncTargetDown.",
                (_q(f'sum by (job) (up{{job=~"{ALLOYSYNC_JOBS}"}})', "{{job}}"),),
                "short",
                kind="stat",
                width=6,
                thresholds=UP_GREEN_ONE,
            ),
            PanelSpec(
                "Time since last heartbeat",
                "Seconds since each alloysync process last showed a sign of life "
                "(alloysync_process_heartbeat_timestamp_seconds).",
                (
                    _q(
                        "time() - max by (job, instance, process) "
                        "(alloysync_process_heartbeat_timestamp_seconds)",
                        "{{process}} {{instance}}",
                    ),
                ),
                "s",
                width=6,
            ),
            PanelSpec(
                "Poller lease by replica",
                "1 for the serve replica that holds the poller lease (the active poller and reporter).",
                (
                    _q(
                        'max by (instance) (alloysync_poller_lease_held{job="alloysync-serve"})',
                        "{{instance}}",
                    ),
                ),
                "short",
                width=6,
                max=1,
            ),
            PanelSpec(
                "Time since last scheduler pass",
                "Seconds since the newest scheduler pass over the schedules (any scheduler replica). "
                "Alerts: AlloySyncSchedulerStalled, AlloySyncSchedulerDown.",
                (
                    _q(
                        "time() - max(alloysync_scheduler_last_tick_timestamp_seconds"
                        '{job="alloysync-scheduler"})',
                        "since last pass",
                    ),
                ),
                "s",
                width=6,
            ),
            PanelSpec(
                "Webhook requests by outcome",
                "Calls to serve's Alloy webhook per second by outcome (accepted, unauthorized, "
                "rejected, disabled); 0 before the first call.",
                (
                    _q(
                        f"sum by (outcome) (rate(alloysync_webhook_requests_total[{RATE}])) "
                        "or on() vector(0)",
                        "{{outcome}}",
                    ),
                ),
                "reqps",
            ),
            PanelSpec(
                "Active schedules",
                "Active cron and run-at schedules the scheduler fires.",
                (_q('max(alloysync_schedules{job="alloysync-scheduler"})', "schedules"),),
                "short",
            ),
            PanelSpec(
                "Versions running",
                "alloysync processes per Prometheus job and alloysync version (alloysync_build_info).",
                (_q("count by (job, version) (alloysync_build_info)", "{{job}} {{version}}"),),
                "short",
                kind="stat",
            ),
        ),
    ),
)

TASK_SELECTOR = '{task="$task"}'

TASK: tuple[Section, ...] = (
    Section(
        "Task $task: last hour",
        (
            PanelSpec(
                "Runs (last hour)",
                "Runs of this task that ended in the last hour, any outcome.",
                (_q(f"sum(increase(alloysync_runs_total{TASK_SELECTOR}[1h]))", "runs"),),
                "short",
                kind="stat",
                width=6,
                height=4,
            ),
            PanelSpec(
                "Failure ratio (last hour)",
                "Failed runs among the runs of this task that ended in the last hour (skipped runs "
                "not counted).",
                (_q(_failure_ratio(TASK_SELECTOR, window="1h"), "failure ratio"),),
                "percentunit",
                kind="stat",
                width=6,
                height=4,
                max=1,
                thresholds=((None, "green"), (0.05, "orange"), (0.25, "red")),
            ),
            PanelSpec(
                "Run duration p95 (last hour)",
                "95th percentile wall time of this task's runs in the last hour.",
                (
                    _q(
                        "histogram_quantile(0.95, sum by (le) "
                        f"(rate(alloysync_run_duration_seconds_bucket{TASK_SELECTOR}[1h])))",
                        "p95",
                    ),
                ),
                "s",
                kind="stat",
                width=6,
                height=4,
            ),
            PanelSpec(
                "Schedule lateness p95 (last hour)",
                "95th percentile of how late this task's scheduled runs started in the last hour "
                "(empty for a task that only runs on request).",
                (
                    _q(
                        "histogram_quantile(0.95, sum by (le) "
                        f"(rate(alloysync_schedule_lateness_seconds_bucket{TASK_SELECTOR}[1h])))",
                        "p95",
                    ),
                ),
                "s",
                kind="stat",
                width=6,
                height=4,
                thresholds=((None, "green"), (10, "orange"), (60, "red")),
            ),
        ),
    ),
    Section(
        "Task $task: over time",
        (
            PanelSpec(
                "Runs by outcome",
                "Runs of this task that ended per second by outcome, and runs that started.",
                (
                    _q(
                        f"sum by (outcome) (rate(alloysync_runs_total{TASK_SELECTOR}[{RATE}]))",
                        "{{outcome}}",
                    ),
                    _q(f"sum(rate(alloysync_runs_started_total{TASK_SELECTOR}[{RATE}]))", "started"),
                ),
                "ops",
                width=12,
            ),
            PanelSpec(
                "Failure ratio",
                "Failed runs among the runs of this task that ended (skipped runs not counted). "
                "Alert: AlloySyncJobsFailing (above 25 % over 15 minutes, at least 3 failures).",
                (_q(_failure_ratio(TASK_SELECTOR), "failure ratio"),),
                "percentunit",
                width=12,
                max=1,
            ),
            PanelSpec(
                "Run duration percentiles",
                "Wall time of this task's runs from the first step's start to the end.",
                _quantiles("alloysync_run_duration_seconds", TASK_SELECTOR),
                "s",
                width=12,
            ),
            PanelSpec(
                "Schedule lateness percentiles",
                "How late this task's scheduled (cron and run-at) runs started; empty for a task that "
                "only runs on request.",
                _quantiles("alloysync_schedule_lateness_seconds", TASK_SELECTOR),
                "s",
                width=12,
            ),
        ),
    ),
)


# Per-job gauges (exported by every serve replica, labels item_id and title): max by job counts
# each job once however many replicas export it.
OVERDUE_BY_JOB = "max by (item_id, title) (alloysync_jobs_overdue)"
STREAK_BY_JOB = "max by (item_id, title) (alloysync_job_consecutive_failures)"
MAX_AGE_BY_JOB = "max by (item_id, title) (alloysync_job_max_age_seconds)"
SINCE_SUCCESS_BY_JOB = "time() - max by (item_id, title) (alloysync_job_last_success_timestamp_seconds)"
SHARE_OF_MAX_AGE_BY_JOB = f"({SINCE_SUCCESS_BY_JOB}) / {MAX_AGE_BY_JOB}"
SHARE_STEPS: Steps = ((None, "green"), (0.75, "orange"), (1, "red"))
STREAK_STEPS: Steps = ((None, "orange"), (3, "red"))
STREAK_TOP = 15

JOBS: tuple[Section, ...] = (
    Section(
        "Jobs at a glance",
        (
            PanelSpec(
                "Overdue jobs",
                "Jobs that have had no success for longer than their MaxAge (status Overdue): "
                "the scheduler down, runs stuck in a queue or a job that keeps failing. "
                "Alert: AlloySyncJobOverdue.",
                (_q(f"sum({OVERDUE_BY_JOB}) or vector(0)", "overdue"),),
                "short",
                kind="stat",
                width=6,
                height=4,
                thresholds=((None, "green"), (1, "red")),
            ),
            PanelSpec(
                "Jobs with a MaxAge",
                "Jobs whose record sets MaxAge (a freshness deadline), overdue or not.",
                (_q(f"count({OVERDUE_BY_JOB}) or vector(0)", "jobs"),),
                "short",
                kind="stat",
                width=6,
                height=4,
            ),
            PanelSpec(
                "Jobs failing in a row",
                "Jobs whose last run failed: ConsecutiveFailures is at least 1 (it is 0 again after "
                "the next success).",
                (_q(f"count({STREAK_BY_JOB}) or vector(0)", "jobs"),),
                "short",
                kind="stat",
                width=6,
                height=4,
                thresholds=((None, "green"), (1, "orange")),
            ),
            PanelSpec(
                "Longest failure streak",
                "The most failed runs in a row of any job since its last success. "
                "Alert: AlloySyncJobFailureStreak (3 or more).",
                (_q(f"max({STREAK_BY_JOB}) or vector(0)", "failures in a row"),),
                "short",
                kind="stat",
                width=6,
                height=4,
                thresholds=((None, "green"), (1, "orange"), (3, "red")),
            ),
        ),
    ),
    Section(
        "Freshness (MaxAge)",
        (
            PanelSpec(
                "Freshness per job",
                "One row per job with a MaxAge, overdue first: time since its last success (empty "
                "before the first one; MaxAge then counts from when alloysync first saw the job), "
                "its MaxAge and the share of it used. Alert: AlloySyncJobOverdue.",
                (
                    _q(OVERDUE_BY_JOB, "overdue"),
                    _q(SINCE_SUCCESS_BY_JOB, "since last success"),
                    _q(MAX_AGE_BY_JOB, "MaxAge"),
                    _q(SHARE_OF_MAX_AGE_BY_JOB, "share of MaxAge"),
                ),
                "short",
                kind="table",
                width=14,
                height=9,
                columns=(
                    Column("Overdue", "short", mappings=((0, "no", "green"), (1, "OVERDUE", "red"))),
                    Column("Since last success", "s"),
                    Column("MaxAge", "s"),
                    Column("Share of MaxAge", "percentunit", thresholds=SHARE_STEPS),
                ),
            ),
            PanelSpec(
                "Time since last success, share of MaxAge",
                "Per job with a MaxAge that has succeeded: time since its last success divided by "
                "its MaxAge. At 100 % the job is overdue.",
                (_q(f"sort_desc({SHARE_OF_MAX_AGE_BY_JOB})", "{{title}}"),),
                "percentunit",
                kind="bargauge",
                width=10,
                height=9,
                max=1,
                thresholds=SHARE_STEPS,
            ),
            PanelSpec(
                "Time since last success",
                "Per job with a MaxAge: seconds since its last successful run "
                "(alloysync_job_last_success_timestamp_seconds).",
                (_q(SINCE_SUCCESS_BY_JOB, "{{title}}"),),
                "s",
                width=12,
            ),
            PanelSpec(
                "Overdue jobs over time",
                "Jobs with status Overdue (no success for longer than their MaxAge). "
                "Alert: AlloySyncJobOverdue.",
                (_q(f"sum({OVERDUE_BY_JOB}) or vector(0)", "overdue jobs"),),
                "short",
                width=12,
            ),
        ),
    ),
    Section(
        "Failure streaks",
        (
            PanelSpec(
                "Failing jobs",
                "One row per job whose last run failed, longest streak first: its failed runs "
                "since the last success (ConsecutiveFailures). Alert: AlloySyncJobFailureStreak.",
                (_q(STREAK_BY_JOB, "failures in a row"),),
                "short",
                kind="table",
                width=12,
                height=9,
                columns=(Column("Failures in a row", "short", thresholds=STREAK_STEPS),),
            ),
            PanelSpec(
                "Longest failure streaks",
                f"The {STREAK_TOP} longest failure streaks: failed runs of a job since its last "
                "success. Alert: AlloySyncJobFailureStreak (3 or more).",
                (_q(f"sort_desc(topk({STREAK_TOP}, {STREAK_BY_JOB}))", "{{title}}"),),
                "short",
                kind="bargauge",
                width=12,
                height=9,
                thresholds=STREAK_STEPS,
            ),
            PanelSpec(
                "Failure streaks over time",
                "Failed runs in a row per job; a job's line ends when it succeeds again.",
                (_q(STREAK_BY_JOB, "{{title}}"),),
                "short",
                width=24,
            ),
        ),
    ),
)

# --- building ------------------------------------------------------------------------------------


def _layout(sections: Sequence[Section]) -> Iterator[tuple[Section | PanelSpec, GridPos]]:
    """Place row headers and panels left to right, wrapping at 24 columns."""
    y = 0
    for section in sections:
        yield section, GridPos(h=1, w=GRID_WIDTH, x=0, y=y)
        y += 1
        x = 0
        line_height = 0
        for spec in section.panels:
            if spec.width > GRID_WIDTH:
                raise ValueError(f"panel {spec.title!r} is wider than the grid")
            if x + spec.width > GRID_WIDTH:
                y += line_height
                x = 0
                line_height = 0
            yield spec, GridPos(h=spec.height, w=spec.width, x=x, y=y)
            x += spec.width
            line_height = max(line_height, spec.height)
        y += line_height


def _target(query: Query, ref_id: str, *, instant: bool, table_format: bool = False) -> prometheus.Dataquery:
    target = (
        prometheus.Dataquery()
        .expr(query.expr)
        .legend_format(query.legend)
        .ref_id(ref_id)
        .datasource(DATASOURCE)
        .editor_mode(prometheus_models.QueryEditorMode.CODE)
    )
    if table_format:
        target = target.format(prometheus_models.PromQueryFormat.TABLE)
    return target.instant() if instant else target.range()


def _thresholds(steps: Steps) -> dashboard_builders.ThresholdsConfig:
    return (
        dashboard_builders.ThresholdsConfig()
        .mode(ThresholdsMode.ABSOLUTE)
        .steps([Threshold(value=value, color=color) for value, color in steps])
    )


def _task_link() -> dashboard_builders.DashboardLink:
    return (
        dashboard_builders.DashboardLink("Open the task's dashboard")
        .type(DashboardLinkType.LINK)
        .url(f"/d/{TASK_UID}/alloysync-task?var-task=${{__field.labels.task}}&${{__url_time_range}}")
    )


REFS = "ABCDEFGHIJ"
# Label columns of the per-job tables, in order, with their headers.
TABLE_LABEL_COLUMNS = (("title", "Job"), ("item_id", "Item id"))


def _table_value_field(ref_id: str, queries: int) -> str:
    """The name Grafana gives the value column of a Prometheus query in table format."""
    return "Value" if queries == 1 else f"Value #{ref_id}"


def _column_properties(column: Column) -> list[DynamicConfigValue]:
    properties = [DynamicConfigValue(id_val="unit", value=column.unit)]
    if column.thresholds:
        steps = [{"color": color, "value": value} for value, color in column.thresholds]
        properties.append(DynamicConfigValue(id_val="thresholds", value={"mode": "absolute", "steps": steps}))
    if column.mappings:
        options = {
            f"{value:g}": {"text": text, "color": color, "index": index}
            for index, (value, text, color) in enumerate(column.mappings)
        }
        mapping = {"type": "value", "options": options}
        properties.append(DynamicConfigValue(id_val="mappings", value=[mapping]))
    if column.thresholds or column.mappings:
        properties.append(DynamicConfigValue(id_val="custom.cellOptions", value={"type": "color-background"}))
    return properties


def _table_panel(spec: PanelSpec) -> table.Panel:
    """One row per job: the queries' results merged on their labels, one value column per query."""
    if len(spec.columns) != len(spec.queries) or not spec.columns:
        raise ValueError(f"table panel {spec.title!r} needs exactly one column per query")
    value_fields = [_table_value_field(REFS[i], len(spec.queries)) for i in range(len(spec.queries))]
    headers = dict(TABLE_LABEL_COLUMNS) | {
        field: column.header for field, column in zip(value_fields, spec.columns, strict=True)
    }
    organize = {
        "excludeByName": {"Time": True},
        "indexByName": {name: index for index, name in enumerate(headers)},
        "renameByName": headers,
    }
    panel = (
        table.Panel()
        .with_transformation(DataTransformerConfig(id_val="merge", options={}))
        .with_transformation(DataTransformerConfig(id_val="organize", options=organize))
        .sort_by([common_builders.TableSortByFieldState().display_name(spec.columns[0].header).desc(True)])
        .filterable(True)
    )
    for column in spec.columns:
        panel = panel.override_by_name(column.header, _column_properties(column))
    return panel


def _stat_panel(spec: PanelSpec) -> stat.Panel:
    return (
        stat.Panel()
        .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .color_mode(common.BigValueColorMode.VALUE)
        .graph_mode(common.BigValueGraphMode.NONE)
        .text_mode(common.BigValueTextMode.AUTO)
        .thresholds(_thresholds(spec.thresholds or ((None, "text"),)))
    )


def _bargauge_panel(spec: PanelSpec) -> bargauge.Panel:
    """One bar per series (per job), named by the query's legend."""
    return (
        bargauge.Panel()
        .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .orientation(common.VizOrientation.HORIZONTAL)
        .display_mode(common.BarGaugeDisplayMode.GRADIENT)
        .show_unfilled(True)
        .thresholds(_thresholds(spec.thresholds or ((None, "text"),)))
    )


def _timeseries_panel(spec: PanelSpec) -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .line_width(1)
        .fill_opacity(10)
        .show_points(common.VisibilityMode.NEVER)
        .legend(
            common_builders.VizLegendOptions()
            .display_mode(common.LegendDisplayMode.LIST)
            .placement(common.LegendPlacement.BOTTOM)
            .show_legend(True)
        )
        .tooltip(
            common_builders.VizTooltipOptions()
            .mode(common.TooltipDisplayMode.MULTI)
            .sort(common.SortOrder.DESCENDING)
        )
    )
    if spec.links_to_task:
        panel = panel.data_links([_task_link()])
    return panel


AnyPanel = timeseries.Panel | stat.Panel | bargauge.Panel | table.Panel


def _panel(spec: PanelSpec, panel_id: int, grid: GridPos) -> AnyPanel:
    if len(spec.queries) > len(REFS):
        raise ValueError(f"panel {spec.title!r} has too many queries")
    if spec.columns and spec.kind != "table":
        raise ValueError(f"panel {spec.title!r}: only table panels have columns")
    panel: AnyPanel
    if spec.kind == "stat":
        panel = _stat_panel(spec)
    elif spec.kind == "bargauge":
        panel = _bargauge_panel(spec)
    elif spec.kind == "table":
        panel = _table_panel(spec)
    else:
        panel = _timeseries_panel(spec)
    instant = spec.kind != "timeseries"
    panel = (
        panel.id(panel_id)
        .title(spec.title)
        .description(spec.description)
        .datasource(DATASOURCE)
        .grid_pos(grid)
        .unit(spec.unit)
        .targets(
            [
                _target(query, REFS[i], instant=instant, table_format=spec.kind == "table")
                for i, query in enumerate(spec.queries)
            ]
        )
    )
    if spec.min is not None:
        panel = panel.min(spec.min)
    if spec.max is not None:
        panel = panel.max(spec.max)
    return panel


def _datasource_variable() -> dashboard_builders.DatasourceVariable:
    return (
        dashboard_builders.DatasourceVariable(DATASOURCE_VARIABLE)
        .label("Data source")
        .type("prometheus")
        .current(VariableOption(selected=True, text=DATASOURCE_NAME, value=DATASOURCE_UID))
    )


def _dashboard(
    uid: str,
    title: str,
    description: str,
    sections: Sequence[Section],
    variables: Sequence[dashboard_builders.QueryVariable] = (),
) -> dashboard_builders.Dashboard:
    builder = (
        dashboard_builders.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(TAGS)
        .editable()
        .tooltip(DashboardCursorSync.CROSSHAIR)
        .time("now-6h", "now")
        .timezone("browser")
        .refresh("30s")
        .with_variable(_datasource_variable())
        .link(
            dashboard_builders.DashboardLink("alloysync dashboards")
            .type(DashboardLinkType.DASHBOARDS)
            .tags(TAGS)
            .as_dropdown(True)
            .keep_time(True)
            .include_vars(False)
        )
    )
    for variable in variables:
        builder = builder.with_variable(variable)
    for panel_id, (item, grid) in enumerate(_layout(sections), start=1):
        if isinstance(item, Section):
            builder = builder.with_row(
                dashboard_builders.Row(item.title).id(panel_id).grid_pos(grid).datasource(DATASOURCE)
            )
        else:
            builder = builder.with_panel(_panel(item, panel_id, grid))
    return builder


def overview_dashboard() -> dashboard_builders.Dashboard:
    return _dashboard(
        OVERVIEW_UID,
        "alloysync overview",
        "Runs, queues and workers, status write-back, the Alloy API, sync, scheduler and processes "
        "of one alloysync installation.",
        OVERVIEW,
    )


def task_dashboard() -> dashboard_builders.Dashboard:
    task_variable = (
        dashboard_builders.QueryVariable("task")
        .label("Task")
        .description("A task that has ended at least one run (label task of alloysync_runs_total).")
        .datasource(DATASOURCE)
        .query(TASK_VARIABLE_QUERY)
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.ALPHABETICAL_ASC)
        .multi(False)
        .include_all(False)
    )
    return _dashboard(
        TASK_UID,
        "alloysync task",
        "Runs by outcome, failure ratio, run duration and schedule lateness of one task.",
        TASK,
        [task_variable],
    )


def jobs_dashboard() -> dashboard_builders.Dashboard:
    return _dashboard(
        JOBS_UID,
        "alloysync jobs",
        "Per job: overdue jobs and the time since each job's last success against its MaxAge, and "
        "jobs failing in a row (ConsecutiveFailures).",
        JOBS,
    )


def dashboards() -> dict[str, dict[str, Any]]:
    """File name → dashboard JSON (as plain data) for every dashboard."""
    result: dict[str, dict[str, Any]] = {}
    for builder in (overview_dashboard(), task_dashboard(), jobs_dashboard()):
        data = json.loads(json.dumps(builder.build(), cls=JSONEncoder))
        result[f"{data['uid']}.json"] = data
    return result


def render(data: dict[str, Any]) -> str:
    """The committed form of a dashboard: sorted keys, two-space indent, trailing newline."""
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


# --- queries, for tests that evaluate them ---------------------------------------------------------


class PanelQuery(NamedTuple):
    dashboard: str  # dashboard uid
    panel: str  # panel title
    expr: str  # PromQL with Grafana variables ($task, $__rate_interval) left in


def all_panel_queries() -> list[PanelQuery]:
    """Every PromQL expression of every panel, in dashboard order."""
    queries: list[PanelQuery] = []
    for data in dashboards().values():
        for panel in data.get("panels", []):
            for target in panel.get("targets", []):
                queries.append(PanelQuery(data["uid"], panel["title"], target["expr"]))
    return queries


def variable_queries() -> list[PanelQuery]:
    """The template variables' queries (`label_values(...)`) as (dashboard, variable, query)."""
    found: list[PanelQuery] = []
    for data in dashboards().values():
        for variable in data.get("templating", {}).get("list", []):
            if variable.get("type") == "query":
                found.append(PanelQuery(data["uid"], variable["name"], str(variable["query"])))
    return found


_VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


def render_query(expr: str, *, task: str | None = None, rate_interval: str = "1m") -> str:
    """Substitute Grafana's variables so that Prometheus can evaluate `expr` directly.

    `$__rate_interval` becomes `rate_interval` (Grafana uses 4 x the 15 s scrape interval = 1m);
    `$task` becomes `task`, which is required when the expression uses it.
    """

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name == "__rate_interval":
            return rate_interval
        if name == "task":
            if task is None:
                raise ValueError(f"expression uses $task; pass task=...: {expr}")
            return task.replace("\\", "\\\\").replace('"', '\\"')
        raise ValueError(f"unknown Grafana variable ${name} in {expr}")

    return _VARIABLE.sub(substitute, expr)


# --- command line --------------------------------------------------------------------------------


def _check_metrics(data: dict[str, Any]) -> list[str]:
    from grafana.promql import known_metric_names, metric_names

    known = known_metric_names()
    problems = []
    for query in all_panel_queries():
        if query.dashboard != data["uid"]:
            continue
        unknown = metric_names(render_query(query.expr, task="x")) - known
        if unknown:
            problems.append(f"{query.dashboard} / {query.panel}: unknown metrics {sorted(unknown)}")
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m grafana.generate",
        description="Write alloysync's Grafana dashboards (grafana/dashboards/*.json) from code.",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 when the committed JSON differs from what the code generates",
    )
    parser.add_argument("--output-dir", type=Path, default=DASHBOARDS_DIR, help="default: %(default)s")
    args = parser.parse_args(argv)

    generated = dashboards()
    problems = [problem for data in generated.values() for problem in _check_metrics(data)]
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 1

    out: Path = args.output_dir
    stale = []
    for name, data in sorted(generated.items()):
        text = render(data)
        path = out / name
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            continue
        if args.check:
            stale.append(name)
            diff = difflib.unified_diff(
                (current or "").splitlines(keepends=True),
                text.splitlines(keepends=True),
                fromfile=f"{path} (committed)",
                tofile=f"{path} (generated)",
                n=2,
            )
            sys.stderr.writelines(list(diff)[:80])
        else:
            out.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}")
    if stale:
        print(
            f"\n{len(stale)} dashboard(s) out of date: {', '.join(stale)}; run `python -m grafana.generate`",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    if __package__ in (None, ""):
        # `python grafana/generate.py`: make the repository root importable for `grafana.promql`.
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    sys.exit(main())

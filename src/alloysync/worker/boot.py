"""The broker module Dramatiq's worker CLI imports in every worker process (`alloysync worker`).

It builds the broker with the worker middleware stack, registers the single `alloysync_run` actor,
declares one queue per task queue, and installs the context the actor runs with.
"""

from __future__ import annotations

import logging

import dramatiq
from dramatiq.middleware import Middleware, TimeLimit
from dramatiq.middleware.prometheus import Prometheus

from alloysync.broker import build_broker
from alloysync.enqueue import ACTOR_NAME, RunQueue
from alloysync.gc_tuning import tune_for_throughput
from alloysync.identity import process_name
from alloysync.log import configure_logging
from alloysync.model.registry import DEFAULT_QUEUE, load_task_modules
from alloysync.settings import load_settings
from alloysync.state.claims import Claims
from alloysync.state.connections import connect
from alloysync.state.run_logs import RunLogWriter
from alloysync.worker.actor import WorkerContext, install, run_step
from alloysync.worker.middleware import (
    CancelWatching,
    LogContext,
    RunLogFlushing,
    StaleFireSkipper,
    WorkerHeartbeat,
)
from alloysync.worker.run_log import RunLogCapture

settings = load_settings()
configure_logging(settings.log_level, settings.log_format, process="worker")
registry = load_task_modules(settings.task_modules_to_load)
client = connect(settings.effective_redis_url)

# Each step's log lines are kept with its run (worker/run_log.py); warnings go through logging.
run_log = RunLogCapture(RunLogWriter(client, settings.run_log_max_lines), settings)
logging.getLogger().addHandler(run_log)
logging.captureWarnings(True)
skipper = StaleFireSkipper(client, settings.schedule_stale_after)
worker_middleware: list[Middleware] = [
    LogContext(),
    skipper,
    WorkerHeartbeat(settings.worker_maintenance_interval, settings.worker_heartbeat_timeout),
    CancelWatching(client, every_second=run_log.flush_all),
    RunLogFlushing(run_log),
]
if settings.worker_metrics_port:
    worker_middleware.insert(0, Prometheus())
broker = build_broker(settings, worker_middleware=worker_middleware)
dramatiq.set_broker(broker)
dramatiq.Actor(
    run_step, broker=broker, actor_name=ACTOR_NAME, queue_name=DEFAULT_QUEUE, priority=0, options={}
)
for queue_name in sorted(settings.worker_queues or registry.queues()):
    broker.declare_queue(queue_name)

runs = RunQueue(client, broker, registry, settings)
skipper.send_admitted = runs.send_admitted
install(
    WorkerContext(
        settings=settings,
        registry=registry,
        claims=Claims(client),
        runs=runs,
        run_log=run_log,
        worker_name=process_name(),
        time_limit=next((m for m in broker.middleware if isinstance(m, TimeLimit)), None),
    )
)
tune_for_throughput()  # what this module loaded lives as long as the worker process

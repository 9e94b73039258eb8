"""`alloysync worker`: check the worker's prerequisites, prepare its environment, exec Dramatiq's worker CLI.

Dramatiq's CLI runs the worker processes (`--processes` x `--threads`), restarts nothing by itself
and stops every process when one dies, which is the behaviour a process supervisor expects.
We exec it (rather than import it) so that the Prometheus multiprocess folder is set in the
environment before any process imports prometheus_client; the folder is emptied at each start
so counters never add up across runs.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import redis

from alloysync.model.registry import TaskModuleError, load_task_modules
from alloysync.settings import Settings, redact_url
from alloysync.state.connections import redis_version_problem

SHUTDOWN_TIMEOUT_MS = 60_000


def metrics_folder(port: int) -> Path:
    return Path(tempfile.gettempdir()) / "alloysync-worker-metrics" / str(port)


def run_worker(
    settings: Settings, processes: int | None, threads: int | None, queues: list[str] | None
) -> int:
    try:
        registry = load_task_modules(settings.task_modules_to_load)
    except TaskModuleError as error:
        print(f"alloysync worker: {error}", file=sys.stderr)
        return 2
    try:
        client = redis.Redis.from_url(settings.effective_redis_url, socket_connect_timeout=5)
        too_old = redis_version_problem(client)
        client.close()
    except redis.RedisError as error:
        print(
            f"alloysync worker: cannot reach Redis at {redact_url(settings.effective_redis_url)} ({error}); "
            "start Redis or set ALLOYSYNC_REDIS_URL",
            file=sys.stderr,
        )
        return 2
    if too_old:
        print(f"alloysync worker: {too_old}", file=sys.stderr)
        return 2
    unknown = sorted(set(queues or []) - registry.queues())
    if unknown:
        print(
            f"alloysync worker: no task uses queue(s) {', '.join(unknown)}; task queues are "
            f"{', '.join(sorted(registry.queues()))}",
            file=sys.stderr,
        )
        return 2
    # How long an idle consumer waits between fetches (Dramatiq's default, 1 s, adds up to a
    # second to every pickup).
    environment = {**os.environ, "dramatiq_worker_timeout": str(int(settings.worker_idle_poll * 1000))}
    if settings.worker_metrics_port:
        folder = metrics_folder(settings.worker_metrics_port)
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        environment |= {
            "PROMETHEUS_MULTIPROC_DIR": str(folder),
            "dramatiq_prom_db": str(folder),
            "dramatiq_prom_host": settings.worker_metrics_host,
            "dramatiq_prom_port": str(settings.worker_metrics_port),
        }
    argv = [
        sys.executable,
        "-m",
        "dramatiq",
        "alloysync.worker.boot:broker",
        "--processes",
        str(processes or settings.worker_processes),
        "--threads",
        str(threads or settings.worker_threads),
        "--skip-logging",
        "--worker-shutdown-timeout",
        str(SHUTDOWN_TIMEOUT_MS),
    ]
    if queues:
        argv += ["--queues", *queues]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, argv, environment)  # noqa: S606 - replaces this process; never returns
    return 0

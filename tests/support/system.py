"""A running alloysync for end-to-end tests: serve, worker and scheduler subprocesses against the
test's own redis-server and emulator. Processes are real: tests stop, kill -9 and restart them."""

from __future__ import annotations

import json
import os
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import redis

from alloysync.local.children import Child, http_ok
from alloysync.local.redis_server import RedisServer, free_port
from alloysync.settings import JobAttributeCodes
from tests.support.emulator import EmulatorProcess
from tests.support.tasks import EXECUTIONS
from tests.support.waiting import wait_until

REPO = Path(__file__).resolve().parents[2]
DESIGN = "designs_alloysyncJobs"
CODES = JobAttributeCodes()
WEBHOOK_SECRET = "test-webhook-secret"
T = TypeVar("T")


class System:
    def __init__(
        self, workdir: Path, redis_server: RedisServer, emulator: EmulatorProcess, **env: str
    ) -> None:
        self.workdir = workdir
        self.redis_server = redis_server
        self.emulator = emulator
        self.overrides = env
        self.children: dict[str, Child] = {}
        self.ports: dict[str, int] = {}
        self.redis = redis.Redis.from_url(redis_server.url, decode_responses=True)
        self.tmp = workdir / "tmp"
        self.tmp.mkdir(parents=True, exist_ok=True)

    # --- processes ----------------------------------------------------------------------------

    def env(self, **extra: str) -> dict[str, str]:
        base = {
            **os.environ,
            "ALLOYSYNC_ALLOY_URL": self.emulator.url,
            "ALLOYSYNC_ALLOY_TOKEN": self.emulator.token,
            "ALLOYSYNC_REDIS_URL": self.redis_server.url,
            "ALLOYSYNC_POLL_INTERVAL": "0.5",
            "ALLOYSYNC_TASK_MODULES": '["coinrequest.tasks", "tests.support.tasks"]',
            "ALLOYSYNC_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "ALLOYSYNC_WORKER_PROCESSES": "1",
            "ALLOYSYNC_WORKER_THREADS": "4",
            "ALLOYSYNC_LOG_FORMAT": "json",
            "ALLOYSYNC_LOG_LEVEL": "INFO",
            "ALLOYSYNC_TASK_MIN_BACKOFF": "0.2",
            "ALLOYSYNC_TASK_MAX_BACKOFF": "1",
            "COINREQUEST_PRICE_URL": f"{self.emulator.url}/v1/bpi/currentprice.json",
            "PYTHONPATH": str(REPO),
            "TMPDIR": str(self.tmp),  # worker metrics folders stay inside the test's own folder
        }
        return {**base, **self.overrides, **extra}

    def start(self, name: str, command: str, port: int | None = None, **extra: str) -> Child:
        """Start `alloysync <command>` as child `name` (e.g. "serve", "serve-2", "worker-a"), on
        `port` (its HTTP or metrics port) or a free one."""
        port = port or free_port()
        self.ports[name] = port
        port_variable = {
            "serve": "ALLOYSYNC_HTTP_PORT",
            "worker": "ALLOYSYNC_WORKER_METRICS_PORT",
            "scheduler": "ALLOYSYNC_SCHEDULER_METRICS_PORT",
        }[command]
        env = self.env(**{port_variable: str(port)}, **extra)
        child = Child.alloysync(name, [command], env, self.workdir / "logs" / f"{name}.log", cwd=REPO).start()
        self.children[name] = child
        self.wait_until(lambda: self._ready(command, port), 30, f"{name} to start", child=child)
        return child

    def start_serve(self, name: str = "serve", port: int | None = None, **extra: str) -> Child:
        return self.start(name, "serve", port, **extra)

    def start_worker(self, name: str = "worker", port: int | None = None, **extra: str) -> Child:
        return self.start(name, "worker", port, **extra)

    def start_scheduler(self, name: str = "scheduler", port: int | None = None, **extra: str) -> Child:
        return self.start(name, "scheduler", port, **extra)

    def url(self, name: str = "serve") -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def stop_all(self) -> None:
        for child in self.children.values():
            child.stop(timeout=10)
        self.redis.close()

    def logs(self) -> str:
        return "\n".join(f"--- {name} ---\n{child.log_tail(40)}" for name, child in self.children.items())

    def _ready(self, command: str, port: int) -> bool:
        return http_ok(f"http://127.0.0.1:{port}{'/healthz' if command == 'serve' else '/metrics'}")

    # --- data ---------------------------------------------------------------------------------

    def create_job(
        self,
        title: str,
        task: str,
        params: Any = None,
        schedule: str = "",
        timezone: str = "",
        enabled: bool = True,
        **attributes: Any,
    ) -> str:
        values: dict[str, Any] = {
            CODES.title: title,
            CODES.enabled: enabled,
            CODES.task: task,
            CODES.schedule: schedule,
            CODES.timezone: timezone,
        }
        if params is not None:
            values[CODES.params] = params
        values.update({getattr(CODES, name): value for name, value in attributes.items()})
        item_id: str = self.emulator.create_item(DESIGN, values)["itemId"]
        return item_id

    def edit_job(self, item_id: str, **attributes: Any) -> None:
        self.emulator.edit_item(item_id, {getattr(CODES, name): value for name, value in attributes.items()})

    def job(self, item_id: str) -> dict[str, Any]:
        """The record's attributes by logical name (status, message, run_count, ...)."""
        values = self.emulator.attributes(item_id)
        return {name: values.get(code) for name, code in CODES.model_dump().items()}

    def executions(self, label: str | None = None) -> list[dict[str, Any]]:
        entries = [json.loads(raw) for raw in self.redis.lrange(EXECUTIONS, 0, -1)]
        return [entry for entry in entries if label is None or entry["label"] == label]

    def page(self, path: str, name: str = "serve") -> str:
        """An HTML page of serve's, as text."""
        with urllib.request.urlopen(f"{self.url(name)}{path}", timeout=10) as response:  # noqa: S310
            text: str = response.read().decode()
        return text

    def api(self, path: str, name: str = "serve") -> Any:
        with urllib.request.urlopen(f"{self.url(name)}{path}", timeout=10) as response:  # noqa: S310
            return json.loads(response.read())

    def wait_until(
        self,
        check: Callable[[], T | None],
        timeout: float,
        what: str,
        interval: float = 0.2,
        child: Child | None = None,
    ) -> T:
        """Poll `check` until it returns something truthy; fail with the logs after `timeout` s."""

        def died() -> str | None:
            if child is not None and not child.alive:
                return f"{child.name} exited with {child.returncode}"
            return None

        return wait_until(check, timeout, what, interval, died=died, context=self.logs)

    def wait_for_status(self, item_id: str, status: str, timeout: float = 30) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            job = self.job(item_id)
            return job if job["status"] == status else None

        return self.wait_until(reached, timeout, f"{item_id} to reach {status}")

    def watch(self, item_id: str, interval: float = 0.05) -> StatusWatcher:
        """Start recording every distinct Status the record shows, in order, from now on."""
        return StatusWatcher(self, item_id, interval)


class StatusWatcher:
    """Polls one record's Status in a thread and keeps the sequence of distinct values."""

    def __init__(self, system: System, item_id: str, interval: float) -> None:
        self.system = system
        self.item_id = item_id
        self.interval = interval
        self.seen: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            status = self.system.job(self.item_id)["status"]
            if status and (not self.seen or self.seen[-1] != status):
                self.seen.append(status)
            self._stop.wait(self.interval)

    def until(self, status: str, timeout: float = 30) -> list[str]:
        """Wait until the record shows `status`; stop watching; return the statuses seen."""
        try:
            # The status the record shows now (the last one seen), not one it showed earlier.
            self.system.wait_until(
                lambda: bool(self.seen) and self.seen[-1] == status,
                timeout,
                f"{self.item_id} to reach {status}",
            )
        finally:
            self._stop.set()
            self._thread.join()
        return list(self.seen)


def system_fixture(
    tmp_path: Path, redis_server: RedisServer, emulator: EmulatorProcess, **env: str
) -> Iterator[System]:
    system = System(tmp_path, redis_server, emulator, **env)
    try:
        yield system
    finally:
        system.stop_all()

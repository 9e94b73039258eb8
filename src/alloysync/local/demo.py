"""`alloysync demo`: the whole system on one machine with embedded defaults, and a live view of the demo jobs.

It starts, in order: a private redis-server in the demo folder (unless ALLOYSYNC_REDIS_URL is set),
the emulator seeded with the demo jobs (and its webhook call-out pointed at serve), `serve`, a
worker pool and the scheduler — each a child process logging to `<demo folder>/logs/`. Then it
prints every status change of the demo jobs as read from Alloy (the emulator). `--once` returns when
every one-off demo job reached a final status. Ctrl-C (or the end of `--once`) stops every process
it started and removes its data, keeping only the logs.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

from alloysync.emulator.seed import HIGHWAY_JOBS
from alloysync.local.children import Child, http_ok
from alloysync.local.redis_server import RedisServer, RedisServerError, free_port
from alloysync.model.events import FINAL_STATUSES
from alloysync.settings import Settings, redact_url

POLL_SECONDS = 1.0
START_TIMEOUT = 30.0


class DemoError(RuntimeError):
    """Something the demo started did not come up."""


def run_demo(settings: Settings, once: bool, timeout: float) -> int:
    folder = Path(settings.demo_dir).resolve()
    try:
        with _running_system(settings, folder) as system:
            system.print_banner(once)
            return system.watch(once, timeout)
    except (DemoError, RedisServerError) as error:
        print(f"alloysync demo: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nalloysync demo: stopped.")
        return 130


class DemoSystem:
    def __init__(self, settings: Settings, folder: Path) -> None:
        self.settings = settings
        self.folder = folder
        self.logs = folder / "logs"
        # A token of the demo's own may be shown; one from the user's settings is a secret and never is.
        self.token_generated = not settings.alloy_token_value()
        self.token = settings.alloy_token_value() or f"demo-{secrets.token_hex(8)}"
        self.webhook_secret = secrets.token_hex(16)
        self.redis: RedisServer | None = None
        self.children: list[Child] = []
        self.emulator_port = _port_or_free(8090)
        self.http_port = _port_or_free(settings.http_port)
        self.worker_metrics_port = _port_or_free(settings.worker_metrics_port)
        self.scheduler_metrics_port = _port_or_free(settings.scheduler_metrics_port)
        self.redis_url = settings.redis_url or ""

    @property
    def emulator_url(self) -> str:
        return f"http://127.0.0.1:{self.emulator_port}"

    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def environment(self) -> dict[str, str]:
        return {
            **os.environ,
            "ALLOYSYNC_ALLOY_URL": self.emulator_url,
            "ALLOYSYNC_ALLOY_TOKEN": self.token,
            "ALLOYSYNC_REDIS_URL": self.redis_url,
            "ALLOYSYNC_POLL_INTERVAL": "1",
            "ALLOYSYNC_HTTP_HOST": "127.0.0.1",
            "ALLOYSYNC_HTTP_PORT": str(self.http_port),
            "ALLOYSYNC_WEBHOOK_SECRET": self.webhook_secret,
            "ALLOYSYNC_WORKER_PROCESSES": "1",
            "ALLOYSYNC_WORKER_THREADS": "4",
            "ALLOYSYNC_WORKER_METRICS_PORT": str(self.worker_metrics_port),
            "ALLOYSYNC_SCHEDULER_METRICS_PORT": str(self.scheduler_metrics_port),
            "ALLOYSYNC_LOG_FORMAT": "json",
            "COINREQUEST_PRICE_URL": f"{self.emulator_url}/v1/bpi/currentprice.json",
            # The seeded recipe job closes highway jobs with alloy.update (docs/recipes.md).
            "ALLOYSYNC_BUILTIN_ALLOY_DESIGNS": HIGHWAY_JOBS,
        }

    def start(self) -> None:
        shutil.rmtree(self.folder / "redis", ignore_errors=True)
        self.logs.mkdir(parents=True, exist_ok=True)
        if not self.redis_url:
            self._progress("starting a private redis-server")
            self.redis = RedisServer(self.folder / "redis")
            self.redis.start()
            self.redis_url = self.redis.url
        env = self.environment()
        self._progress("starting the Alloy emulator with the demo jobs")
        emulator = self._spawn(
            "emulator", ["emulator", "--port", str(self.emulator_port), "--seed", "demo"], env
        )
        self._wait(emulator, lambda: http_ok(f"{self.emulator_url}/_emulator/health"))
        self._admin("PUT", "webhook", {
            "url": f"{self.web_url}/webhooks/alloy",
            "headers": {self.settings.webhook_header: self.webhook_secret},
            "design_codes": [self.settings.jobs_design],
        })  # fmt: skip
        self._progress("starting serve, the worker pool and the scheduler")
        serve = self._spawn("serve", ["serve"], env)
        worker = self._spawn("worker", ["worker"], env)
        scheduler = self._spawn("scheduler", ["scheduler"], env)
        self._wait(serve, lambda: http_ok(f"{self.web_url}/healthz"))
        self._wait(worker, lambda: http_ok(f"http://127.0.0.1:{self.worker_metrics_port}/metrics"))
        self._wait(scheduler, lambda: http_ok(f"http://127.0.0.1:{self.scheduler_metrics_port}/metrics"))

    def stop(self) -> None:
        for child in reversed(self.children):
            child.stop()
        if self.redis is not None:
            self.redis.stop()
            shutil.rmtree(self.folder / "redis", ignore_errors=True)

    def print_banner(self, once: bool) -> None:
        token = f"demo token {self.token}" if self.token_generated else "token from ALLOYSYNC_ALLOY_TOKEN"
        print(
            "\nalloysync demo is running\n"
            f"  jobs page    {self.web_url}/\n"
            f"  metrics      {self.web_url}/metrics (serve)  "
            f"http://127.0.0.1:{self.worker_metrics_port}/metrics (workers)  "
            f"http://127.0.0.1:{self.scheduler_metrics_port}/metrics (scheduler)\n"
            f"  Alloy        {self.emulator_url} (emulator; {token})\n"
            f"  Redis        {redact_url(self.redis_url)}\n"
            f"  logs         {self.logs}/\n"
            + ("  waiting for the one-off demo jobs to finish...\n" if once else "  press Ctrl-C to stop\n"),
            flush=True,
        )

    def watch(self, once: bool, timeout: float) -> int:
        """Print status changes; with `once`, return when every one-off job is final."""
        seen: dict[str, tuple[str, str]] = {}
        deadline = time.monotonic() + timeout
        while True:
            self._check_children()
            try:
                jobs = self._jobs()
            except (urllib.error.URLError, OSError, ValueError) as error:
                print(
                    f"alloysync demo: cannot read the demo jobs right now ({error}); retrying",
                    file=sys.stderr,
                )
                time.sleep(POLL_SECONDS)
                continue
            for job in jobs:
                state = (job["status"], job["message"])
                if seen.get(job["id"]) != state:
                    seen[job["id"]] = state
                    stamp = time.strftime("%H:%M:%S")
                    status = job["status"] or "-"
                    print(
                        f"{stamp}  {job['title'][:38]:<38}  {status:<10}  {job['message'][:90]}", flush=True
                    )
            one_off = [job for job in jobs if job["one_off"] and job["enabled"]]
            if once and one_off and all(job["status"] in FINAL_STATUSES for job in one_off):
                summary = ", ".join(f"{job['title']}: {job['status']}" for job in one_off)
                print(f"\nevery one-off demo job reached a final status ({summary})", flush=True)
                return 0
            if once and time.monotonic() > deadline:
                waiting = [job["title"] for job in one_off if job["status"] not in FINAL_STATUSES]
                print(f"\ntimed out after {timeout:g} s waiting for: {', '.join(waiting)}", file=sys.stderr)
                return 1
            time.sleep(POLL_SECONDS)

    # --- helpers ------------------------------------------------------------------------------

    def _jobs(self) -> list[dict[str, Any]]:
        codes = self.settings.attributes
        # The emulator's observer listing costs none of the API key's rate-limit budget, which
        # belongs to the alloysync processes sharing the token.
        results = self._api("GET", f"/_emulator/items?design={self.settings.jobs_design}")["items"]
        jobs = []
        for item in results:
            values = {a["attributeCode"]: a.get("value") for a in item["attributes"]}
            schedule = str(values.get(codes.schedule) or "").strip()
            jobs.append(
                {
                    "id": item["itemId"],
                    "title": str(values.get(codes.title) or item["itemId"]),
                    "status": str(values.get(codes.status) or ""),
                    "message": str(values.get(codes.message) or ""),
                    "enabled": values.get(codes.enabled) is True,
                    "one_off": not schedule or (schedule[:1].isdigit() and len(schedule.split()) != 5),
                }
            )
        return sorted(jobs, key=lambda job: job["title"])

    def _api(self, method: str, path: str, body: Any = None) -> Any:
        request = urllib.request.Request(  # noqa: S310 - loopback URL built here
            f"{self.emulator_url}{path}",
            data=None if body is None else json.dumps(body).encode(),
            method=method,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            raw = response.read()
        return json.loads(raw) if raw else None

    def _admin(self, method: str, path: str, body: Any) -> Any:
        return self._api(method, f"/_emulator/{path}", body)

    def _spawn(self, name: str, args: list[str], env: dict[str, str]) -> Child:
        child = Child.alloysync(name, args, env, self.logs / f"{name}.log").start()
        self.children.append(child)
        return child

    def _wait(self, child: Child, ready: Any) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while not ready():
            if not child.alive:
                raise DemoError(f"{child.name} exited with {child.returncode}; its log:\n{child.log_tail()}")
            if time.monotonic() > deadline:
                raise DemoError(
                    f"{child.name} did not come up in {START_TIMEOUT:g} s; its log:\n{child.log_tail()}"
                )
            time.sleep(0.2)

    def _check_children(self) -> None:
        for child in self.children:
            if not child.alive:
                raise DemoError(f"{child.name} exited with {child.returncode}; its log:\n{child.log_tail()}")

    @staticmethod
    def _progress(text: str) -> None:
        print(f"alloysync demo: {text}...", flush=True)


@contextmanager
def _running_system(settings: Settings, folder: Path) -> Iterator[DemoSystem]:
    system = DemoSystem(settings, folder)
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        system.start()
        yield system
    finally:
        signal.signal(signal.SIGTERM, previous)
        print("alloysync demo: stopping everything it started...", flush=True)
        system.stop()


def _raise_interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _port_or_free(preferred: int) -> int:
    """`preferred` if nothing listens there on 127.0.0.1, else a free port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", preferred))
        except OSError:
            return free_port()
    return preferred

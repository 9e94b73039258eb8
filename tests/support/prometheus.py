"""A real Prometheus server for end-to-end tests, configured from `deploy/prometheus/prometheus.yml`.

The binaries come from Debian's `prometheus` package (`apt-get install -y prometheus`: `prometheus`
and `promtool`; never start its system service for tests). The config is the deployed file with
only what a test must change: its targets (the test's free ports), a 1 s scrape and evaluation
interval, and the absolute path of `alerts.yml`. Job names stay as they are, because the alert
rules and the dashboards select by them. Every substitution must match exactly once, so a change of
layout in the deployed file fails here loudly instead of testing something else.

Prometheus listens on a free loopback port with its TSDB in the test's tmp dir, and only scrapes
127.0.0.1 targets.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest

from alloysync.local.children import http_ok
from alloysync.local.redis_server import free_port
from tests.support.waiting import wait_until

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = REPO / "deploy" / "prometheus"
CONFIG = PROMETHEUS_DIR / "prometheus.yml"
ALERTS = PROMETHEUS_DIR / "alerts.yml"
JOBS = ("alloysync-serve", "alloysync-worker", "alloysync-scheduler")
T = TypeVar("T")


def binary(name: str) -> str:
    """Path of `prometheus` or `promtool`; fails (never skips) the test when it is missing."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: run `apt-get install -y prometheus` (it provides {name})")
    return path


def _replace_once(text: str, pattern: str, replacement: str, what: str) -> str:
    new, count = re.subn(pattern, replacement, text, flags=re.MULTILINE)
    if count != 1:
        raise AssertionError(
            f"deploy/prometheus/prometheus.yml: expected exactly one {what} (pattern {pattern!r}), "
            f"found {count}; update tests/support/prometheus.py to the file's new layout"
        )
    return new


def prometheus_config(targets: Mapping[str, Sequence[str]], interval: str = "1s") -> str:
    """The deployed prometheus.yml with the test's targets, `interval` and an absolute rules path."""
    text = CONFIG.read_text(encoding="utf-8")
    text = _replace_once(text, r"^(\s*scrape_interval:\s*)\S+$", rf"\g<1>{interval}", "scrape_interval")
    text = _replace_once(text, r"^(\s*scrape_timeout:\s*)\S+$", rf"\g<1>{interval}", "scrape_timeout")
    text = _replace_once(
        text, r"^(\s*evaluation_interval:\s*)\S+$", rf"\g<1>{interval}", "evaluation_interval"
    )
    text = _replace_once(
        text,
        r"^(rule_files:[ \t]*\n\s*-[ \t]*)alerts\.yml[ \t]*$",
        rf"\g<1>{json.dumps(str(ALERTS))}",
        "rule file",
    )
    for job in JOBS:
        addresses = list(targets[job])
        for address in addresses:
            assert address.startswith("127.0.0.1:"), f"tests scrape loopback targets only: {address}"
        text = _replace_once(
            text,
            rf"(-\s*job_name:\s*{re.escape(job)}\s*\n(?:[ \t]+.*\n)*?\s*-\s*targets:\s*)\[[^\]]*\]",
            rf"\g<1>{json.dumps(addresses)}",
            f"targets list of job {job}",
        )
    unknown = set(targets) - set(JOBS)
    assert not unknown, f"no such scrape job in prometheus.yml: {sorted(unknown)}"
    return text


class PrometheusError(AssertionError):
    """Prometheus' HTTP API answered with an error."""


class PrometheusServer:
    """One `prometheus` child process on a free loopback port, data and config in `workdir`."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.config_path = workdir / "prometheus.yml"
        self.log_path = workdir / "prometheus.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, targets: Mapping[str, Sequence[str]], timeout: float = 30.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(prometheus_config(targets), encoding="utf-8")
        check = subprocess.run(
            [binary("promtool"), "check", "config", str(self.config_path)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert check.returncode == 0, f"promtool check config failed:\n{check.stdout}\n{check.stderr}"
        command = [
            binary("prometheus"),
            f"--config.file={self.config_path}",
            f"--storage.tsdb.path={self.workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--log.level=info",
        ]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir
            )
        self.wait_until(self._ready, timeout, "Prometheus to be ready")

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def _ready(self) -> bool:
        return http_ok(f"{self.url}/-/ready")

    def wait_until(
        self, check: Callable[[], T | None], timeout: float, what: str, interval: float = 0.25
    ) -> T:
        def died() -> str | None:
            if self.process is not None and self.process.poll() is not None:
                return f"prometheus exited with {self.process.returncode}"
            return None

        return wait_until(check, timeout, what, interval, died=died, context=self.log_tail)

    # --- HTTP API --------------------------------------------------------------------------------

    def get(self, path: str, **params: str | Sequence[str]) -> Any:
        """GET /api/v1/<path>; the `data` of a success answer, PrometheusError otherwise."""
        query = urllib.parse.urlencode(
            [(key, value) for key, values in params.items() for value in _as_list(values)]
        )
        url = f"{self.url}/api/v1/{path}" + (f"?{query}" if query else "")
        try:
            with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310
                body = json.loads(response.read())
        except urllib.error.HTTPError as error:
            raw = error.read()
            try:
                body = json.loads(raw)
            except ValueError:
                raise PrometheusError(f"GET {url}: HTTP {error.code}: {raw[:300]!r}") from None
        if body.get("status") != "success":
            raise PrometheusError(f"GET {url}: {body.get('errorType', '?')}: {body.get('error', body)}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant query now; the result vector (a scalar becomes a one-sample vector)."""
        data = self.get("query", query=expr)
        if data["resultType"] == "vector":
            result: list[dict[str, Any]] = data["result"]
            return result
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        raise PrometheusError(f"{expr}: unexpected result type {data['resultType']}")

    def targets(self) -> list[dict[str, Any]]:
        active: list[dict[str, Any]] = self.get("targets", state="active")["activeTargets"]
        return active

    def alert_rules(self) -> list[dict[str, Any]]:
        rules: list[dict[str, Any]] = []
        for group in self.get("rules", type="alert")["groups"]:
            rules.extend(group["rules"])
        return rules

    def alerts(self) -> list[dict[str, Any]]:
        alerts: list[dict[str, Any]] = self.get("alerts")["alerts"]
        return alerts

    def label_values(self, label: str, match: str) -> list[str]:
        values: list[str] = self.get(f"label/{urllib.parse.quote(label)}/values", **{"match[]": match})
        return values


def _as_list(value: str | Sequence[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def finite(sample: Mapping[str, Any]) -> bool:
    """Whether an instant-vector sample's value is a number (not NaN or ±Inf)."""
    value = float(sample["value"][1])
    return value == value and value not in (float("inf"), float("-inf"))

"""Start `alloysync emulator` as a real subprocess and drive its admin API, for tests and benchmarks.

The admin API (all under `/_emulator/`, bearer token required except `health`):
  GET  health                       -> 200 {"ok": true}
  GET/PUT faults                    {"latency_ms": float, "error_rate": 0..1, "down": bool,
                                     "down_mode": "503"|"reset"}
  GET/PUT rate-limits               {"enabled": bool, "window_seconds": float, "query": int, "read": int,
                                     "write": int}
  POST reset                        {"seed": "none"|"demo"}: drop all items, counters and rate-limit windows
  GET  stats                        {"requests": {family: {status: count}}}  family: query|read|write|other
  GET  items[?design=], items/{id}  every item / one item, for observers: no rate limits, no faults
  POST items                        {"items": [{"designCode", "collection"?, "attributes": [...]}]}:
                                    bulk create, bypassing rate limits and faults -> {"items": [item, ...]}
  PUT  webhook                      {"url": str|null, "headers": {..}, "design_codes": [..]|null}: POST
                                    {"itemId", "designCode", "event": "create"|"update"} there on item changes

Also: GET webhook (the configuration, header names only); faults also take `html_error_share`
(the share of injected errors that are an HTML 502 page, default 0.2); stats also carry
"callouts": {"sent", "failed", "dropped"} and "items" (the item count); a request whose connection
was dropped by `down_mode: reset` is counted under the status "reset".
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from alloysync.children import http_ok
from alloysync.redis_server import free_port

# What a freshly started emulator has: Alloy's limits and no faults (see `restore_defaults`).
DEFAULT_RATE_LIMITS: dict[str, Any] = {"window_seconds": 60.0, "query": 120, "read": 300, "write": 150}
NO_FAULTS: dict[str, Any] = {
    "latency_ms": 0.0,
    "feed_latency_ms": 0.0,
    "error_rate": 0.0,
    "html_error_share": 0.2,
    "down": False,
    "down_mode": "503",
}


class EmulatorProcess:
    """One `alloysync emulator` child process on a free loopback port."""

    def __init__(
        self,
        workdir: Path,
        token: str = "test-token",  # noqa: S107 - the tests' own throwaway token
        seed: str = "none",
        rate_limits: bool = True,
        state_file: Path | None = None,
        port: int | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.workdir = workdir
        self.token = token
        self.seed = seed
        self.rate_limits = rate_limits
        self.state_file = state_file
        self.port = port or free_port()
        self.extra_env = extra_env or {}
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / f"emulator-{self.port}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 15.0) -> None:
        command = [
            sys.executable,
            "-m",
            "alloysync",
            "emulator",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
        ]
        command += ["--seed", self.seed]
        if self.state_file is not None:
            command += ["--state", str(self.state_file)]
        if not self.rate_limits:
            command.append("--no-rate-limits")
        env = {
            **os.environ,
            "ALLOYSYNC_ALLOY_TOKEN": self.token,
            "ALLOYSYNC_LOG_FORMAT": "json",
            **self.extra_env,
        }
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.workdir
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"emulator exited with {self.process.returncode}:\n{self.read_log()}")
            if http_ok(f"{self.url}/_emulator/health"):
                return
            time.sleep(0.05)
        raise RuntimeError(f"emulator did not come up on {self.url}:\n{self.read_log()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None

    def read_log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # --- HTTP helpers (synchronous, stdlib only, so they work from any test) ----------------

    def request(self, method: str, path: str, body: Any = None, auth: bool = True) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.url}{path}", data=data, method=method)  # noqa: S310
        request.add_header("Content-Type", "application/json")
        if auth:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                raw = response.read()
                return response.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as error:
            raw = error.read()
            try:
                return error.code, json.loads(raw) if raw else None
            except ValueError:
                return error.code, raw.decode(errors="replace")

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        status, payload = self.request(method, f"/_emulator/{path}", body)
        if status >= 400:
            raise RuntimeError(f"emulator admin {method} {path} failed with {status}: {payload}")
        return payload

    def set_faults(self, **faults: Any) -> Any:
        return self.admin("PUT", "faults", faults)

    def set_rate_limits(self, **limits: Any) -> Any:
        return self.admin("PUT", "rate-limits", limits)

    def reset(self, seed: str = "none") -> Any:
        return self.admin("POST", "reset", {"seed": seed})

    def stats(self) -> dict[str, dict[str, int]]:
        stats: dict[str, dict[str, int]] = self.admin("GET", "stats")["requests"]
        return stats

    def set_webhook(
        self, url: str | None, headers: dict[str, str] | None = None, design_codes: list[str] | None = None
    ) -> Any:
        return self.admin(
            "PUT", "webhook", {"url": url, "headers": headers or {}, "design_codes": design_codes}
        )

    def restore_defaults(self, seed: str = "none") -> Any:
        """Back to a fresh start without restarting: no faults, default rate limits, no webhook, reset."""
        self.set_faults(**NO_FAULTS)
        self.set_rate_limits(enabled=self.rate_limits, **DEFAULT_RATE_LIMITS)
        self.set_webhook(None)
        return self.reset(seed)

    def query(
        self, aqs: dict[str, Any], page: int | None = None, page_size: int | None = None
    ) -> tuple[int, Any]:
        """POST an AQS node to /api/aqs/query; (status, payload) as the API answered."""
        params = []
        if page is not None:
            params.append(f"page={page}")
        if page_size is not None:
            params.append(f"pageSize={page_size}")
        path = "/api/aqs/query" + ("?" + "&".join(params) if params else "")
        return self.request("POST", path, {"aqs": aqs})

    def bulk_create(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        created: list[dict[str, Any]] = self.admin("POST", "items", {"items": items})["items"]
        return created

    def create_item(
        self, design: str, attributes: dict[str, Any], collection: str = "Live"
    ) -> dict[str, Any]:
        """Create an item as a user would (through the public API, counted against rate limits)."""
        body = {
            "designCode": design,
            "collection": collection,
            "attributes": [{"attributeCode": code, "value": value} for code, value in attributes.items()],
        }
        status, payload = self.request("POST", "/api/item", body)
        if status >= 400:
            raise RuntimeError(f"create failed with {status}: {payload}")
        item: dict[str, Any] = payload["item"]
        return item

    def get_item(self, item_id: str) -> dict[str, Any]:
        status, payload = self.request("GET", f"/api/item/{item_id}")
        if status >= 400:
            raise RuntimeError(f"get {item_id} failed with {status}: {payload}")
        item: dict[str, Any] = payload["item"]
        return item

    def edit_item(self, item_id: str, attributes: dict[str, Any]) -> dict[str, Any]:
        """Edit an item as a user would: read its signature, then send a partial edit."""
        signature = self.get_item(item_id)["signature"]
        body = {
            "signature": signature,
            "attributes": [{"attributeCode": code, "value": value} for code, value in attributes.items()],
        }
        status, payload = self.request("PUT", f"/api/item/{item_id}", body)
        if status >= 400:
            raise RuntimeError(f"edit {item_id} failed with {status}: {payload}")
        item: dict[str, Any] = payload["item"]
        return item

    def observe(self, item_id: str) -> dict[str, Any]:
        """Read an item through the admin API: no rate-limit budget is spent, so watching a record
        never takes budget away from the alloysync processes sharing the token."""
        item: dict[str, Any] = self.admin("GET", f"items/{item_id}")["item"]
        return item

    def attributes(self, item_id: str) -> dict[str, Any]:
        """The item's attributes as {code: value} (read as an observer, see `observe`)."""
        return {a["attributeCode"]: a.get("value") for a in self.observe(item_id)["attributes"]}

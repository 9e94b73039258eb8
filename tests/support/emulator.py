"""Start `alloysync emulator` as a real subprocess and drive its admin API, for tests and benchmarks.

The admin API (all under `/_emulator/`, bearer token required except `health`):
  GET  health                       -> 200 {"ok": true}
  GET/PUT faults                    {"latency_ms": float, "error_rate": 0..1, "down": bool,
                                     "down_mode": "503"|"reset", "signature_mismatch_status": 400..499,
                                     "signature_mismatch_error_code": str|null}
  GET/PUT rate-limits               {"enabled": bool, "window_seconds": float, "query": int, "read": int,
                                     "write": int}
  POST reset                        {"seed": "none"|"demo"|"empty"}: drop all designs, items, counters and
                                    rate-limit windows, then seed (none/demo: the jobs design; empty: none)
  GET  stats                        {"requests": {family: {status: count}}}  family: query|read|write|other
  POST designs                      {"code"?, "name", <DesignCreateWebRequestModel fields>, "attributes":
                                    [{"code"?, "name", "type": "String"|... or "options": {...}, "required"?,
                                    "readonly"?, "unique"?, "tags"?}]}: a design with codes of one's own
                                    (left out: generated), no signature -> {"design": {...}}
  GET  designs, designs/{code}      every design / one design, as GET /api/design/{code} sends them
  GET  items[?design=], items/{id}  every item / one item, for observers: no rate limits, no faults
  POST items                        {"items": [{"designCode", "collection"?, "attributes": [...]}]}:
                                    bulk create, checked against the designs like the API, bypassing rate
                                    limits and faults -> {"items": [item, ...]}
  PUT  webhook                      {"url": str|null, "headers": {..}, "design_codes": [..]|null}: POST
                                    {"itemId", "designCode", "event": "create"|"update"} there on item changes

Also: GET webhook (the configuration, header names only); faults also take `html_error_share`
(the share of injected errors that are an HTML 502 page, default 0.2); stats also carry
"callouts": {"sent", "failed", "dropped"}, "designs" and "items" (the counts); a request whose
connection was dropped by `down_mode: reset` is counted under the status "reset".

Items come without `lastEditDate`/`createdDate`, as from real Alloy, unless the process is started
with `item_dates=True` (`--item-dates`). The seeds `none` (the default here) and `demo` hold the jobs
design under the configured codes; items of any other design need the design first
(`define_design` through the admin API, or `create_design`/`add_attribute` through Alloy's API).
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

from alloysync.local.children import http_ok
from alloysync.local.redis_server import free_port

# What a freshly started emulator has: Alloy's limits and no faults (see `restore_defaults`).
DEFAULT_RATE_LIMITS: dict[str, Any] = {"window_seconds": 60.0, "query": 120, "read": 300, "write": 150}
NO_FAULTS: dict[str, Any] = {
    "latency_ms": 0.0,
    "feed_latency_ms": 0.0,
    "error_rate": 0.0,
    "html_error_share": 0.2,
    "down": False,
    "down_mode": "503",
    "signature_mismatch_status": 409,
    "signature_mismatch_error_code": None,
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
        item_dates: bool = False,
    ) -> None:
        self.workdir = workdir
        self.token = token
        self.seed = seed
        self.rate_limits = rate_limits
        self.state_file = state_file
        self.port = port or free_port()
        self.extra_env = extra_env or {}
        self.item_dates = item_dates
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
        if self.item_dates:
            command.append("--item-dates")
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

    def define_design(
        self,
        code: str,
        attributes: dict[str, str],
        name: str | None = None,
        **design_fields: Any,
    ) -> dict[str, Any]:
        """Define a design with codes of one's own through the admin API (no limits, no signature):
        `attributes` maps attribute code to type (String, Number, Boolean, DateTime, Date, Json,
        GeoJson); each attribute is named after its code. Returns the design."""
        body = {
            "code": code,
            "name": name or code,
            "attributes": [{"code": attr, "name": attr, "type": kind} for attr, kind in attributes.items()],
            **design_fields,
        }
        design: dict[str, Any] = self.admin("POST", "designs", body)["design"]
        return design

    def get_design(self, code: str) -> dict[str, Any]:
        """`GET /api/design/{code}`'s design (counted against the read budget)."""
        status, payload = self.request("GET", f"/api/design/{code}")
        if status >= 400:
            raise RuntimeError(f"get design {code} failed with {status}: {payload}")
        design: dict[str, Any] = payload["design"]
        return design

    def create_design(self, name: str, **fields: Any) -> dict[str, Any]:
        """`POST /api/design` as a user would (generated code); the design."""
        status, payload = self.request("POST", "/api/design", {"name": name, **fields})
        if status >= 400:
            raise RuntimeError(f"create design failed with {status}: {payload}")
        design: dict[str, Any] = payload["design"]
        return design

    def add_attribute(self, design_code: str, name: str, options: dict[str, Any], **fields: Any) -> str:
        """`POST /api/design/{code}/attribute` with the design's current signature; the new code."""
        signature = self.get_design(design_code)["metadata"]["signature"]
        body = {
            "name": name,
            "required": False,
            "readonly": False,
            "unique": False,
            "options": options,
            "signature": signature,
            **fields,
        }
        status, payload = self.request("POST", f"/api/design/{design_code}/attribute", body)
        if status >= 400:
            raise RuntimeError(f"add attribute {name!r} to {design_code} failed with {status}: {payload}")
        code: str = payload["attributeCode"]
        return code

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

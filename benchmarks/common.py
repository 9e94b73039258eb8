"""Shared helpers for the benchmarks: a private stack (redis-server + emulator + alloysync processes),
progress output, percentiles, metrics scraping, machine info and the JSON result file.

Everything a benchmark starts listens on 127.0.0.1 and lives in a temporary folder; `running_stack`
stops every process it started when the benchmark ends, fails, or is interrupted (Ctrl-C, SIGTERM).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

import redis
from prometheus_client.parser import text_string_to_metric_families

from alloysync import __version__
from alloysync.local.redis_server import RedisServer
from tests.support.emulator import EmulatorProcess
from tests.support.system import DESIGN, System

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"

_STARTED = time.monotonic()


# --- output -----------------------------------------------------------------------------------


def progress(message: str) -> None:
    """One progress line, prefixed with the seconds since the benchmark started."""
    print(f"[{time.monotonic() - _STARTED:7.1f}s] {message}", flush=True)


def write_result(name: str, payload: dict[str, Any]) -> Path:
    """Write `benchmarks/results/<name>.json` (atomically: a .tmp file renamed into place)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(OSError, KeyError, TypeError):
        # Other processes on the machine skew the figures: keep the load next to them.
        payload["machine"]["load_average_at_end"] = [round(value, 2) for value in os.getloadavg()]
    target = RESULTS / f"{name}.json"
    temporary = target.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n")
    temporary.replace(target)
    return target


# --- statistics -------------------------------------------------------------------------------


def quantile(values: Sequence[float], q: float) -> float:
    """The q-quantile (0..1) with linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summarize(values: Sequence[float], quantiles: Sequence[float] = (0.5, 0.95, 0.99)) -> dict[str, float]:
    """count, min, p50/p95/p99 (as asked), mean and max, rounded to milliseconds."""
    summary: dict[str, float] = {"count": len(values)}
    if not values:
        return summary
    summary["min"] = round(min(values), 3)
    for q in quantiles:
        summary[f"p{round(q * 100):d}"] = round(quantile(values, q), 3)
    summary["mean"] = round(sum(values) / len(values), 3)
    summary["max"] = round(max(values), 3)
    return summary


# --- machine ----------------------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    """What the figures were measured on."""
    info: dict[str, Any] = {
        "date_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "python": sys.version.split()[0],
        "alloysync": __version__,
        "redis_server": _command_output(["redis-server", "--version"]),
        "git_commit": _command_output(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"]),
        # Other work may be in progress in the tree: name the product files that differ from the commit.
        "uncommitted_product_files": _command_output(
            ["git", "-C", str(REPO), "status", "--porcelain", "--", "src", "coinrequest"]
        ).splitlines(),
    }
    with contextlib.suppress(OSError):
        info["load_average_at_start"] = [round(value, 2) for value in os.getloadavg()]
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                info["memory_gib"] = round(int(line.split()[1]) / 1024 / 1024, 1)
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
    return info


def _command_output(argv: list[str]) -> str:
    try:
        completed = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return completed.stdout.strip()


# --- command line -------------------------------------------------------------------------------


def run_main(main: Callable[[], int]) -> NoReturn:
    """Run a benchmark's main and exit with its code; Ctrl-C or SIGTERM exits 130 without a traceback
    (`running_stack` has stopped every process by then)."""
    try:
        code = main()
    except KeyboardInterrupt:
        progress("interrupted")
        code = 130
    sys.exit(code)


def add_appendfsync_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--appendfsync",
        choices=("always", "everysec"),
        default="always",
        help="the benchmark Redis's AOF fsync policy: always (default; what alloysync's RedisServer "
        "starts, as the tests use) or everysec (the minimum docs/architecture.md asks for in production)",
    )


def add_dramatiq_timeout_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dramatiq-worker-timeout",
        metavar="MS",
        type=int,
        default=None,
        help="experiment: set Dramatiq's own `dramatiq_worker_timeout` (ms) for the worker, the cap of "
        "an idle consumer's poll backoff (unset: Dramatiq's default, 1000; alloysync does not set it)",
    )


def dramatiq_env(timeout_ms: int | None) -> dict[str, str]:
    """The worker environment for `--dramatiq-worker-timeout` (read by Dramatiq's Worker)."""
    return {} if timeout_ms is None else {"dramatiq_worker_timeout": str(timeout_ms)}


def add_result_name_option(parser: argparse.ArgumentParser, default: str) -> None:
    parser.add_argument(
        "--result-name",
        default=default,
        help=f"write benchmarks/results/NAME.json (default {default}; use another name for experiments)",
    )


# --- the stack ----------------------------------------------------------------------------------


@dataclass
class Stack:
    workdir: Path
    redis_server: RedisServer
    emulator: EmulatorProcess
    system: System

    def wait_for_poller(self, serve: str = "serve", timeout: float = 30) -> None:
        """Wait until `serve` holds the poller lease (it polls and reports only then)."""
        self.system.wait_until(
            lambda: self.system.api("/healthz", serve).get("poller") is True, timeout, "the poller lease"
        )

    def job_items(self) -> list[dict[str, Any]]:
        """Every job record, read through the emulator's observer API (no rate-limit budget spent)."""
        items: list[dict[str, Any]] = self.emulator.admin("GET", f"items?design={DESIGN}")["items"]
        return items

    def emulator_counts(self) -> dict[str, Any]:
        """The emulator's request counts by family and status, and its webhook call-out counts."""
        payload: dict[str, Any] = self.emulator.admin("GET", "stats")
        return {"requests": payload["requests"], "callouts": payload.get("callouts", {})}

    def stop_processes(self) -> dict[str, dict[str, Any]]:
        """Stop each alloysync process as `System.stop_all` does (SIGTERM, SIGKILL after 10 s), timing
        it: how long each took to honour SIGTERM, and its exit code (-9: it had to be killed)."""
        report: dict[str, dict[str, Any]] = {}
        for name, child in self.system.children.items():
            began = time.monotonic()
            child.stop(timeout=10)
            report[name] = {"seconds": round(time.monotonic() - began, 2), "exit_code": child.returncode}
        return report

    def log_problems(self) -> dict[str, int]:
        """Warnings and errors the alloysync processes logged: "process level: event" -> count."""
        counts: Counter[str] = Counter()
        for path in sorted((self.workdir / "logs").glob("*.log")):
            for line in path.read_text(errors="replace").splitlines():
                try:
                    entry = json.loads(line)
                except ValueError:
                    if "Traceback" in line or "ERROR" in line:
                        counts[f"{path.stem} (non-JSON): {line[:120]}"] += 1
                    continue
                if isinstance(entry, dict) and entry.get("level") in ("warning", "error", "critical"):
                    counts[f"{path.stem} {entry['level']}: {entry.get('event')}"] += 1
        return dict(counts.most_common())


def attributes_of(item: dict[str, Any]) -> dict[str, Any]:
    return {entry["attributeCode"]: entry.get("value") for entry in item.get("attributes", [])}


def parse_alloy_time(text: str) -> float:
    """Alloy's `2024-07-02T00:00:00.000Z` as unix seconds."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def request_delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, dict[str, int]]:
    """Per family and status, how many more requests `after` has counted than `before`."""
    delta: dict[str, dict[str, int]] = {}
    for family, statuses in after["requests"].items():
        earlier = before["requests"].get(family, {})
        changed = {status: count - earlier.get(status, 0) for status, count in statuses.items()}
        delta[family] = {status: count for status, count in sorted(changed.items()) if count}
    return delta


def count_status(delta: dict[str, dict[str, int]], status: str) -> int:
    return sum(statuses.get(status, 0) for statuses in delta.values())


def scrape(url: str) -> dict[str, float]:
    """A process's /metrics as {'name{label="v",...}': value} (samples of every family)."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:  # noqa: S310 - loopback
        text = response.read().decode()
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{key}="{value}"' for key, value in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return samples


def pick(samples: dict[str, float], *prefixes: str) -> dict[str, float]:
    """The samples whose name starts with one of `prefixes` (for a compact result file)."""
    return {name: value for name, value in sorted(samples.items()) if name.startswith(prefixes)}


def _raise_interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def running_stack(
    name: str,
    *,
    rate_limits: bool = True,
    keep_workdir: bool = False,
    appendfsync: str = "always",
    item_dates: bool = False,
    **env: str,
) -> Iterator[Stack]:
    """A redis-server, an emulator and a `System` (no alloysync process started yet) in a temp folder.

    `env` overrides the alloysync processes' environment (see `System.env`); `appendfsync` is the
    Redis AOF fsync policy; `item_dates` makes the emulator add lastEditDate/createdDate to items
    (real Alloy does not: alloysync never reads them; a benchmark may, to time what happened when).
    Every process is stopped on the way out; the folder (with each
    process's log) is removed unless `keep_workdir` or the benchmark failed, in which case its
    path is printed.
    """
    signal.signal(signal.SIGTERM, _raise_interrupt)  # a SIGTERM cleans up as Ctrl-C does
    workdir = Path(tempfile.mkdtemp(prefix=f"alloysync-bench-{name}-"))
    redis_server = RedisServer(workdir / "redis")
    emulator = EmulatorProcess(workdir / "emulator", rate_limits=rate_limits, item_dates=item_dates)
    system: System | None = None
    succeeded = False
    try:
        redis_server.start()
        if appendfsync != "always":  # RedisServer starts with `appendfsync always`
            client = redis.Redis(host=redis_server.host, port=redis_server.port)
            client.config_set("appendfsync", appendfsync)
            client.close()
        emulator.start()
        system = System(workdir, redis_server, emulator, **env)
        yield Stack(workdir, redis_server, emulator, system)
        succeeded = True
    finally:
        progress("stopping the processes ...")
        if system is not None:
            system.stop_all()
        emulator.stop()
        redis_server.stop()
        if succeeded and not keep_workdir:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            progress(f"logs kept in {workdir}")


def sleep_until(moment: float) -> None:
    """Sleep until the unix time `moment`."""
    while (remaining := moment - time.time()) > 0:
        time.sleep(min(remaining, 1.0))

"""Digest budget: the defects digest recipe over 5,000 items with Alloy's rate limits on.

A fresh stack (redis-server, the emulator with its limits of 120 queries / 300 reads / 150 writes
per 60 s, `alloysync serve` and one worker, and a loopback SMTP server) gets N open defects older
than 30 days through the emulator's admin bulk create (no request counted); every tenth is of High
priority, the rest Low. The docs/recipes.md record "Defects digest" (`alloy.query | data.filter |
alloy.update | data.render | mail.send`) is created as written and run once with RunRequested: it
pages through all N defects, keeps the High ones, marks each `Escalated` and e-mails the table.

While it runs, the emulator's request counts are sampled every second (its admin API costs no
budget), so the busiest 60-second window of each family can be compared with the key's budget.
Measured: the run's duration and each step's, requests per family and status (HTTP 429s above all:
there must be none), the busiest 60 s window per family, the items escalated and the e-mail's lines.

Run:  .venv/bin/python -m benchmarks.digest_budget   (or ./dev bench digest_budget); at 5,000 items
about 4 minutes (500 edits at the write budget of 150 a minute, shared with serve's status writes).
"""

from __future__ import annotations

import sys
from pathlib import Path

if not __package__:  # run as a script (`python benchmarks/digest_budget.py`, i.e. ./dev bench)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import threading
import time
from collections import deque
from typing import Any

from benchmarks.common import (
    add_result_name_option,
    count_status,
    machine_info,
    progress,
    request_delta,
    run_main,
    running_stack,
    write_result,
)
from tests.support.recipes import DEFECTS, defect, define_recipe_designs, recipe, values_of
from tests.support.smtp import smtp_inbox

NAME = "digest_budget"
BUDGET_PER_MINUTE = {"query": 120, "read": 300, "write": 150}  # Alloy's published limits per key
WINDOW_S = 60.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="digest_budget",
        description="Run the defects digest recipe over N items with Alloy's rate limits on and measure "
        "the requests per family, the busiest 60 s window against the key's budget, and 429s.",
    )
    parser.add_argument("--items", type=int, default=5000, help="open defects older than 30 days (5000)")
    parser.add_argument("--high-every", type=int, default=10, help="every Nth defect is High priority (10)")
    parser.add_argument("--timeout", type=float, default=1800, help="give up after this many seconds")
    add_result_name_option(parser, NAME)
    parser.add_argument("--keep-workdir", action="store_true", help="keep the temp folder with the logs")
    args = parser.parse_args(argv)
    if args.items < 1 or args.high_every < 1:
        parser.error("--items and --high-every must be at least 1")
    return args


class RequestSampler:
    """Samples the emulator's cumulative request counts every second, in a thread."""

    def __init__(self, emulator: Any) -> None:
        self.emulator = emulator
        self.samples: list[tuple[float, dict[str, int]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> RequestSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.is_set():
            counts = self.emulator.stats()
            self.samples.append((time.monotonic(), {family: sum(v.values()) for family, v in counts.items()}))
            self._stop.wait(1.0)

    def busiest_windows(self) -> dict[str, int]:
        """Per family, the most requests counted within any 60 s of the samples."""
        busiest: dict[str, int] = {}
        for family in BUDGET_PER_MINUTE:
            window: deque[tuple[float, int]] = deque()
            best = 0
            for at, counts in self.samples:
                window.append((at, counts.get(family, 0)))
                while at - window[0][0] > WINDOW_S:
                    window.popleft()
                best = max(best, window[-1][1] - window[0][1])
            busiest[family] = best
        return busiest


def defect_drafts(start: int, count: int, high_every: int) -> list[dict[str, Any]]:
    return [
        defect(
            f"D-{n:05d}",
            "Open",
            "High" if n % high_every == 0 else "Low",
            age_days=40,
            location=f"Street {n}",
        )
        for n in range(start, start + count)
    ]


def step_seconds(system: Any, item: str) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = system.api(f"/api/jobs/{item}")["runs"]
    return runs


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    machine = machine_info()
    record = recipe("Defects digest")
    with smtp_inbox() as inbox:
        env: dict[str, Any] = {
            "ALLOYSYNC_BUILTIN_ALLOY_DESIGNS": DEFECTS,
            "ALLOYSYNC_BUILTIN_MAIL_ALLOW": "council.example",
            "ALLOYSYNC_SMTP_HOST": "127.0.0.1",
            "ALLOYSYNC_SMTP_PORT": str(inbox.port),
            "ALLOYSYNC_WORKER_THREADS": "2",
        }
        progress("starting redis-server, emulator (rate limits on) ...")
        with running_stack(NAME, rate_limits=True, keep_workdir=args.keep_workdir, **env) as stack:
            system = stack.system
            define_recipe_designs(stack.emulator)
            progress(f"creating {args.items} defects (admin bulk create) ...")
            for start in range(1, args.items + 1, 1000):
                stack.emulator.bulk_create(
                    defect_drafts(start, min(1000, args.items + 1 - start), args.high_every)
                )
            system.start_serve()
            system.start_worker()
            stack.wait_for_poller()
            sampler = RequestSampler(stack.emulator).start()
            before = stack.emulator_counts()
            started = time.monotonic()
            item = system.create_job(
                record["title"],
                record["task"],
                params=record["params"],
                schedule=record["schedule"],
                timezone=record["timezone"],
                run_requested=True,
            )
            progress("digest job created; waiting for its run ...")

            def finished() -> dict[str, Any] | None:
                job = system.job(item)
                if job["status"] == "Failed":
                    raise RuntimeError(f"the digest failed: {job['message']}")
                return job if job["run_count"] == 1 else None

            job = system.wait_until(finished, args.timeout, "the digest run", interval=2.0)
            run_s = time.monotonic() - started
            progress(f"digest done in {run_s:.1f} s: {job['message']}")
            time.sleep(5)  # the reporter's last status writes
            sampler.stop()
            settled = stack.emulator_counts()
            runs = step_seconds(system, item)
            defects = values_of(stack.emulator, DEFECTS)
            messages = inbox.wait_for(1)
            shutdown = stack.stop_processes()
            problems = stack.log_problems()

    delta = request_delta(before, settled)
    escalated = sum(1 for values in defects.values() if values.get("attributes_defectsStatus") == "Escalated")
    busiest = sampler.busiest_windows()
    body_lines = len(messages[0][1].get_content().splitlines()) if messages else 0
    results = {
        "items": args.items,
        "escalated": escalated,
        "expected_escalated": args.items // args.high_every,
        "run_s": round(run_s, 1),
        "message": job["message"],
        "run": runs[0] if runs else None,
        "emails": len(messages),
        "email_lines": body_lines,
        "http_429_total": count_status(delta, "429"),
        "emulator_requests": delta,
        "busiest_60s_window": busiest,
        "busiest_60s_share_of_budget": {
            family: round(count / BUDGET_PER_MINUTE[family], 3) for family, count in busiest.items()
        },
        "logged_warnings_and_errors": problems,
        "shutdown": shutdown,
    }
    payload = {
        "benchmark": NAME,
        "parameters": {
            "items": args.items,
            "high_every": args.high_every,
            "recipe": record["task"],
            "emulator": "rate limits on (120 queries, 300 reads, 150 writes per 60 s)",
        },
        "machine": machine,
        "results": results,
    }
    path = write_result(args.result_name, payload)
    progress(
        f"429s: {results['http_429_total']}; busiest 60 s: {busiest}; escalated {escalated}; result in {path}"
    )
    return 0 if results["http_429_total"] == 0 and escalated == results["expected_escalated"] else 1


if __name__ == "__main__":
    run_main(main)

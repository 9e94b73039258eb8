"""The seed pipeline runs as one job on the worker pool and its outcome lands on the Alloy record."""

from __future__ import annotations

import time
from collections.abc import Iterator
from email import message_from_bytes, policy
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from alloysync.local.redis_server import free_port
from tests.support.system import System

SEED_PIPELINE = "coinrequest.get_btc_prices | coinrequest.process_prices | coinrequest.compose_price_email"


def test_seed_pipeline_goes_queued_running_succeeded(system: System) -> None:
    system.start_serve()
    # The price feed answers slowly, so the run stays in its first step long enough to be seen.
    system.emulator.set_faults(feed_latency_ms=2500)
    item = system.create_job("BTC price e-mail", SEED_PIPELINE, params={"currencies": ["USD", "GBP", "EUR"]})
    watcher = system.watch(item)
    system.wait_for_status(item, "Queued")  # no worker yet: the run waits on the queue
    system.start_worker()
    assert watcher.until("Succeeded", timeout=60) == ["Queued", "Running", "Succeeded"]

    job = system.job(item)
    email = job["result"]
    assert email["subject"].startswith("BTC prices: EUR: €")
    assert "USD: $" in email["body"] and "GBP: £" in email["body"]
    assert job["message"].startswith("Succeeded in ") and email["subject"] in job["message"]
    assert job["run_count"] == 1
    assert job["last_run_started"] < job["last_run_finished"]
    runs = system.api(f"/api/jobs/{item}")["runs"]
    assert [run["state"] for run in runs] == ["succeeded"]
    assert runs[0]["duration"] >= 2.5  # the slow first step is part of the run


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((envelope.rcpt_tos, message_from_bytes(envelope.content, policy=policy.default)))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[int, Inbox]]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield port, inbox
    controller.stop()


def test_pipeline_sends_the_price_email_over_smtp(system: System, smtp: tuple[int, Inbox]) -> None:
    port, inbox = smtp
    system.start_serve()
    system.start_worker(
        COINREQUEST_SMTP_HOST="127.0.0.1",
        COINREQUEST_SMTP_PORT=str(port),
        COINREQUEST_MAIL_TO="ops@example.test, finance@example.test",
        COINREQUEST_MAIL_FROM="alloysync@example.test",
    )
    item = system.create_job("BTC price e-mail, sent", f"{SEED_PIPELINE} | coinrequest.send_price_email")
    job = system.wait_for_status(item, "Succeeded", timeout=60)
    deadline = time.monotonic() + 5
    while not inbox.messages and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(inbox.messages) == 1
    recipients, message = inbox.messages[0]
    assert recipients == ["ops@example.test", "finance@example.test"]
    assert message["Subject"].startswith("BTC prices: ")
    assert job["result"]["sent_to"] == recipients
    assert job["result"]["subject"] == message["Subject"]


def test_failing_step_reports_failed_with_the_error(system: System) -> None:
    system.start_serve()
    system.start_worker()
    item = system.create_job("needs SMTP", f"{SEED_PIPELINE} | coinrequest.send_price_email")
    job = system.wait_for_status(item, "Failed", timeout=90)
    assert "step 4/4 (coinrequest.send_price_email)" in job["message"]
    assert "no recipients" in job["message"] or "cannot send mail" in job["message"]
    assert job["run_count"] == 1

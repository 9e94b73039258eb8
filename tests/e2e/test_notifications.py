"""Notifications and freshness end to end: real serve and worker processes, a real SMTP server
(aiosmtpd) and a loopback webhook receiver.

- A job that fails twice and then succeeds mails twice (the first failure, the recovery), and its
  record counts ConsecutiveFailures 1 → 2 → 0.
- A Notify naming a URL outside ALLOYSYNC_NOTIFY_URL_ALLOW makes the record Invalid; nothing is sent.
- A job with MaxAge 1m becomes Overdue, is notified, exports alloysync_jobs_overdue 1, and clears
  at its next success.
- A notification in flight (the SMTP server is down) survives a SIGKILL of serve and is delivered
  once, by the serve started after it.
- The SMTP password appears in no log of any process.
"""

from __future__ import annotations

import base64
import contextlib
import time
import urllib.request
from collections.abc import Iterator
from email.message import EmailMessage

import pytest
from prometheus_client.parser import text_string_to_metric_families

from alloysync.local.redis_server import free_port
from tests.support.notify_servers import SmtpServer, WebhookReceiver, running_receiver, running_smtp
from tests.support.system import CODES, System

PUBLIC = "https://alloysync.example.org"
RECIPIENT = "ops@example.org"


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    yield from running_smtp()


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    yield from running_receiver()


def notify_env(smtp_port: int | None = None, allow: str = "", **extra: str) -> dict[str, str]:
    """serve's settings for notifications (fast freshness checks, a public URL for the links)."""
    env = {
        "ALLOYSYNC_PUBLIC_URL": PUBLIC,
        "ALLOYSYNC_FRESHNESS_INTERVAL": "1",
        "ALLOYSYNC_NOTIFY_URL_ALLOW": allow,
    }
    if smtp_port is not None:
        env |= {"ALLOYSYNC_SMTP_HOST": "127.0.0.1", "ALLOYSYNC_SMTP_PORT": str(smtp_port)}
    return env | extra


def body_text(mail: EmailMessage) -> str:
    part = mail.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


def subjects(smtp: SmtpServer) -> list[str]:
    return [str(mail["Subject"]) for mail in smtp.messages]


def settle(system: System, seconds: float = 3.0) -> None:
    """Wait until every queued notification is done with, then a little longer (for any extra send)."""
    system.wait_until(lambda: system.redis.xlen("alloysync:notify") == 0, 30, "the notify queue to drain")
    time.sleep(seconds)


def overdue_gauge(system: System, item_id: str) -> float | None:
    with urllib.request.urlopen(system.url() + "/metrics", timeout=10) as response:  # noqa: S310 - loopback
        text = response.read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "alloysync_jobs_overdue" and sample.labels.get("item_id") == item_id:
                return float(sample.value)
    return None


def test_a_job_failing_twice_then_succeeding_mails_the_first_failure_and_the_recovery(
    system: System, smtp: SmtpServer
) -> None:
    system.overrides |= notify_env(smtp.port)
    system.start_serve()
    system.start_worker()
    # tests.flaky makes 4 attempts per run (3 retries): with 8 failures, runs 1 and 2 fail, run 3 succeeds.
    item = system.create_job(
        "flaky export",
        "tests.flaky",
        params={"label": "fff", "failures": 8},
        notify=RECIPIENT,
        notify_on="failure",
    )
    streaks = []

    def ended(status: str, streak: int) -> bool:
        job = system.job(item)
        return (
            job["status"] == status
            and job["consecutive_failures"] == streak
            and job["run_requested"] is not True
        )

    system.wait_until(lambda: ended("Failed", 1), 60, "the first run to fail")
    streaks.append(system.job(item)["consecutive_failures"])
    system.wait_until(lambda: len(smtp.messages) == 1, 30, "the first failure's e-mail")
    system.edit_job(item, run_requested=True)
    system.wait_until(lambda: ended("Failed", 2), 60, "the second run to fail")
    streaks.append(system.job(item)["consecutive_failures"])
    system.edit_job(item, run_requested=True)
    system.wait_until(lambda: ended("Succeeded", 0), 60, "the third run to succeed")
    job = system.job(item)
    streaks.append(job["consecutive_failures"])
    assert streaks == [1, 2, 0]
    assert job["last_succeeded"] and job["run_count"] == 3

    system.wait_until(lambda: len(smtp.messages) >= 2, 30, "the recovery e-mail")
    settle(system)
    assert subjects(smtp) == ["[alloysync] flaky export failed", "[alloysync] flaky export recovered"]
    failure, recovery = smtp.messages
    assert failure["To"] == RECIPIENT
    text = body_text(failure)
    assert "Status:   Failed" in text and "attempt 4 fails on purpose" in text
    assert f"{PUBLIC}/jobs/{item}" in text
    assert "Status:   Succeeded" in body_text(recovery) and "succeeded on attempt 9" in body_text(recovery)


def test_a_notify_naming_an_unlisted_url_is_invalid_and_nothing_is_sent(
    system: System, receiver: WebhookReceiver
) -> None:
    system.overrides |= notify_env(allow=f"{receiver.url}/allowed/")
    system.start_serve()
    system.start_worker()
    unlisted = system.create_job(
        "unlisted hook", "tests.fail", params={"label": "unlisted"}, notify=f"{receiver.url}/elsewhere"
    )
    listed = system.create_job(
        "listed hook", "tests.fail", params={"label": "listed"}, notify=f"{receiver.url}/allowed/hook"
    )
    job = system.wait_for_status(unlisted, "Invalid")
    assert CODES.notify in job["message"] and "not allowed" in job["message"], job["message"]
    # The job next to it, whose URL is allowed, shows the receiver would have been called.
    system.wait_for_status(listed, "Failed")
    system.wait_until(lambda: receiver.requests("/allowed/hook"), 30, "the allowed webhook")
    settle(system)
    assert receiver.requests("/elsewhere") == []
    [request] = receiver.requests()
    assert request.body["item_id"] == listed and request.body["status"] == "Failed"
    assert request.body["title"] == "listed hook" and "listed failed on purpose" in request.body["message"]
    assert request.body["run_id"] and request.body["finished"]
    assert system.executions("unlisted") == []


def test_a_job_without_a_success_within_max_age_becomes_overdue_and_clears_at_its_next_success(
    system: System, smtp: SmtpServer
) -> None:
    system.overrides |= notify_env(smtp.port)
    system.start_serve()
    system.start_worker()
    created = time.monotonic()
    # A yearly cron never fires here: nothing runs, so nothing succeeds within the MaxAge.
    item = system.create_job(
        "yearly feed",
        "tests.record",
        params={"label": "feed"},
        schedule="0 3 1 1 *",
        max_age="1m",
        notify=RECIPIENT,
    )
    system.wait_for_status(item, "Scheduled")
    system.wait_until(lambda: overdue_gauge(system, item) == 0.0, 20, "the job's overdue gauge at 0")
    job = system.wait_for_status(item, "Overdue", timeout=120)
    assert time.monotonic() - created >= 60
    assert job["message"].startswith("No success for") and "(MaxAge 1m)" in job["message"], job["message"]
    system.wait_until(
        lambda: subjects(smtp) == ["[alloysync] yearly feed is overdue"], 30, "the overdue e-mail"
    )
    assert "Status:   Overdue" in body_text(smtp.messages[0])
    system.wait_until(lambda: (overdue_gauge(system, item) or 0) >= 1, 20, "alloysync_jobs_overdue at 1")

    system.edit_job(item, run_requested=True)
    system.wait_for_status(item, "Succeeded")
    system.wait_until(lambda: overdue_gauge(system, item) == 0.0, 20, "the overdue gauge back at 0")
    settle(system)
    assert len(smtp.messages) == 1  # a success that ends no failure streak is no news under `failure`


def test_a_notification_in_flight_survives_a_sigkill_of_serve_and_is_delivered_once(system: System) -> None:
    port = free_port()  # the SMTP server is down: nothing listens here yet
    system.overrides |= notify_env(port)
    serve = system.start_serve()
    system.start_worker()
    item = system.create_job("doomed mail", "tests.fail", params={"label": "doomed"}, notify=RECIPIENT)
    system.wait_for_status(item, "Failed")
    system.wait_until(
        lambda: "notification delivery failed" in serve.log_tail(400), 30, "serve to fail to reach SMTP"
    )
    pending = system.redis.xpending("alloysync:notify", "notifier")
    assert pending["pending"] == 1, pending
    serve.kill()

    smtp = SmtpServer(port=port)
    try:
        system.start_serve("serve-2")
        smtp.start()
        system.wait_until(lambda: smtp.messages, 90, "the e-mail from the restarted serve")
        settle(system, seconds=5)
        assert subjects(smtp) == ["[alloysync] doomed mail failed"]
    finally:
        smtp.stop()
    restarted = system.children["serve-2"].log_tail(400)
    assert "took over notifications of another notifier" in restarted


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")  # loopback test server
def test_the_smtp_password_appears_in_no_log(system: System) -> None:
    password = "Tr0ub4dor&3-never-log-me"
    user = "alloysync-mailer"
    # Two refused logins fail the first attempt (smtplib tries AUTH PLAIN, then LOGIN): the error path logs.
    with running_smtp_context(user=user, password=password, reject_logins=2) as smtp:
        # Every process gets the settings (a deployment's processes share one .env), logging all it can.
        system.overrides |= notify_env(smtp.port, ALLOYSYNC_LOG_LEVEL="DEBUG", **smtp.settings_env())
        system.start_serve()
        system.start_worker()
        item = system.create_job("secretive", "tests.fail", params={"label": "secretive"}, notify=RECIPIENT)
        system.wait_for_status(item, "Failed")
        system.wait_until(lambda: smtp.messages, 60, "the e-mail after a refused login")
        settle(system)
        assert len(smtp.messages) == 1 and smtp.logins[-1] is True and False in smtp.logins
    serve_log = system.children["serve"].log_tail(2000)
    assert "SMTPAuthenticationError" in serve_log  # the refusal was logged...
    forms = [
        password,
        base64.b64encode(password.encode()).decode(),
        base64.b64encode(f"\0{user}\0{password}".encode()).decode(),
    ]
    logs = sorted((system.workdir / "logs").glob("*.log"))
    assert logs
    for path in logs:
        text = path.read_text(errors="replace")
        for form in forms:
            assert form not in text, (
                f"{path.name} carries the SMTP password ({form[:4]}…)"
            )  # ...never the password


def running_smtp_context(**options: object) -> contextlib.AbstractContextManager[SmtpServer]:
    return contextlib.contextmanager(running_smtp)(**options)

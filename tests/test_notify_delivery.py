"""The notifier against a real Redis, a real SMTP server (aiosmtpd) and a real HTTP receiver: what
arrives, retries with backoff, no resend to a delivered target, take-over of a dead notifier's
entries, giving up, pacing, and the allow-list and redirects checked at send time."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis
import structlog
from pydantic import SecretStr

from alloysync.alloy.ratelimit import TokenBucket
from alloysync.local.redis_server import RedisServer
from alloysync.serve.notifier import Notifier
from alloysync.serve.notify_channels import EmailChannel, scrub
from alloysync.settings import Settings
from alloysync.state import keys
from alloysync.state.connections import connect_async
from alloysync.state.notifications import NotificationQueue
from alloysync.state.run_logs import RunLogWriter
from tests.support.notify_servers import SmtpServer, WebhookReceiver, running_receiver, running_smtp

ITEM = "65a1b2c3d4e5f60718293a4b"
RUN = f"now:{ITEM}:v1"
PUBLIC = "https://alloysync.example.org"


@pytest.fixture
async def client(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    connection = connect_async(redis_server.url)
    yield connection
    await connection.aclose()


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    yield from running_smtp()


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    yield from running_receiver()


def settings_for(
    redis_server: RedisServer, smtp_port: int | None, allow: list[str], **extra: Any
) -> Settings:
    return Settings(
        redis_url=redis_server.url,
        smtp_host="127.0.0.1" if smtp_port else "",
        smtp_port=smtp_port or 25,
        smtp_from="alloysync@example.org",
        smtp_timeout=5,
        notify_url_allow=allow,
        public_url=PUBLIC,
        **extra,
    )


def notifier_for(
    settings: Settings, client: aioredis.Redis, consumer: str = "serve-a", **options: Any
) -> Notifier:
    options.setdefault("first_backoff", 0.2)
    options.setdefault("max_backoff", 0.5)
    options.setdefault("budget", TokenBucket(6000))
    return Notifier(settings, client, consumer, **options)


async def a_job(client: aioredis.Redis, notify: str, title: str = "Nightly export") -> None:
    await client.hset(
        keys.job(ITEM), mapping={"title": title, "state": "valid", "notify": notify, "notify_on": "failure"}
    )
    await client.sadd(keys.JOBS, ITEM)


async def a_failed_run(client: aioredis.Redis, redis_server: RedisServer) -> str:
    """A failed run with a log, and its notification; returns the entry id."""
    await client.hset(
        keys.run(RUN),
        mapping={
            "run_id": RUN,
            "item": ITEM,
            "state": "failed",
            "started": "2026-11-21T10:00:00.000Z",
            "finished": "2026-11-21T10:00:04.000Z",
        },
    )
    sync = redis.Redis.from_url(redis_server.url, decode_responses=True)
    lines = [
        {"at": f"2026-11-21T10:00:0{n}.000Z", "level": "INFO", "text": f"line {n}", "step": 0}
        for n in range(4)
    ]
    RunLogWriter(sync, max_lines=200).append(RUN, lines)
    sync.close()
    return await NotificationQueue(client).append(
        ITEM, "failed", "2026-11-21T10:00:04.000Z", "RuntimeError: boom", run_id=RUN, failures=1
    )


@contextlib.asynccontextmanager
async def running(notifier: Notifier) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(notifier.run())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def until(check: Callable[[], Awaitable[bool]] | Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if isinstance(result, Awaitable):
            result = await result
        if result:
            return
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def drained(client: aioredis.Redis) -> bool:
    return int(await client.xlen(keys.NOTIFY)) == 0


# --- what arrives ---------------------------------------------------------------------------------------


async def test_an_email_and_a_webhook_arrive_with_the_job_status_error_log_and_link(
    client: aioredis.Redis, redis_server: RedisServer, smtp: SmtpServer, receiver: WebhookReceiver
) -> None:
    hook = f"{receiver.url}/hooks/alloysync?token=s3cret"
    await a_job(client, f"ops@example.org,{hook}")
    entry_id = await a_failed_run(client, redis_server)
    settings = settings_for(redis_server, smtp.port, [f"{receiver.url}/hooks/"])
    with structlog.testing.capture_logs() as logs:
        async with running(notifier_for(settings, client)):
            await until(lambda: drained(client), 10, "the entry to be acknowledged")
    [mail] = smtp.messages
    assert mail["Subject"] == "[alloysync] Nightly export failed"
    assert (mail["To"], mail["From"]) == ("ops@example.org", "alloysync@example.org")
    assert mail["Message-ID"].startswith(f"<alloysync.{entry_id}.")
    text = mail.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    html = mail.get_body(preferencelist=("html",)).get_content()  # type: ignore[union-attr]
    for body in (text, html):
        assert "RuntimeError: boom" in body and "Failed" in body and "2026-11-21T10:00:04.000Z" in body
        assert "line 0" in body and "line 3" in body
        assert f"{PUBLIC}/jobs/{ITEM}" in body

    [request] = receiver.requests()
    assert request.path == "/hooks/alloysync?token=s3cret"
    assert request.headers["Content-Type"].startswith("application/json")
    assert request.headers["X-Alloysync-Delivery"] == entry_id
    body = request.body
    assert {k: body[k] for k in ("item_id", "title", "status", "message", "run_id", "finished")} == {
        "item_id": ITEM,
        "title": "Nightly export",
        "status": "Failed",
        "message": "RuntimeError: boom",
        "run_id": RUN,
        "finished": "2026-11-21T10:00:04.000Z",
    }
    assert not await client.exists(keys.notify_delivered(entry_id))
    assert all("s3cret" not in str(line) for line in logs), "a webhook's token reached a log line"
    sent = [line for line in logs if line["event"] == "notification sent"]
    assert {line["target"] for line in sent} == {"ops@example.org", f"{receiver.url}/…"}


async def test_a_retry_after_a_partial_success_never_resends_to_a_delivered_target(
    client: aioredis.Redis, redis_server: RedisServer, smtp: SmtpServer
) -> None:
    with contextlib.ExitStack() as stack:
        flaky = stack.enter_context(contextlib.contextmanager(running_receiver)(statuses=[503, 502]))
        await a_job(client, f"ops@example.org,{flaky.url}/hook")
        await a_failed_run(client, redis_server)
        settings = settings_for(redis_server, smtp.port, [flaky.url])
        async with running(notifier_for(settings, client)):
            await until(lambda: drained(client), 10, "the entry to be acknowledged")
        assert len(flaky.requests()) == 3  # 503, 502, then 200
    assert len(smtp.messages) == 1  # sent on the first round, never again


async def test_an_smtp_server_that_is_down_gets_the_mail_once_it_is_up(
    client: aioredis.Redis, redis_server: RedisServer
) -> None:
    server = SmtpServer()  # its port is reserved, nothing listens yet
    await a_job(client, "ops@example.org")
    await a_failed_run(client, redis_server)
    settings = settings_for(redis_server, server.port, [])
    with structlog.testing.capture_logs() as logs:
        async with running(notifier_for(settings, client)):
            await until(
                lambda: sum(line["event"] == "notification delivery failed" for line in logs) >= 2,
                10,
                "two failed attempts",
            )
            assert not await drained(client)
            server.start()
            try:
                await until(lambda: drained(client), 10, "the entry to be acknowledged")
            finally:
                server.stop()
    assert len(server.messages) == 1
    retries = [line for line in logs if line["event"] == "notification not delivered yet; retrying later"]
    assert [line["attempt"] for line in retries[:2]] == [1, 2]


async def test_a_dead_notifiers_entry_is_taken_over_and_only_the_missing_target_is_sent(
    client: aioredis.Redis, redis_server: RedisServer, smtp: SmtpServer, receiver: WebhookReceiver
) -> None:
    await a_job(client, f"ops@example.org,{receiver.url}/hook")
    entry_id = await a_failed_run(client, redis_server)
    queue = NotificationQueue(client)
    await queue.ensure_group()
    await queue.read_new("serve-dead", block_ms=100)  # read by a notifier that then died...
    await queue.mark_delivered(entry_id, "ops@example.org", "sent")  # ...after mailing, before the webhook
    settings = settings_for(redis_server, smtp.port, [receiver.url])
    async with running(notifier_for(settings, client, "serve-b", claim_idle_ms=300, claim_every=0.1)):
        await until(lambda: drained(client), 10, "the entry to be taken over and acknowledged")
    assert smtp.messages == []
    assert len(receiver.requests()) == 1


async def test_a_notifier_leaves_its_own_retrying_entries_to_itself(
    client: aioredis.Redis, redis_server: RedisServer
) -> None:
    with contextlib.ExitStack() as stack:
        down = stack.enter_context(contextlib.contextmanager(running_receiver)(statuses=[503] * 1000))
        await a_job(client, f"{down.url}/hook")
        await a_failed_run(client, redis_server)
        settings = settings_for(redis_server, None, [down.url])
        notifier = notifier_for(settings, client, "serve-a", claim_idle_ms=100, claim_every=0.05)
        async with running(notifier):
            await until(lambda: len(down.requests()) >= 3, 10, "a few retries")
            assert await notifier.take_over_idle() == 0
        assert not await drained(client)


async def test_a_notification_that_cannot_be_delivered_is_given_up_after_the_bound(
    client: aioredis.Redis, redis_server: RedisServer
) -> None:
    with contextlib.ExitStack() as stack:
        down = stack.enter_context(contextlib.contextmanager(running_receiver)(statuses=[503] * 1000))
        await a_job(client, f"{down.url}/hook")
        await a_failed_run(client, redis_server)
        settings = settings_for(redis_server, None, [down.url])
        with structlog.testing.capture_logs() as logs:
            async with running(notifier_for(settings, client, give_up_after=1.0)):
                await until(lambda: drained(client), 10, "the entry to be given up")
        assert len(down.requests()) >= 2  # retried until the bound
    [gave_up] = [line for line in logs if line["event"] == "notification undelivered for too long; giving up"]
    assert gave_up["log_level"] == "error" and gave_up["targets"] == [f"{down.url}/…"]


async def test_a_jobs_notifications_arrive_in_order_even_when_the_first_is_retried(
    client: aioredis.Redis, redis_server: RedisServer
) -> None:
    with contextlib.ExitStack() as stack:
        busy_once = stack.enter_context(contextlib.contextmanager(running_receiver)(statuses=[503]))
        await a_job(client, f"{busy_once.url}/hook")
        queue = NotificationQueue(client)
        await queue.append(ITEM, "failed", "2026-11-21T10:00:00.000Z", "boom", failures=1)
        await queue.append(ITEM, "recovered", "2026-11-21T10:01:00.000Z", "fine again")
        settings = settings_for(redis_server, None, [busy_once.url])
        async with running(notifier_for(settings, client)):
            await until(lambda: drained(client), 10, "the entries to be acknowledged")
        events = [request.body["event"] for request in busy_once.requests()]
    assert events == ["failed", "failed", "recovered"]


async def test_a_refusal_is_not_retried(client: aioredis.Redis, redis_server: RedisServer) -> None:
    with contextlib.ExitStack() as stack:
        refusing = stack.enter_context(contextlib.contextmanager(running_receiver)(statuses=[404]))
        await a_job(client, f"{refusing.url}/hook")
        await a_failed_run(client, redis_server)
        settings = settings_for(redis_server, None, [refusing.url])
        async with running(notifier_for(settings, client)):
            await until(lambda: drained(client), 10, "the entry to be acknowledged")
            await asyncio.sleep(0.5)
        assert len(refusing.requests()) == 1


# --- bounds: the allow-list at send time, redirects, pacing, e-mail off -------------------------------------


async def test_a_url_no_longer_allowed_gets_no_request(
    client: aioredis.Redis, redis_server: RedisServer, receiver: WebhookReceiver
) -> None:
    await a_job(client, f"{receiver.url}/hook")  # validated when the prefix was allowed
    await a_failed_run(client, redis_server)
    settings = settings_for(redis_server, None, ["https://hooks.example.org/"])  # the operator changed it
    with structlog.testing.capture_logs() as logs:
        async with running(notifier_for(settings, client)):
            await until(lambda: drained(client), 10, "the entry to be acknowledged")
    assert receiver.requests() == []
    assert any("not allowed" in line["event"] for line in logs)


async def test_redirects_are_not_followed(
    client: aioredis.Redis, redis_server: RedisServer, receiver: WebhookReceiver
) -> None:
    with contextlib.ExitStack() as stack:
        redirecting = stack.enter_context(
            contextlib.contextmanager(running_receiver)(redirect_to=f"{receiver.url}/elsewhere")
        )
        await a_job(client, f"{redirecting.url}/hook")
        await a_failed_run(client, redis_server)
        settings = settings_for(redis_server, None, [redirecting.url, receiver.url])
        async with running(notifier_for(settings, client)):
            await until(lambda: drained(client), 10, "the entry to be acknowledged")
        assert len(redirecting.requests()) == 1
    assert receiver.requests() == []


async def test_sending_is_paced_by_the_budget(
    client: aioredis.Redis, redis_server: RedisServer, receiver: WebhookReceiver
) -> None:
    await a_job(client, f"{receiver.url}/hook")
    queue = NotificationQueue(client)
    for n in range(3):
        await queue.append(ITEM, "failed", "2026-11-21T10:00:00.000Z", f"failure {n}", failures=1)
    settings = settings_for(redis_server, None, [receiver.url])
    started = time.monotonic()
    async with running(notifier_for(settings, client, budget=TokenBucket(2, window=1.0))):  # 1 at once, 1/s
        await until(lambda: drained(client), 10, "the entries to be acknowledged")
    elapsed = time.monotonic() - started
    assert len(receiver.requests()) == 3
    assert elapsed >= 1.8, elapsed


async def test_with_email_off_an_address_is_skipped_and_the_webhook_still_goes(
    client: aioredis.Redis, redis_server: RedisServer, receiver: WebhookReceiver
) -> None:
    await a_job(client, f"ops@example.org,{receiver.url}/hook")
    await a_failed_run(client, redis_server)
    settings = settings_for(redis_server, None, [receiver.url])  # no ALLOYSYNC_SMTP_HOST
    with structlog.testing.capture_logs() as logs:
        async with running(notifier_for(settings, client)):
            await until(lambda: drained(client), 10, "the entry to be acknowledged")
    assert len(receiver.requests()) == 1
    assert any("e-mail notifications are off" in line["event"] for line in logs)


# --- the SMTP password --------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")  # loopback test server
async def test_a_refused_login_is_retried_and_no_log_line_carries_the_password(
    client: aioredis.Redis, redis_server: RedisServer
) -> None:
    password = "correct horse battery staple"
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(
            # smtplib tries AUTH PLAIN, then AUTH LOGIN: refusing two logins fails the first attempt.
            contextlib.contextmanager(running_smtp)(user="alloysync", password=password, reject_logins=2)
        )
        await a_job(client, "ops@example.org")
        await a_failed_run(client, redis_server)
        settings = settings_for(
            redis_server, server.port, [], smtp_user="alloysync", smtp_password=SecretStr(password)
        )
        with structlog.testing.capture_logs() as logs:
            async with running(notifier_for(settings, client)):
                await until(lambda: drained(client), 10, "the entry to be acknowledged")
        assert server.logins == [False, False, True]
        assert len(server.messages) == 1
    failed = [line for line in logs if line["event"] == "notification delivery failed"]
    assert failed and "SMTPAuthenticationError" in failed[0]["reason"]
    assert all(password not in str(line) for line in logs)


def test_error_texts_are_scrubbed_of_the_password_and_its_encodings() -> None:
    settings = Settings(smtp_host="127.0.0.1", smtp_user="me", smtp_password=SecretStr("hunter2!"))
    channel = EmailChannel(settings)
    secrets = channel._secrets()
    assert "hunter2!" in secrets and "aHVudGVyMiE=" in secrets and "AG1lAGh1bnRlcjIh" in secrets
    said = channel._describe(RuntimeError("AUTH PLAIN AG1lAGh1bnRlcjIh refused; password hunter2!"))
    assert "hunter2" not in said and "AG1lAGh1bnRlcjIh" not in said
    assert scrub("a b a", ["a", ""]) == "********** b **********"
    assert "hunter2" not in repr(settings) and "hunter2" not in str(channel.__dict__)


async def test_a_sender_cancelled_just_as_it_is_woken_stops(
    client: aioredis.Redis, redis_server: RedisServer
) -> None:
    """The wake and the cancel in the same turn of the loop: the sender must end cancelled. On
    Python 3.11, `asyncio.wait_for` returned instead of raising here, so the sender went back to
    waiting and stopping the notifier hung (the reason `_reserve` uses `asyncio.timeout`)."""
    notifier = notifier_for(settings_for(redis_server, None, []), client)
    sender = asyncio.create_task(notifier._reserve())
    await asyncio.sleep(0.05)  # waiting for work
    notifier._wake.set()
    sender.cancel()
    with pytest.raises(asyncio.CancelledError):
        async with asyncio.timeout(5):
            await sender

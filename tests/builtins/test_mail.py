"""mail.send through a loopback SMTP server (aiosmtpd): recipients at allowed domains only,
subject and body from options or the previous step, attachments, and once per run."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from alloysync.builtins import mail
from alloysync.builtins.common import BuiltinError
from alloysync.local.redis_server import RedisServer
from alloysync.model.registry import ParamsError
from alloysync.settings import Settings
from tests.builtins.conftest import ContextFactory, make_settings
from tests.support.smtp import Inbox, smtp_inbox


@pytest.fixture
def inbox() -> Iterator[Inbox]:
    with smtp_inbox() as server:
        yield server


@pytest.fixture
def settings(redis_server: RedisServer, inbox: Inbox) -> Settings:
    return make_settings(
        redis_server, None, smtp_port=inbox.port, smtp_from="alloysync@council.example", smtp_timeout=5
    )


async def test_the_previous_steps_subject_and_body_are_sent_once_per_run(
    settings: Settings, inbox: Inbox, context: ContextFactory
) -> None:
    rendered = {"subject": "Defects digest: 2 escalated", "body": "D-1\nD-2\n"}
    async with context(settings, run_id="cron:job-1:2026-03-02T07:00:00Z", step=4) as ctx:
        sent = await mail.send(
            rendered, ctx=ctx, to=["highways@council.example"], cc=["Duty <duty@council.example>"]
        )
        again = await mail.send(
            rendered, ctx=ctx, to=["highways@council.example"], cc=["Duty <duty@council.example>"]
        )
    assert again == sent and sent["summary"] == "e-mailed 'Defects digest: 2 escalated' to 2 recipients"
    messages = inbox.wait_for(1)
    assert len(messages) == 1  # the redelivered step did not send it again
    recipients, message = messages[0]
    assert recipients == ["highways@council.example", "duty@council.example"]
    assert (
        message["Subject"] == "Defects digest: 2 escalated" and message["From"] == "alloysync@council.example"
    )
    assert message["Message-ID"] == sent["message_id"]
    assert message.get_content().splitlines() == ["D-1", "D-2"]


async def test_templates_and_an_attachment(settings: Settings, inbox: Inbox, context: ContextFactory) -> None:
    csv_text = "reference,cost\nW-1,120\n"
    async with context(settings, step=2) as ctx:
        await mail.send(
            csv_text,
            ctx=ctx,
            to=["finance@council.example"],
            subject="Work orders ({{ input.splitlines() | length - 1 }}) for {{ job.title }}",
            attachment="work-orders.csv",
        )
    _recipients, message = inbox.wait_for(1)[0]
    assert message["Subject"] == "Work orders (1) for Test job"
    body = message.get_body(preferencelist=("plain",))
    assert body is not None and body.get_content().strip() == "Test job: see the attached work-orders.csv."
    attachments = list(message.iter_attachments())
    assert [part.get_filename() for part in attachments] == ["work-orders.csv"]
    assert attachments[0].get_content_type() == "text/csv"
    assert attachments[0].get_content().splitlines() == csv_text.splitlines()


async def test_refusals(settings: Settings, inbox: Inbox, context: ContextFactory) -> None:
    async with context(settings) as ctx:
        with pytest.raises(ParamsError, match="not at an allowed domain"):
            await mail.send("hello", ctx=ctx, to=["someone@elsewhere.example"], subject="x")
        with pytest.raises(BuiltinError, match="has no subject"):
            await mail.send("hello", ctx=ctx, to=["ops@council.example"])
        with pytest.raises(BuiltinError, match="has no body"):
            await mail.send({"rows": []}, ctx=ctx, to=["ops@council.example"], subject="x")
    closed = Settings(**{**settings.model_dump(), "smtp_port": 9})
    async with context(closed, step=3) as ctx:
        with pytest.raises(BuiltinError, match=r"cannot send through 127\.0\.0\.1:9"):
            await mail.send("hello", ctx=ctx, to=["ops@council.example"], subject="x")
    assert inbox.messages == []

"""`mail.send`: an e-mail through the deployment's SMTP settings, to allowed domains only.

Sent through ALLOYSYNC_SMTP_HOST / _PORT / _FROM / _USER / _PASSWORD / _STARTTLS / _TIMEOUT (the
notifications' server); recipients (`to`, `cc`) must be at a domain of ALLOYSYNC_BUILTIN_MAIL_ALLOW.
With either setting empty the task is off, and a record using it is Invalid.

The subject and body are options (Jinja templates over the input, like `data.render`'s), or come
from the previous step: its text as the body, or its {"subject", "body"} (what `data.render` with a
`subject` gives). With `attachment` (a file name such as `work-orders.csv`) the previous step's
text is attached as that file and `body` is the message text.

Idempotent per run: the Message-ID is derived from the run and step, and a step that already sent
its e-mail remembers it (state/builtin_memory.py) and does not send it again.
"""

from __future__ import annotations

import asyncio
import hashlib
import mimetypes
import smtplib
from collections.abc import Mapping
from email.message import EmailMessage
from email.utils import parseaddr
from typing import Any

from alloysync.builtins.common import BuiltinError, builtin_memory, settings_of
from alloysync.builtins.templates import BoundedEnvironment, template_variables
from alloysync.model.context import RunContext
from alloysync.model.registry import ParamsError, task
from alloysync.settings import Settings

MAX_RECIPIENTS = 50
MAX_SUBJECT_CHARS = 250


def _check_send(options: Mapping[str, Any], settings: Settings) -> None:
    if not settings.smtp_host:
        raise ParamsError(
            "mail.send is off: ALLOYSYNC_SMTP_HOST is empty (the operator sets the SMTP server)"
        )
    if not settings.builtin_mail_allow:
        raise ParamsError(
            "mail.send is off: ALLOYSYNC_BUILTIN_MAIL_ALLOW is empty (the operator lists the recipient "
            "domains it may write to)"
        )
    recipients = [*(options.get("to") or []), *(options.get("cc") or [])]
    if not options.get("to"):
        raise ParamsError("option 'to' must list at least one recipient")
    if len(recipients) > MAX_RECIPIENTS:
        raise ParamsError(f"at most {MAX_RECIPIENTS} recipients (to and cc together)")
    for option in ("to", "cc"):
        for address in options.get(option) or []:
            recipient_domain(address, settings, option)
    environment = BoundedEnvironment(settings.builtin_render_max_chars)
    for option in ("subject", "body"):
        if options.get(option) is not None:
            environment.compile_checked(options[option], option)
    attachment = options.get("attachment")
    if attachment is not None and (not attachment or "/" in attachment or "\\" in attachment):
        raise ParamsError("option 'attachment' must be a plain file name such as report.csv")


def recipient_domain(address: Any, settings: Settings, option: str) -> str:
    """The domain of `address` when it is an allowed recipient; ParamsError otherwise."""
    _name, plain = parseaddr(str(address))
    local, _, domain = plain.rpartition("@")
    domain = domain.lower()
    if not local or "." not in domain or plain != plain.strip() or any(c in plain for c in " ,;<>"):
        raise ParamsError(f"option {option!r}: {address!r} is not an e-mail address")
    if domain not in settings.builtin_mail_allow:
        raise ParamsError(
            f"option {option!r}: {plain} is not at an allowed domain "
            f"({', '.join(settings.builtin_mail_allow)}; ALLOYSYNC_BUILTIN_MAIL_ALLOW)"
        )
    return domain


@task(
    "mail.send",
    max_retries=3,
    time_limit=120,
    check=_check_send,
    example={"to": ["highways@council.example"], "subject": "Defects digest: {{ input | length }} escalated"},
)
async def send(
    previous: Any = None,
    *,
    ctx: RunContext,
    to: list[str],
    cc: list[str] | None = None,
    subject: str | None = None,
    body: str | None = None,
    attachment: str | None = None,
) -> dict[str, Any]:
    """E-mail `to` (and `cc`) at allowed domains (ALLOYSYNC_BUILTIN_MAIL_ALLOW), once per run.

    Subject and body: options (templates over the input) or the previous step's text or
    {"subject", "body"}; `attachment` attaches that text as a file. Returns {"sent_to", "subject",
    "message_id", "summary"}."""
    settings = settings_of(ctx)
    _check_send({"to": to, "cc": cc, "subject": subject, "body": body, "attachment": attachment}, settings)
    environment = BoundedEnvironment(settings.builtin_render_max_chars)
    variables = template_variables(previous, ctx)
    given = previous if isinstance(previous, dict) else {}
    text = previous if isinstance(previous, str) else given.get("body")
    title = (
        environment.render_bounded(subject, variables, "subject")
        if subject is not None
        else given.get("subject")
    )
    if not isinstance(title, str) or not title.strip():
        raise BuiltinError(
            "mail.send has no subject: give option 'subject', or a previous step's {subject, body}"
        )
    title = " ".join(title.split())[:MAX_SUBJECT_CHARS]
    message_text: str | None
    if body is not None:
        message_text = environment.render_bounded(body, variables, "body")
    elif attachment is not None:
        message_text = f"{ctx.job_title or 'alloysync'}: see the attached {attachment}.\n"
    else:
        message_text = text if isinstance(text, str) else None
    if message_text is None:
        raise BuiltinError(
            "mail.send has no body: give option 'body', or let the previous step render the text"
        )
    if attachment is not None and not isinstance(text, str):
        raise BuiltinError(
            "mail.send with 'attachment' attaches the previous step's text: its input has none"
        )
    message_id = f"<{hashlib.sha256(f'{ctx.run_id}/{ctx.step}'.encode()).hexdigest()[:24]}@alloysync>"
    message = EmailMessage()
    message["Subject"] = title
    message["From"] = settings.smtp_from
    message["To"] = ", ".join(to)
    if cc:
        message["Cc"] = ", ".join(cc)
    message["Message-ID"] = message_id
    message.set_content(message_text)
    if attachment is not None and isinstance(text, str):
        kind = mimetypes.guess_type(attachment)[0] or "text/plain"
        maintype, _, subtype = kind.partition("/")
        if maintype == "text":
            message.add_attachment(text, subtype=subtype, filename=attachment)
        else:
            message.add_attachment(text.encode(), maintype=maintype, subtype=subtype, filename=attachment)
    recipients = [*to, *(cc or [])]
    async with builtin_memory(settings) as memory:
        done = await memory.recall(ctx.run_id, ctx.step)
        if "sent" in done:
            ctx.log.info("mail.send: this run's e-mail %s was sent already; not sent again", done["sent"])
        else:
            await asyncio.to_thread(_deliver, settings, message)
            await memory.remember(ctx.run_id, ctx.step, "sent", message_id)
            ctx.log.info("mail.send: e-mailed %r to %s", title, ", ".join(recipients))
    return {
        "sent_to": recipients,
        "subject": title,
        "message_id": message_id,
        "summary": f"e-mailed {title!r} to {len(recipients)} recipient{'s' if len(recipients) != 1 else ''}",
    }


def _deliver(settings: Settings, message: EmailMessage) -> None:
    """Send over SMTP (blocking: runs in a thread, off the step's event loop)."""
    try:
        with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=settings.smtp_timeout) as smtp:
            if settings.smtp_starttls:
                smtp.starttls()
            if settings.smtp_user:
                smtp.login(settings.smtp_user, settings.smtp_password.get_secret_value())
            smtp.send_message(message)
    except (OSError, smtplib.SMTPException) as error:
        raise BuiltinError(
            f"mail.send: cannot send through {settings.smtp_host}:{settings.smtp_port}: "
            f"{type(error).__name__}: {error}"
        ) from None

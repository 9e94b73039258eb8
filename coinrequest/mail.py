"""Sending an e-mail over SMTP to configured recipients.

Settings come from the environment: `COINREQUEST_SMTP_HOST` (default 127.0.0.1),
`COINREQUEST_SMTP_PORT` (default 25), `COINREQUEST_MAIL_FROM`, `COINREQUEST_MAIL_TO`
(comma-separated; the task's `recipients` parameter overrides it), optional
`COINREQUEST_SMTP_USER` / `COINREQUEST_SMTP_PASSWORD` and `COINREQUEST_SMTP_STARTTLS=1`.
"""

from __future__ import annotations

import os
import smtplib
from email.message import EmailMessage


class MailError(RuntimeError):
    """The e-mail could not be sent or is not configured."""


def configured_recipients() -> list[str]:
    return [
        address.strip() for address in os.environ.get("COINREQUEST_MAIL_TO", "").split(",") if address.strip()
    ]


def send_email(subject: str, body: str, recipients: list[str], timeout: float = 30.0) -> str:
    """Send one message; returns its Message-ID."""
    if not recipients:
        raise MailError("no recipients: set COINREQUEST_MAIL_TO or pass recipients in the job's Params")
    host = os.environ.get("COINREQUEST_SMTP_HOST", "127.0.0.1")
    port = int(os.environ.get("COINREQUEST_SMTP_PORT", "25"))
    sender = os.environ.get("COINREQUEST_MAIL_FROM", "alloysync@localhost")
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Message-ID"] = f"<coinrequest.{os.urandom(8).hex()}@alloysync>"
    message.set_content(body)
    try:
        with smtplib.SMTP(host, port, timeout=timeout) as smtp:
            if os.environ.get("COINREQUEST_SMTP_STARTTLS") == "1":
                smtp.starttls()
            user = os.environ.get("COINREQUEST_SMTP_USER")
            if user:
                smtp.login(user, os.environ.get("COINREQUEST_SMTP_PASSWORD", ""))
            smtp.send_message(message)
    except (OSError, smtplib.SMTPException) as error:
        raise MailError(f"cannot send mail through {host}:{port}: {type(error).__name__}: {error}") from error
    return str(message["Message-ID"])

"""The notification channels: e-mail over SMTP and webhooks (a JSON POST), one delivery at a time.

E-mail uses the stdlib `smtplib` in a worker thread (`asyncio.to_thread`: the event loop never
blocks), with STARTTLS and login when configured (ALLOYSYNC_SMTP_*). The SMTP password is a secret:
it is only unwrapped to log in, and every error text is scrubbed of it (and of its base64 forms, as
AUTH PLAIN and AUTH LOGIN send it) before it can reach a log line; errors are raised `from None`, so
no chained exception carries more.

Webhooks are POSTed with aiohttp to URLs that start with a prefix in ALLOYSYNC_NOTIFY_URL_ALLOW,
checked again at send time (the settings may have changed since the record was validated).
Redirects are never followed (a 3xx is a refusal: the receiver must be addressed directly), each
request has a timeout, and no proxy from the environment is used. An error names a URL by its
origin only: its path or query may carry a token.

A failed delivery raises `DeliveryFailed`, which says whether trying again can help (the server is
down, busy or timed out) or not (the recipient or the request is refused).
"""

from __future__ import annotations

import asyncio
import base64
import smtplib
import ssl
from collections.abc import Iterable
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any

import aiohttp

from alloysync.model.notify import EmailContent, target_label, webhook_allowed
from alloysync.settings import Settings

WEBHOOK_TIMEOUT = 15.0  # seconds for one webhook request, connection included
REDACTED = "**********"
USER_AGENT = "alloysync-notifier"
RETRYABLE_HTTP = frozenset({408, 425, 429})


class DeliveryFailed(Exception):
    """A delivery did not happen; `reason` is safe to log."""

    def __init__(self, reason: str, retryable: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable


def scrub(text: str, secrets: Iterable[str]) -> str:
    """`text` with every non-empty secret in `secrets` replaced by REDACTED."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return text


class EmailChannel:
    """E-mail over SMTP (ALLOYSYNC_SMTP_HOST empty: e-mail is off)."""

    def __init__(self, settings: Settings) -> None:
        self.host = settings.smtp_host
        self.port = settings.smtp_port
        self.sender = settings.smtp_from
        self.user = settings.smtp_user
        self._password = settings.smtp_password
        self.starttls = settings.smtp_starttls
        self.timeout = settings.smtp_timeout

    @property
    def enabled(self) -> bool:
        return bool(self.host)

    @property
    def domain(self) -> str:
        """The sender's domain (for Message-IDs)."""
        return self.sender.rpartition("@")[2] or "alloysync"

    def _secrets(self) -> list[str]:
        """The password and the forms it travels in, so that no error text can carry them."""
        password = self._password.get_secret_value()
        if not password:
            return []
        forms = [password]
        for raw in (password, f"\0{self.user}\0{password}"):
            try:
                forms.append(base64.b64encode(raw.encode()).decode())
            except UnicodeError:
                continue
        return forms

    async def send(self, address: str, content: EmailContent, message_id: str) -> None:
        """Send `content` to `address` (raises DeliveryFailed)."""
        message = self._message(address, content, message_id)
        try:
            await asyncio.to_thread(self._send_blocking, message, address)
        except smtplib.SMTPRecipientsRefused as error:
            codes = [code for code, _reply in error.recipients.values()]
            retryable = any(400 <= code < 500 for code in codes)
            raise DeliveryFailed(self._describe(error), retryable=retryable) from None
        except smtplib.SMTPDataError as error:
            # 5xx on the message itself: sending it again is refused again.
            raise DeliveryFailed(self._describe(error), retryable=error.smtp_code < 500) from None
        except (smtplib.SMTPException, OSError) as error:
            # Down, unreachable, timed out, or refusing our login or sender (configuration that
            # an operator fixes: keep the notification until then).
            raise DeliveryFailed(self._describe(error), retryable=True) from None

    def _message(self, address: str, content: EmailContent, message_id: str) -> EmailMessage:
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = address
        message["Subject"] = content.subject
        message["Date"] = formatdate(usegmt=True)
        message["Message-ID"] = message_id
        message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies, please
        message.set_content(content.text)
        message.add_alternative(content.html, subtype="html")
        return message

    def _send_blocking(self, message: EmailMessage, address: str) -> None:
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
            smtp.ehlo()
            if self.starttls:
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
            if self.user:
                smtp.login(self.user, self._password.get_secret_value())
            smtp.send_message(message, to_addrs=[address])

    def _describe(self, error: BaseException) -> str:
        return scrub(f"{type(error).__name__}: {error}", self._secrets())


class WebhookChannel:
    """Webhooks: a JSON POST to an allowed URL. `open` before sending, `close` after."""

    def __init__(self, settings: Settings, timeout: float = WEBHOOK_TIMEOUT) -> None:
        self.allowed = list(settings.notify_url_allow)
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                trust_env=False,
                headers={"User-Agent": USER_AGENT},
            )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, url: str, payload: dict[str, Any], delivery_id: str) -> None:
        """POST `payload` as JSON to `url` (raises DeliveryFailed)."""
        if not webhook_allowed(url, self.allowed):
            raise DeliveryFailed(
                f"{target_label(url)} does not start with an allowed prefix (ALLOYSYNC_NOTIFY_URL_ALLOW)",
                retryable=False,
            )
        if self._session is None:
            raise RuntimeError("WebhookChannel.open() was not called")
        headers = {"X-Alloysync-Delivery": delivery_id}
        try:
            async with self._session.post(url, json=payload, headers=headers, allow_redirects=False) as reply:
                status = reply.status
        except (aiohttp.ClientError, TimeoutError) as error:
            reason = scrub(f"{type(error).__name__}: {error}", [url, _path_and_query(url)])
            raise DeliveryFailed(reason, retryable=True) from None
        if 200 <= status < 300:
            return
        if 300 <= status < 400:
            raise DeliveryFailed(f"answered {status}, a redirect (not followed)", retryable=False)
        retryable = status >= 500 or status in RETRYABLE_HTTP
        raise DeliveryFailed(f"answered HTTP {status}", retryable=retryable)


def _path_and_query(url: str) -> str:
    """The part of `url` after its origin ('' when there is none)."""
    scheme, _, rest = url.partition("://")
    _origin, slash, tail = rest.partition("/")
    return slash + tail if scheme and tail else ""

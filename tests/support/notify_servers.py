"""Real receivers for notifications in tests: an SMTP server (aiosmtpd's `Controller`, in a thread)
and an HTTP webhook receiver (`http.server`, in a thread), both on loopback and free ports. Each
keeps what it received, so a test counts e-mails and requests instead of trusting the sender."""

from __future__ import annotations

import email
import email.policy
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from alloysync.local.redis_server import free_port


class _Mailbox:
    """aiosmtpd handler: keeps every message, and checks logins."""

    def __init__(self, user: str | None, password: str | None, reject_logins: int) -> None:
        self.user = user
        self.password = password
        self.reject_logins = reject_logins
        self.messages: list[EmailMessage] = []
        self.logins: list[bool] = []  # whether each login attempt was accepted
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        with self.lock:
            self.messages.append(message)
        return "250 Message accepted for delivery"

    def authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        accepted = (
            isinstance(data, LoginPassword)
            and data.login.decode() == self.user
            and data.password.decode() == self.password
        )
        with self.lock:
            if accepted and self.reject_logins > 0:
                self.reject_logins -= 1
                accepted = False
            self.logins.append(accepted)
        return AuthResult(success=accepted, handled=False)


class SmtpServer:
    """An SMTP server on 127.0.0.1 (on `port`, or a free one), with AUTH when `user` is given
    (`reject_logins` correct logins are refused first, as a server that is being reconfigured)."""

    def __init__(
        self,
        port: int | None = None,
        user: str | None = None,
        password: str | None = None,
        reject_logins: int = 0,
    ) -> None:
        self.port = port or free_port()
        self.mailbox = _Mailbox(user, password, reject_logins)
        options: dict[str, Any] = {}
        if user is not None:
            options = {
                "authenticator": self.mailbox.authenticate,
                "auth_required": True,
                "auth_require_tls": False,  # loopback test server without a certificate
            }
        self.controller = Controller(self.mailbox, hostname="127.0.0.1", port=self.port, **options)
        self.running = False

    def start(self) -> SmtpServer:
        self.controller.start()
        self.running = True
        return self

    def stop(self) -> None:
        if self.running:
            self.controller.stop()
            self.running = False

    @property
    def messages(self) -> list[EmailMessage]:
        with self.mailbox.lock:
            return list(self.mailbox.messages)

    @property
    def logins(self) -> list[bool]:
        with self.mailbox.lock:
            return list(self.mailbox.logins)

    def settings_env(self) -> dict[str, str]:
        """The ALLOYSYNC_SMTP_* settings that send to this server."""
        env = {"ALLOYSYNC_SMTP_HOST": "127.0.0.1", "ALLOYSYNC_SMTP_PORT": str(self.port)}
        if self.mailbox.user is not None:
            env["ALLOYSYNC_SMTP_USER"] = self.mailbox.user
            env["ALLOYSYNC_SMTP_PASSWORD"] = self.mailbox.password or ""
        return env


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: Any  # the JSON body (None when it was not JSON)


class WebhookReceiver:
    """An HTTP server on 127.0.0.1 that records every request; it answers the statuses in
    `statuses` in turn (then 200), and `redirect_to` answers a 307 to that URL when set."""

    def __init__(self, statuses: list[int] | None = None, redirect_to: str | None = None) -> None:
        self.statuses = list(statuses or [])
        self.redirect_to = redirect_to
        self.received: list[Received] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
                with receiver.lock:
                    receiver.received.append(Received(self.path, dict(self.headers.items()), body))
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                if receiver.redirect_to:
                    self.send_response(307)
                    self.send_header("Location", receiver.redirect_to)
                else:
                    self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> WebhookReceiver:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def requests(self, path: str | None = None) -> list[Received]:
        with self.lock:
            return [request for request in self.received if path is None or request.path == path]


def running_smtp(**options: Any) -> Iterator[SmtpServer]:
    """A started SmtpServer, stopped afterwards (for fixtures)."""
    server = SmtpServer(**options).start()
    try:
        yield server
    finally:
        server.stop()


def running_receiver(**options: Any) -> Iterator[WebhookReceiver]:
    """A started WebhookReceiver, stopped afterwards (for fixtures)."""
    receiver = WebhookReceiver(**options).start()
    try:
        yield receiver
    finally:
        receiver.stop()

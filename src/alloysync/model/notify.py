"""What a notification says, and to whom it may go: pure functions of their arguments.

A `Notification` is one thing worth telling a job's Notify targets (a run failed, a job recovered
or succeeded, a job is overdue). It is rendered as an e-mail (subject, plain text and HTML, from the
Jinja2 templates in `serve/templates/notify/`; HTML is autoescaped, so a message or a log line is
always text, never markup) and as a webhook's JSON body (DESIGN §4: at least `item_id`, `title`,
`status`, `message`, `run_id`, `finished`). Which targets are e-mail addresses and which webhook
URLs, whether a URL is allowed (ALLOYSYNC_NOTIFY_URL_ALLOW), and how a target is named in a log
line (a URL by its origin only: its path or query may carry a token) are decided here too.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cache
from typing import Any
from urllib.parse import quote, urlsplit

import jinja2

from alloysync.model.events import Status

TEMPLATE_PACKAGE = "alloysync.serve"
TEMPLATE_DIR = "templates/notify"
SUBJECT_TITLE_CHARS = 150  # of a job's title in a subject line
LOG_LINE_CHARS = 2000  # of one log line in a notification
_WHITESPACE = re.compile(r"\s+")


class NotificationKind(StrEnum):
    """The `kind` of a notification entry."""

    FAILED = "failed"  # a run failed
    RECOVERED = "recovered"  # a run succeeded after failures
    SUCCEEDED = "succeeded"  # a run succeeded (NotifyOn always)
    OVERDUE = "overdue"  # no success within MaxAge

    @property
    def status(self) -> Status:
        """The job's Status this notification reports."""
        return _STATUS[self]

    @property
    def headline(self) -> str:
        """What happened, as the subject line says it after the job's name."""
        return "is overdue" if self is NotificationKind.OVERDUE else self.value


_STATUS = {
    NotificationKind.FAILED: Status.FAILED,
    NotificationKind.RECOVERED: Status.SUCCEEDED,
    NotificationKind.SUCCEEDED: Status.SUCCEEDED,
    NotificationKind.OVERDUE: Status.OVERDUE,
}


def notification_kind(text: str) -> NotificationKind | None:
    """The kind named by an entry's `kind` field; None for one this version does not know."""
    try:
        return NotificationKind(text)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class LogLine:
    """One line of a run's log as a notification shows it."""

    at: str
    level: str
    text: str
    step: int | None = None

    @classmethod
    def from_dict(cls, line: dict[str, Any]) -> LogLine:
        """A line as `state/run_logs.py` stores it (`at`, `level`, `text`, `step`)."""
        step = line.get("step")
        return cls(
            at=str(line.get("at") or ""),
            level=str(line.get("level") or ""),
            text=str(line.get("text") or "")[:LOG_LINE_CHARS],
            step=step if isinstance(step, int) else None,
        )


@dataclass(frozen=True)
class Notification:
    """Everything one notification says."""

    item_id: str
    title: str
    kind: NotificationKind
    at: str  # when it happened (the run's end, or when the job was found overdue)
    message: str  # the run's Message: the error, or the result's summary; why it is overdue
    job_url: str  # the job's page on serve
    run_id: str = ""  # '' for overdue
    started: str = ""  # the run's start ('' when unknown)
    finished: str = ""  # the run's end ('' when unknown or for overdue)
    failures: int = 0  # failed runs in a row (the streak)
    log_lines: tuple[LogLine, ...] = field(default_factory=tuple)

    @property
    def status(self) -> Status:
        return self.kind.status

    @property
    def job_name(self) -> str:
        """The job's title on one line (the item id when it has none)."""
        return _one_line(self.title) or self.item_id


@dataclass(frozen=True, slots=True)
class EmailContent:
    subject: str
    text: str
    html: str


def job_url(public_url: str, item_id: str) -> str:
    """The job's page on serve (`{ALLOYSYNC_PUBLIC_URL}/jobs/{item}`)."""
    return f"{public_url.rstrip('/')}/jobs/{quote(item_id, safe='')}"


@cache
def _templates() -> jinja2.Environment:
    """The notification templates: HTML autoescaped, text as is; an undefined name is an error."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader(TEMPLATE_PACKAGE, TEMPLATE_DIR),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def _context(notification: Notification) -> dict[str, Any]:
    message_label = {
        NotificationKind.FAILED: "Error",
        NotificationKind.OVERDUE: "Why",
    }.get(notification.kind, "Summary")
    return {
        "n": notification,
        "job_name": notification.job_name,
        "headline": notification.kind.headline,
        "status": notification.status.value,
        "when": notification.finished or notification.at,
        "message_label": message_label,
    }


def render_email(notification: Notification) -> EmailContent:
    """The e-mail: a subject that names the job and says failed / overdue / recovered / succeeded,
    and the same body as plain text and as HTML."""
    env = _templates()
    context = _context(notification)
    subject = _WHITESPACE.sub(" ", env.get_template("subject.txt").render(context)).strip()
    return EmailContent(
        subject=subject,
        text=env.get_template("email.txt").render(context),
        html=env.get_template("email.html").render(context),
    )


def webhook_payload(notification: Notification) -> dict[str, Any]:
    """A webhook's JSON body."""
    return {
        "item_id": notification.item_id,
        "title": notification.title,
        "status": notification.status.value,
        "event": notification.kind.value,
        "message": notification.message,
        "run_id": notification.run_id or None,
        "started": notification.started or None,
        "finished": notification.finished or None,
        "at": notification.at,
        "consecutive_failures": notification.failures,
        "url": notification.job_url,
        "log": [
            {"at": line.at, "level": line.level, "text": line.text, "step": line.step}
            for line in notification.log_lines
        ],
    }


# --- targets ------------------------------------------------------------------------------------


def is_webhook(target: str) -> bool:
    """Whether a Notify target is a webhook URL (the others are e-mail addresses)."""
    return target.lower().startswith(("http://", "https://"))


def webhook_allowed(url: str, prefixes: list[str]) -> bool:
    """Whether `url` starts with one of the allowed prefixes (and is an http(s) URL with a host)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False
    return any(url.startswith(prefix) for prefix in prefixes)


def target_label(target: str) -> str:
    """A target as a log line names it: an address as is, a URL by its origin only."""
    if is_webhook(target):
        parts = urlsplit(target)
        return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}/…"
    return target


def message_id(entry_id: str, target: str, domain: str) -> str:
    """A Message-ID that is the same for every attempt to send an entry to one target, so a mail
    system (or a person) can recognise a resend after a crash as the same message."""
    digest = hashlib.sha256(target.encode()).hexdigest()[:12]
    return f"<alloysync.{entry_id}.{digest}@{domain or 'alloysync'}>"


def _one_line(text: str) -> str:
    """Whitespace (newlines included) squeezed to single spaces, and at most SUBJECT_TITLE_CHARS."""
    squeezed = _WHITESPACE.sub(" ", text).strip()
    if len(squeezed) > SUBJECT_TITLE_CHARS:
        squeezed = squeezed[: SUBJECT_TITLE_CHARS - 1] + "…"
    return squeezed

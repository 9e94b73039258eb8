"""The notifier: drains the notification queue into e-mails and webhooks (in `serve`, leader only).

Entries of the stream `alloysync:notify` (state/notifications.py: appended when a run ends and the
job's NotifyOn asks for it, or when a job becomes overdue) are read with the consumer group
`notifier`, one consumer per serve process. Each entry is rendered (model/notify.py: the job, its
status, when, the error or summary, the run's last log lines, a link to the job page) and sent to
every Notify target the job has now: e-mail addresses over SMTP, allowed webhook URLs as a JSON
POST (serve/notify_channels.py). Sending is paced by a token bucket of ALLOYSYNC_NOTIFY_PER_MINUTE
(every channel together).

Guarantee (notify queue → people): **at-least-once, once per replica set**.
  - Only the poller lease holder runs a notifier (serve/leadership.py), so two serve replicas do
    not both send.
  - A job's notifications are sent in the order they were queued (a recovery never overtakes the
    failure it follows); different jobs' go side by side, SENDERS at a time.
  - An entry is acknowledged (and deleted) only when every target is done; until then it stays in
    the group's pending list. A target that failed for a reason that may pass (the SMTP server or
    the receiver is down, busy, or timing out; the SMTP login is refused) is tried again with
    exponential backoff (FIRST_BACKOFF doubling to MAX_BACKOFF), for GIVE_UP_AFTER (24 h) after the
    entry was queued; then it is given up, with an error logged. A target that refuses the
    notification itself (recipient refused, HTTP 4xx, a redirect) is not tried again.
  - Which targets are done is recorded per entry in Redis as each delivery ends, so a retry after a
    partial success — in this process or another — never sends to a delivered target again.
  - A notifier that died (serve killed, or lost the lease) leaves its entries pending; the next one
    takes over entries other consumers read CLAIM_IDLE_MS (15 s) ago and never acknowledged, at
    start and every CLAIM_EVERY seconds (never its own: it is retrying them). A send cut short by a
    crash after the server accepted it and before its mark was recorded is sent again — hence at
    least once; an e-mail's Message-ID is the same for every attempt, and a webhook carries the
    entry id in `X-Alloysync-Delivery`, so a receiver can tell.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from alloysync.alloy.ratelimit import TokenBucket
from alloysync.log import get_logger
from alloysync.model.notify import (
    LogLine,
    Notification,
    NotificationKind,
    is_webhook,
    job_url,
    message_id,
    notification_kind,
    render_email,
    target_label,
    webhook_allowed,
    webhook_payload,
)
from alloysync.serve.notify_channels import DeliveryFailed, EmailChannel, WebhookChannel
from alloysync.settings import Settings
from alloysync.state.jobs import JobStore
from alloysync.state.notifications import NotificationEntry, NotificationQueue
from alloysync.state.records import JobRecord
from alloysync.state.run_logs import RunLogReader

logger = get_logger(__name__)

CLAIM_IDLE_MS = 15_000  # entries another notifier read this long ago without acknowledging are taken over
CLAIM_EVERY = 5.0  # seconds between take-over passes
FORGET_CONSUMER_AFTER_MS = 3_600_000  # consumers idle this long with nothing pending are deleted
FIRST_BACKOFF = 2.0  # seconds before an entry whose delivery failed is tried again; doubles per failure
MAX_BACKOFF = 300.0
GIVE_UP_AFTER = 86_400.0  # seconds after an entry was queued that its failing targets are given up
READ_BLOCK_MS = 1000  # the longest wait for new entries (under the socket timeout)
SENDERS = 4  # deliveries under way at once (a slow SMTP server does not hold up the others)
LOG_LINES = 20  # last lines of the run's log in a notification
STOP_GRACE = 4.0  # seconds a send under way gets to finish and be recorded when the notifier stops

SENT = "sent"
REFUSED = "refused"  # the target refused it, or it is not allowed any more: not tried again
SKIPPED = "skipped"  # its channel is off (e-mail without ALLOYSYNC_SMTP_HOST)


@dataclass
class PendingNotification:
    """An entry read and not yet done with."""

    entry: NotificationEntry
    attempts: int = 0  # delivery rounds that left a target to try again
    not_before: float = 0.0  # monotonic time before which not to try again


class Notifier:
    def __init__(
        self,
        settings: Settings,
        client: aioredis.Redis,
        consumer: str,
        *,
        budget: TokenBucket | None = None,
        email: EmailChannel | None = None,
        webhooks: WebhookChannel | None = None,
        claim_idle_ms: int = CLAIM_IDLE_MS,
        claim_every: float = CLAIM_EVERY,
        first_backoff: float = FIRST_BACKOFF,
        max_backoff: float = MAX_BACKOFF,
        give_up_after: float = GIVE_UP_AFTER,
        senders: int = SENDERS,
    ) -> None:
        self.settings = settings
        self.queue = NotificationQueue(client)
        self.store = JobStore(client)
        self.logs = RunLogReader(client)
        self.consumer = consumer
        self.email = email or EmailChannel(settings)
        self.webhooks = webhooks or WebhookChannel(settings)
        self.budget = budget or TokenBucket(settings.notify_per_minute)
        self.claim_idle_ms = claim_idle_ms
        self.claim_every = claim_every
        self.first_backoff = first_backoff
        self.max_backoff = max_backoff
        self.give_up_after = give_up_after
        self.senders = senders
        self.pending: dict[str, PendingNotification] = {}
        self.in_flight: set[str] = set()
        self._wake = asyncio.Event()

    # --- the loop -----------------------------------------------------------------------------

    async def run(self) -> None:
        """Read and send until cancelled. Each run starts from what Redis holds: the entries this
        consumer read and did not finish are read again, and their delivery marks say which
        targets are done."""
        self.pending = {}
        self.in_flight = set()
        await self.queue.ensure_group()
        await self.webhooks.open()
        senders: list[asyncio.Task[None]] = []
        try:
            self._add(await self.queue.read_backlog(self.consumer))
            senders = [
                asyncio.create_task(self._sender(), name=f"notifier-sender-{n}") for n in range(self.senders)
            ]
            next_claim = 0.0
            while True:
                if time.monotonic() >= next_claim:
                    await self.take_over_idle()
                    next_claim = time.monotonic() + self.claim_every
                self._add(await self.queue.read_new(self.consumer, block_ms=READ_BLOCK_MS))
        finally:
            for sender in senders:
                sender.cancel()
            await asyncio.gather(*senders, return_exceptions=True)
            await self.webhooks.close()

    async def take_over_idle(self) -> int:
        """Claim the entries other (dead) notifiers read but never finished, and forget long-gone
        notifiers that hold nothing; returns how many entries were taken over."""
        claimed = await self.queue.take_over_idle(self.consumer, self.claim_idle_ms)
        if claimed:
            logger.info("took over notifications of another notifier", notifications=len(claimed))
            self._add(claimed)
        await self.queue.forget_consumers(self.consumer, FORGET_CONSUMER_AFTER_MS)
        return len(claimed)

    def _add(self, entries: list[NotificationEntry]) -> None:
        for entry in entries:
            if entry.entry_id not in self.pending:
                self.pending[entry.entry_id] = PendingNotification(entry)
        if entries:
            self._wake.set()

    # --- senders ------------------------------------------------------------------------------

    async def _sender(self) -> None:
        while True:
            entry_id = await self._reserve()
            pending = self.pending[entry_id]
            done = False
            try:
                done = await self.deliver(pending)
            except RedisError as error:
                logger.warning("Redis unavailable while notifying; retrying", error=str(error))
                pending.not_before = time.monotonic() + self.first_backoff
            except Exception:
                logger.exception(
                    "unexpected error sending a notification; retrying", item_id=pending.entry.item_id
                )
                pending.not_before = time.monotonic() + self.max_backoff
            finally:
                self.in_flight.discard(entry_id)
                if done:
                    self.pending.pop(entry_id, None)
                self._wake.set()

    async def _reserve(self) -> str:
        """Wait for the oldest pending entry that is not being sent, not backing off, and not behind
        an older entry of the same job (a job's notifications arrive in order: failed, then
        recovered)."""
        while True:
            now = time.monotonic()
            soonest = 1.0
            items_ahead: set[str] = set()
            for pending in sorted(self.pending.values(), key=lambda p: p.entry.order):
                entry = pending.entry
                if entry.item_id in items_ahead:
                    continue
                items_ahead.add(entry.item_id)
                if entry.entry_id in self.in_flight:
                    continue
                if pending.not_before <= now:
                    self.in_flight.add(entry.entry_id)
                    return entry.entry_id
                soonest = min(soonest, pending.not_before - now)
            self._wake.clear()
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for returns instead of raising
            # when it is cancelled just as the event is set, so a cancelled sender kept running.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.01, soonest)):
                    await self._wake.wait()

    async def deliver(self, pending: PendingNotification) -> bool:
        """One round of delivering an entry to its targets not yet done. Returns True when the entry
        is done with (and acknowledged), False when a target is to be tried again later."""
        entry = pending.entry
        kind = notification_kind(entry.kind)
        job = await self.store.job(entry.item_id)
        if kind is None or job is None or not job.notify:
            logger.info(
                "notification with nobody to tell; dropping",
                item_id=entry.item_id,
                kind=entry.kind,
                known_job=job is not None,
            )
            await self.queue.acknowledge(entry.entry_id)
            return True
        delivered = await self.queue.delivered(entry.entry_id)
        todo = [target for target in job.notify if target not in delivered]
        failed: list[str] = []
        if todo:
            notification = await self._compose(entry, job, kind)
            for target in todo:
                if not await self._deliver_to(entry, target, notification):
                    failed.append(target)
        if failed:
            return await self._retry_later(pending, failed)
        await self.queue.acknowledge(entry.entry_id)
        return True

    async def _retry_later(self, pending: PendingNotification, failed: list[str]) -> bool:
        entry = pending.entry
        labels = [target_label(target) for target in failed]
        age = time.time() - entry.queued_ms / 1000
        if age >= self.give_up_after:
            logger.error(
                "notification undelivered for too long; giving up",
                item_id=entry.item_id,
                kind=entry.kind,
                targets=labels,
                queued_seconds_ago=round(age),
                attempts=pending.attempts + 1,
            )
            await self.queue.acknowledge(entry.entry_id)
            return True
        pending.attempts += 1
        delay = min(self.max_backoff, self.first_backoff * 2 ** (pending.attempts - 1))
        delay *= random.uniform(0.75, 1.0)
        pending.not_before = time.monotonic() + delay
        logger.warning(
            "notification not delivered yet; retrying later",
            item_id=entry.item_id,
            kind=entry.kind,
            targets=labels,
            attempt=pending.attempts,
            retry_in=round(delay, 1),
        )
        return False

    async def _compose(
        self, entry: NotificationEntry, job: JobRecord, kind: NotificationKind
    ) -> Notification:
        run = await self.store.run(entry.run_id) if entry.run_id else None
        lines = await self.logs.lines(entry.run_id, LOG_LINES) if entry.run_id else []
        finished = ""
        if kind is not NotificationKind.OVERDUE:
            finished = (run.finished if run is not None else "") or entry.at
        return Notification(
            item_id=entry.item_id,
            title=job.title or (run.title if run is not None else ""),
            kind=kind,
            at=entry.at,
            message=entry.message,
            job_url=job_url(self.settings.effective_public_url, entry.item_id),
            run_id=entry.run_id,
            started=run.started if run is not None else "",
            finished=finished,
            failures=entry.failures,
            log_lines=tuple(LogLine.from_dict(line) for line in lines),
        )

    async def _deliver_to(self, entry: NotificationEntry, target: str, notification: Notification) -> bool:
        """Deliver to one target; True when that target is done with (sent, refused or skipped)."""
        label = target_label(target)
        facts = {"item_id": entry.item_id, "kind": entry.kind, "target": label}
        if is_webhook(target) and not webhook_allowed(target, self.settings.notify_url_allow):
            logger.warning("webhook URL not allowed any more (ALLOYSYNC_NOTIFY_URL_ALLOW); not sent", **facts)
            await self.queue.mark_delivered(entry.entry_id, target, REFUSED)
            return True
        if not is_webhook(target) and not self.email.enabled:
            logger.warning("e-mail notifications are off (ALLOYSYNC_SMTP_HOST is empty); not sent", **facts)
            await self.queue.mark_delivered(entry.entry_id, target, SKIPPED)
            return True
        await self.budget.acquire()
        attempt = asyncio.ensure_future(self._send_and_mark(entry, target, notification))
        try:
            return await asyncio.shield(attempt)
        except asyncio.CancelledError:
            # Stopping (lease lost, shutdown): a send under way may finish and be recorded, so that
            # the notifier taking over does not send it again.
            await asyncio.wait({attempt}, timeout=STOP_GRACE)
            attempt.cancel()
            raise

    async def _send_and_mark(self, entry: NotificationEntry, target: str, notification: Notification) -> bool:
        label = target_label(target)
        facts = {"item_id": entry.item_id, "kind": entry.kind, "target": label}
        try:
            if is_webhook(target):
                await self.webhooks.send(target, webhook_payload(notification), delivery_id=entry.entry_id)
            else:
                identity = message_id(entry.entry_id, target, self.email.domain)
                await self.email.send(target, render_email(notification), identity)
        except DeliveryFailed as failure:
            if failure.retryable:
                logger.warning("notification delivery failed", reason=failure.reason, **facts)
                return False
            logger.error("notification refused by its target; not retrying", reason=failure.reason, **facts)
            await self.queue.mark_delivered(entry.entry_id, target, REFUSED)
            return True
        await self.queue.mark_delivered(entry.entry_id, target, SENT)
        logger.info("notification sent", channel="webhook" if is_webhook(target) else "email", **facts)
        return True

"""The webhook call-out: what an Alloy event workflow with an "Http Request" action does.

After an item of a matching design is created or edited (through the API or the admin bulk
create), the emulator POSTs `{"itemId", "designCode", "event": "create"|"update"}` with the
configured headers to the configured URL. Deliveries run in one background task, in order, with a
timeout; they never block or fail the API request that caused them. Failures are logged (never
the header values, which usually carry a shared secret) and counted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from alloysync.emulator.errors import bad_request
from alloysync.emulator.store import Change, ChangeKind
from alloysync.log import get_logger

DELIVERY_TIMEOUT_SECONDS = 5.0
QUEUE_LIMIT = 10_000

log = get_logger(__name__)


@dataclass(frozen=True)
class WebhookConfig:
    url: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    design_codes: frozenset[str] | None = None  # None: every design

    def wants(self, design_code: str) -> bool:
        return self.url is not None and (self.design_codes is None or design_code in self.design_codes)

    def describe(self) -> dict[str, Any]:
        """The configuration without header values (they are usually secrets)."""
        return {
            "url": self.url,
            "header_names": sorted(self.headers),
            "design_codes": None if self.design_codes is None else sorted(self.design_codes),
        }


def parse_webhook_config(body: Any) -> WebhookConfig:
    """The admin body `{"url": str|null, "headers": {..}, "design_codes": [..]|null}`; 400 if malformed."""
    if not isinstance(body, dict):
        raise bad_request('the body must be {"url": ..., "headers": {...}, "design_codes": [...] or null}')
    url = body.get("url")
    if url is not None:
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise bad_request("url must be an http(s) URL, or null to switch the call-out off")
    headers = body.get("headers") or {}
    if not isinstance(headers, dict) or not all(
        isinstance(key, str) and isinstance(value, str) for key, value in headers.items()
    ):
        raise bad_request("headers must be an object of header names to string values")
    design_codes = body.get("design_codes")
    if design_codes is not None and (
        not isinstance(design_codes, list) or not all(isinstance(code, str) for code in design_codes)
    ):
        raise bad_request("design_codes must be a list of design codes, or null for every design")
    return WebhookConfig(
        url=url,
        headers=dict(headers),
        design_codes=None if design_codes is None else frozenset(design_codes),
    )


@dataclass(frozen=True)
class _Delivery:
    url: str
    headers: Mapping[str, str]
    body: dict[str, str]


class Callouts:
    """Queues a delivery for every matching item change and sends them in the background."""

    def __init__(self) -> None:
        self.config = WebhookConfig()
        self._queue: asyncio.Queue[_Delivery] = asyncio.Queue(maxsize=QUEUE_LIMIT)
        self._session: aiohttp.ClientSession | None = None
        self._sender: asyncio.Task[None] | None = None
        self.counts = {"sent": 0, "failed": 0, "dropped": 0}

    async def start(self) -> None:
        timeout = aiohttp.ClientTimeout(total=DELIVERY_TIMEOUT_SECONDS)
        self._session = aiohttp.ClientSession(timeout=timeout)
        self._sender = asyncio.get_running_loop().create_task(self._send_forever())

    async def close(self) -> None:
        if self._sender is not None:
            self._sender.cancel()
            await asyncio.gather(self._sender, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    def configure(self, config: WebhookConfig) -> None:
        self.config = config

    def on_change(self, change: Change) -> None:
        """Store listener: queue a call-out for a create or update of a matching design."""
        if change.item is None or change.kind not in (ChangeKind.CREATE, ChangeKind.UPDATE):
            return
        config = self.config
        if config.url is None or not config.wants(change.item.design_code):
            return
        body = {
            "itemId": change.item.item_id,
            "designCode": change.item.design_code,
            "event": str(change.kind),
        }
        try:
            self._queue.put_nowait(_Delivery(config.url, config.headers, body))
        except asyncio.QueueFull:
            self.counts["dropped"] += 1
            log.warning("webhook call-out dropped", reason="queue full", item_id=change.item.item_id)

    def clear_counts(self) -> None:
        self.counts = dict.fromkeys(self.counts, 0)

    async def _send_forever(self) -> None:
        while True:
            delivery = await self._queue.get()
            await self._send(delivery)

    async def _send(self, delivery: _Delivery) -> None:
        assert self._session is not None
        headers = {"Content-Type": "application/json", **delivery.headers}
        try:
            async with self._session.post(delivery.url, json=delivery.body, headers=headers) as response:
                await response.read()
                if response.status >= 400:
                    self.counts["failed"] += 1
                    log.warning(
                        "webhook call-out rejected",
                        url=delivery.url,
                        status=response.status,
                        **_log_fields(delivery),
                    )
                    return
        except (aiohttp.ClientError, TimeoutError) as error:
            self.counts["failed"] += 1
            log.warning(
                "webhook call-out failed",
                url=delivery.url,
                error=f"{type(error).__name__}: {error}",
                **_log_fields(delivery),
            )
            return
        self.counts["sent"] += 1


def _log_fields(delivery: _Delivery) -> dict[str, str]:
    return {"item_id": delivery.body["itemId"], "item_event": delivery.body["event"]}

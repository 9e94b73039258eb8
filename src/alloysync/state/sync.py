"""Sync state (asyncio): the incremental cursor, how far the sync has got, and the item ids the
webhook asked to sync now.

`sync:cursor` is when the last incremental pass began on Alloy's clock (fenced: only the poller
moves it); `sync:through` is when the last completed pass began (the sync lag is now minus it);
`sync:requests` is a list the webhook pushes item ids onto, on any replica, for the poller.
"""

from __future__ import annotations

from datetime import datetime

import redis.asyncio as aioredis

from alloysync.model.times import format_alloy_datetime, parse_alloy_datetime
from alloysync.state import keys, scripts
from alloysync.state.lease import fenced

MAX_REQUESTS_PER_READ = 1000


class SyncState:
    """`client` must decode responses."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client
        self._set_cursor = scripts.register(client, "set_cursor")

    async def cursor(self) -> datetime | None:
        text = await self.client.get(keys.SYNC_CURSOR)
        return parse_alloy_datetime(str(text)) if text else None

    async def server_run_id(self) -> str:
        """The Redis server's run id: a new one after every restart of the server."""
        info = await self.client.info("server")
        return str(info["run_id"])

    async def set_cursor(self, lease: str, cursor: datetime) -> None:
        """Move the cursor, as the poller (fenced)."""
        value = format_alloy_datetime(cursor)
        fenced(await self._set_cursor(keys=[keys.LEASE, keys.SYNC_CURSOR], args=[lease, value]))

    async def synced_through(self) -> datetime | None:
        text = await self.client.get(keys.SYNC_THROUGH)
        return parse_alloy_datetime(str(text)) if text else None

    async def set_synced_through(self, moment: datetime) -> None:
        await self.client.set(keys.SYNC_THROUGH, format_alloy_datetime(moment))

    async def request_sync(self, item_ids: list[str]) -> None:
        """Ask the active poller to sync these items now (the webhook)."""
        await self.client.rpush(keys.SYNC_REQUESTS, *item_ids)

    async def wait_for_requests(self, within: float) -> list[str]:
        """Wait up to `within` seconds for item ids pushed by the webhook; returns them all, once each."""
        first = await self.client.blpop([keys.SYNC_REQUESTS], timeout=within)
        if first is None:
            return []
        more = await self.client.lpop(keys.SYNC_REQUESTS, MAX_REQUESTS_PER_READ) or []
        assert isinstance(more, list)
        return list(dict.fromkeys([str(first[1]), *(str(item_id) for item_id in more)]))

"""Reading what waits on a Dramatiq queue in Redis, for tests that count or inspect messages."""

from __future__ import annotations

from typing import Any

import dramatiq
import redis


def queued_messages(client: redis.Redis, queue: str = "default") -> list[dramatiq.Message[Any]]:
    """The messages waiting on `queue`, oldest first (one entry per message). `client` decodes responses."""
    message_ids = client.lrange(f"dramatiq:{queue}", 0, -1)
    bodies: list[str] = client.hmget(f"dramatiq:{queue}.msgs", message_ids) if message_ids else []  # type: ignore[assignment]
    return [dramatiq.Message.decode(body.encode()) for body in bodies]

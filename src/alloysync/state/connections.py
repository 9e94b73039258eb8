"""Redis connections for the long-running processes, with explicit timeouts.

Every blocking command alloysync issues waits at most BLOCK_SECONDS (BLPOP, XREADGROUP BLOCK,
pub/sub reads), which is well under SOCKET_TIMEOUT, so a slow answer means a dead connection, never
a long wait. Connections are health-checked when idle and reconnect by themselves after a Redis
restart; callers see a `redis.ConnectionError` meanwhile and retry at their own pace.
"""

from __future__ import annotations

import re
from typing import Any

import redis
import redis.asyncio as aioredis

SOCKET_TIMEOUT = 15.0  # seconds to wait for an answer on an established connection
CONNECT_TIMEOUT = 5.0
HEALTH_CHECK_INTERVAL = 30  # seconds idle before a connection is pinged before use
BLOCK_SECONDS = 2.0  # the longest blocking command alloysync sends
MIN_REDIS_VERSION = (6, 2)  # LPOP with a count (queue_fetch.lua), SMISMEMBER (report_written.lua)


def _options() -> dict[str, Any]:
    return {
        "socket_timeout": SOCKET_TIMEOUT,
        "socket_connect_timeout": CONNECT_TIMEOUT,
        "socket_keepalive": True,
        "health_check_interval": HEALTH_CHECK_INTERVAL,
    }


def connect(url: str, *, decode: bool = True) -> redis.Redis:
    """A synchronous client (scheduler, workers, threads of serve)."""
    return redis.Redis.from_url(url, decode_responses=decode, **_options())


def connect_async(url: str) -> aioredis.Redis:
    """An asyncio client (serve), decoding responses."""
    return aioredis.Redis.from_url(url, decode_responses=True, **_options())


def redis_version_problem(client: redis.Redis) -> str | None:
    """What is wrong with the server's version for alloysync's scripts (None when nothing is)."""
    info: dict[str, Any] = client.info("server")
    version = str(info.get("redis_version", ""))
    numbers = tuple(int(part) for part in re.findall(r"\d+", version)[:2])
    if numbers >= MIN_REDIS_VERSION:
        return None
    needed = ".".join(str(part) for part in MIN_REDIS_VERSION)
    return f"Redis {version or '(version unknown)'} is too old: alloysync needs Redis {needed} or newer"

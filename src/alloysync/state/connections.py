"""Redis connections for the long-running processes, with explicit timeouts.

Every blocking command alloysync issues waits at most BLOCK_SECONDS (BLPOP, XREADGROUP BLOCK,
pub/sub reads), which is well under SOCKET_TIMEOUT, so a slow answer means a dead connection, never
a long wait. Connections are health-checked when idle and reconnect by themselves after a Redis
restart; callers see a `redis.ConnectionError` meanwhile and retry at their own pace.

Commands are packed by hiredis (in C) on both clients. redis-py's synchronous client does that
by itself when hiredis is installed; its asyncio client packs in Python, argument by argument,
which for the script calls of a poller page or of the reporter's book (a few thousand arguments)
cost serve about 0.5 µs an argument, against 0.07 µs with hiredis.

The asyncio client also sends under `asyncio.timeout`, not redis-py's `asyncio.wait_for`. On
Python 3.11, `wait_for` returns normally when its task is cancelled just as the wrapped send
completes. redis-py wraps every send in it whenever a socket timeout is set, and one is always
set. A cancelled serve task then ran on: a reporter that had lost its lease kept writing, and a
stopping notifier hung in its next XREADGROUP. `tests/test_connections.py` cancels commands at
random moments to prove the fix. A send also costs one task fewer.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable
from typing import Any

import redis
import redis.asyncio as aioredis
from redis.connection import HiredisRespSerializer
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

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
    """An asyncio client (serve), decoding responses, its commands packed by hiredis and sent so
    that a cancelled task always stops."""
    client = aioredis.Redis.from_url(url, decode_responses=True, **_options())
    pool = client.connection_pool  # no connection is made before the first command
    pool.connection_class = _SERVE_CONNECTIONS.get(pool.connection_class, pool.connection_class)
    return client


class _ServeConnectionMixin:
    """Packs commands as redis-py's synchronous connections do (`HiredisRespSerializer`), and sends
    them under `asyncio.timeout` (see the module docstring)."""

    _serializer = HiredisRespSerializer()  # holds no state

    def pack_command(self, *args: Any) -> list[bytes]:
        packed: list[bytes] = self._serializer.pack(*args)
        return packed

    async def send_packed_command(
        self, command: str | bytes | Iterable[bytes], check_health: bool = True
    ) -> None:
        connection: Any = self  # an aioredis.AbstractConnection: the mixin comes first in its bases
        if not connection.is_connected:
            await connection.connect_check_health(check_health=False)
        if check_health:
            await connection.check_health()
        if isinstance(command, str):
            command = command.encode()
        chunks = [command] if isinstance(command, bytes) else list(command)
        try:
            async with asyncio.timeout(connection.socket_timeout):
                await connection._send_packed_command(chunks)
        except TimeoutError:
            await connection.disconnect(nowait=True)
            raise RedisTimeoutError("Timeout writing to socket") from None
        except OSError as error:
            await connection.disconnect(nowait=True)
            raise RedisConnectionError(f"Error while writing to socket: {error}") from error
        except BaseException:
            # Cancelled (or interrupted) part way through a command: what was written cannot be
            # taken back, so the connection is not used again (as redis-py does).
            await connection.disconnect(nowait=True)
            raise


class _PackedConnection(_ServeConnectionMixin, aioredis.Connection):
    pass


class _PackedSSLConnection(_ServeConnectionMixin, aioredis.SSLConnection):
    pass


class _PackedUnixConnection(_ServeConnectionMixin, aioredis.UnixDomainSocketConnection):
    pass


_SERVE_CONNECTIONS: dict[type[Any], type[Any]] = {
    aioredis.Connection: _PackedConnection,
    aioredis.SSLConnection: _PackedSSLConnection,
    aioredis.UnixDomainSocketConnection: _PackedUnixConnection,
}


def redis_version_problem(client: redis.Redis) -> str | None:
    """What is wrong with the server's version for alloysync's scripts (None when nothing is)."""
    info: dict[str, Any] = client.info("server")
    version = str(info.get("redis_version", ""))
    numbers = tuple(int(part) for part in re.findall(r"\d+", version)[:2])
    if numbers >= MIN_REDIS_VERSION:
        return None
    needed = ".".join(str(part) for part in MIN_REDIS_VERSION)
    return f"Redis {version or '(version unknown)'} is too old: alloysync needs Redis {needed} or newer"

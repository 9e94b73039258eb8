"""The Lua scripts alloysync runs in Redis, loaded from `lua/*.lua`.

Each script's first lines name its KEYS and ARGV entries (the way Dramatiq's `dispatch.lua` does).
A script whose header has the line `-- needs: helpers` gets `lua/helpers.lua` (read once) prepended,
so the shared functions (lease check, Redis time, appending an event, ending a run) exist once.
`register` binds a script to a client; the stores call it once each, at construction.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any, overload

import redis
import redis.asyncio as aioredis
from redis.commands.core import AsyncScript, Script

LUA_DIR = Path(__file__).with_name("lua")
HELPERS = "helpers"
_NEEDS_HELPERS = f"-- needs: {HELPERS}"


@cache
def _read(name: str) -> str:
    path = LUA_DIR / f"{name}.lua"
    if not path.is_file():
        raise FileNotFoundError(f"no Lua script {path} (alloysync's package data is incomplete)")
    return path.read_text(encoding="utf-8")


@cache
def source(name: str) -> str:
    """The text sent to Redis for script `name` (helpers prepended where its header asks)."""
    text = _read(name)
    if any(line.strip() == _NEEDS_HELPERS for line in text.splitlines()):
        return _read(HELPERS) + "\n" + text
    return text


@overload
def register(client: aioredis.Redis, name: str) -> AsyncScript: ...


@overload
def register(client: redis.Redis, name: str) -> Script: ...


def register(client: redis.Redis | aioredis.Redis, name: str) -> Script | AsyncScript:
    """Script `name` bound to `client` (sent by hash, loaded on first use)."""
    return client.register_script(source(name))


ScriptCall = tuple[Sequence[str], Sequence[Any]]  # one call of a script: its keys and its args


def call_each(script: Script, calls: Sequence[ScriptCall]) -> list[Any]:
    """The replies of `script` to each call, in one round trip, through the client it is bound to.
    A lone call is sent as it is: a pipeline that holds a script asks SCRIPT EXISTS before it runs
    (a round trip and a command more); several calls are pipelined."""
    if len(calls) == 1:
        call_keys, args = calls[0]
        return [script(keys=call_keys, args=args)]
    client: redis.Redis = script.registered_client  # type: ignore[assignment]  # never a cluster
    with client.pipeline(transaction=False) as pipe:
        for call_keys, args in calls:
            script(keys=call_keys, args=args, client=pipe)
        return list(pipe.execute())


async def call_each_async(script: AsyncScript, calls: Sequence[ScriptCall]) -> list[Any]:
    """`call_each` for an asyncio client."""
    if len(calls) == 1:
        call_keys, args = calls[0]
        return [await script(keys=call_keys, args=args)]
    client: aioredis.Redis = script.registered_client  # type: ignore[assignment]  # never a cluster
    async with client.pipeline(transaction=False) as pipe:
        for call_keys, args in calls:
            await script(keys=call_keys, args=args, client=pipe)
        return list(await pipe.execute())

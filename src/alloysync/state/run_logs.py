"""Per-run logs in Redis: `alloysync:runlog:{id}`, a list of JSON lines `{"at", "level", "text",
"step"}`, oldest first.

Workers append the lines a step logged (worker/run_log.py captures them) in batches while it runs
and when it ends, so a worker killed mid-step loses at most the last second of its lines; the list
is trimmed to ALLOYSYNC_RUN_LOG_MAX_LINES (the newest kept) and expires with the run record. The
lines left when a step returned travel with its finish instead (`finish_step.lua`, through
`Claims.finish_step_and_admit`): one round trip for the outcome and the log.
Readers are the jobs page, the API and the notifier (the last lines of a failed run).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import redis
import redis.asyncio as aioredis

from alloysync.state import keys
from alloysync.state.records import RUN_TTL


def run_log_key(run_id: str) -> str:
    return keys.run_log(run_id)


def encode_lines(lines: Sequence[dict[str, Any]]) -> list[str]:
    """Lines as the list holds them (one compact JSON object each)."""
    return [json.dumps(line, separators=(",", ":"), default=str) for line in lines]


class RunLogWriter:
    """Appending a run's lines (synchronous, in workers)."""

    def __init__(self, client: redis.Redis, max_lines: int) -> None:
        self.client = client
        self.max_lines = max_lines

    def append(self, run_id: str, lines: Sequence[dict[str, Any]]) -> None:
        """Append `lines` to the run's log, keep the newest `max_lines`, let it expire with the run."""
        if not lines:
            return
        key = run_log_key(run_id)
        with self.client.pipeline(transaction=False) as pipe:
            pipe.rpush(key, *encode_lines(lines))
            pipe.ltrim(key, -self.max_lines, -1)
            pipe.expire(key, RUN_TTL)
            pipe.execute()

    def tail(self, run_id: str, count: int) -> list[dict[str, Any]]:
        """The run's last `count` lines."""
        return _decode(self.client.lrange(run_log_key(run_id), -count, -1))


class RunLogReader:
    """Reading runs' logs (asyncio, in serve)."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client

    async def lines(self, run_id: str, count: int | None = None) -> list[dict[str, Any]]:
        """The run's log, oldest first (its last `count` lines when given)."""
        start = -count if count else 0
        return _decode(await self.client.lrange(run_log_key(run_id), start, -1))

    async def many(self, run_ids: Sequence[str]) -> list[list[dict[str, Any]]]:
        """The logs of several runs, in one round trip."""
        async with self.client.pipeline(transaction=False) as pipe:
            for run_id in run_ids:
                pipe.lrange(run_log_key(run_id), 0, -1)
            replies: list[list[Any]] = await pipe.execute()
        return [_decode(reply) for reply in replies]


def _decode(raw: list[Any]) -> list[dict[str, Any]]:
    lines = []
    for entry in raw:
        try:
            line = json.loads(entry)
        except ValueError:
            continue
        if isinstance(line, dict):
            lines.append(line)
    return lines

"""`alloysync check`: validate the deployment's settings and reach Alloy and Redis.

Prints one line per check (`ok` or `problem`), each problem saying what is wrong and how to fix it,
and exits 1 if there was any. Settings that fail validation never get here: the CLI prints one line
per invalid setting and exits 2.
"""

from __future__ import annotations

import asyncio
import sys

import redis

from alloysync.alloy import aqs
from alloysync.alloy.client import AlloyClient
from alloysync.alloy.errors import AlloyError
from alloysync.log import configure_logging
from alloysync.settings import Settings, redact_url
from alloysync.tasks import TaskModuleError, load_task_modules

CHECK_TIMEOUT = 10.0


def run_check(settings: Settings) -> int:
    # The report lines below say everything; the client's own retry/failure logs would only repeat it.
    configure_logging("CRITICAL", settings.log_format, process="check")
    problems = 0

    def report(ok: bool, what: str, detail: str) -> None:
        nonlocal problems
        problems += 0 if ok else 1
        line = f"{'ok     ' if ok else 'problem'}  {what}: {detail}"
        print(line, file=sys.stdout if ok else sys.stderr, flush=True)

    report(True, "settings", "valid")
    try:
        registry = load_task_modules(settings.task_modules)
        report(True, "tasks", f"{len(registry.names())} registered from {', '.join(settings.task_modules)}")
    except TaskModuleError as error:
        report(False, "tasks", str(error))
    if not settings.alloy_token_value():
        report(
            False, "alloy", "ALLOYSYNC_ALLOY_TOKEN is empty: set it to the Alloy API key alloysync should use"
        )
    else:
        ok, detail = asyncio.run(_probe_alloy(settings))
        report(ok, "alloy", detail)
    ok, detail = _probe_redis(settings)
    report(ok, "redis", detail)
    if settings.webhook_secret is None:
        report(
            True,
            "webhook",
            "ALLOYSYNC_WEBHOOK_SECRET is not set: the webhook is off, changes arrive by polling",
        )
    else:
        report(
            True, "webhook", f"enabled; Alloy must send the secret in the {settings.webhook_header} header"
        )
    return 1 if problems else 0


async def _probe_alloy(settings: Settings) -> tuple[bool, str]:
    """Read one page of the jobs design: proves the URL, the token and the design code."""
    client = AlloyClient(
        settings.alloy_url,
        settings.alloy_token,
        timeout=min(settings.alloy_timeout, CHECK_TIMEOUT),
        max_retries=0,
        page_size=1,
    )
    query = aqs.query(settings.jobs_design, collection=settings.jobs_collection)
    try:
        async with client:
            found = 0
            async for _item in client.query(query, page_size=1):
                found += 1
                break
    except AlloyError as error:
        return False, str(error)
    jobs = "found job records" if found else f"reachable; no {settings.jobs_design} records yet"
    return True, f"{settings.alloy_url} {jobs}"


def _probe_redis(settings: Settings) -> tuple[bool, str]:
    url = settings.effective_redis_url
    shown = redact_url(url)
    client = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3)
    try:
        client.ping()
    except redis.RedisError as error:
        hint = (
            "start Redis there or set ALLOYSYNC_REDIS_URL"
            if settings.redis_url
            else "set ALLOYSYNC_REDIS_URL"
        )
        return False, f"cannot reach Redis at {shown} ({error}): {hint}"
    finally:
        client.close()
    return True, f"{shown} answers"

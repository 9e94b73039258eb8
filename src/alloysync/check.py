"""`alloysync check`: validate the deployment's settings, the jobs design in Alloy, and reach Redis.

Prints one line per check: `ok`, `off` (an optional feature that is off because the design lacks
its attribute: not a problem) or `problem`, each problem naming the setting and the fix; exits 1 if
there was any problem. Settings that fail validation never get here: the CLI prints one line per
invalid setting and exits 2.

Alloy is checked in depth, with two requests: the jobs design is read (`GET /api/design/{code}`:
proves the URL, the token and the design code) and compared with the configured attribute codes by
`design_report.inspect_design`; then one AQS query of the design proves the key may read its items.
When Alloy cannot be reached or refuses the token, that is the one line about Alloy.
"""

from __future__ import annotations

import asyncio
import sys

import redis

from alloysync.alloy import aqs
from alloysync.alloy.client import AlloyClient
from alloysync.alloy.errors import AlloyError
from alloysync.log import configure_logging
from alloysync.model.design import JOB_ATTRIBUTES
from alloysync.model.design_report import inspect_design
from alloysync.model.registry import TaskModuleError, load_task_modules
from alloysync.settings import Settings, redact_url
from alloysync.state.connections import redis_version_problem

CHECK_TIMEOUT = 10.0


Line = tuple[str, str, str]  # (kind: ok | off | problem, what, detail)


def run_check(settings: Settings) -> int:
    # The report lines below say everything; the client's own retry/failure logs would only repeat it.
    configure_logging("CRITICAL", settings.log_format, process="check")
    problems = 0

    def report(kind: str, what: str, detail: str) -> None:
        nonlocal problems
        if kind == "problem":
            problems += 1
        line = f"{kind:<7}  {what}: {detail}"
        print(line, file=sys.stderr if kind == "problem" else sys.stdout, flush=True)

    report("ok", "settings", "valid")
    try:
        registry = load_task_modules(settings.task_modules_to_load)
        modules = ", ".join(settings.task_modules_to_load)
        report("ok", "tasks", f"{len(registry.names())} registered from {modules}")
    except TaskModuleError as error:
        report("problem", "tasks", str(error))
    if not settings.alloy_token_value():
        report(
            "problem",
            "alloy",
            "ALLOYSYNC_ALLOY_TOKEN is empty: set it to the Alloy API key alloysync should use",
        )
    else:
        for line in asyncio.run(check_alloy(settings)):
            report(*line)
    ok, detail = _probe_redis(settings)
    report("ok" if ok else "problem", "redis", detail)
    if settings.webhook_secret is None:
        report(
            "ok",
            "webhook",
            "ALLOYSYNC_WEBHOOK_SECRET is not set: the webhook is off, changes arrive by polling",
        )
    else:
        report(
            "ok", "webhook", f"enabled; Alloy must send the secret in the {settings.webhook_header} header"
        )
    return 1 if problems else 0


async def check_alloy(settings: Settings) -> list[Line]:
    """Read the jobs design, compare it with the configured codes, query it once."""
    client = AlloyClient(
        settings.alloy_url,
        settings.alloy_token,
        timeout=min(settings.alloy_timeout, CHECK_TIMEOUT),
        max_retries=0,
        page_size=1,
    )
    async with client:
        design_code = settings.jobs_design
        try:
            design = await client.get_design(design_code)
        except AlloyError as error:
            return [_design_unreadable(settings, error)]
        lines: list[Line] = [
            ("ok", "alloy", f'{settings.alloy_url} answers; design {design_code} "{design.name}"')
        ]
        report = inspect_design(design, settings.attributes, message_max_chars=settings.message_max_chars)
        lines += [("problem", "design", line) for line in report.problem_lines()]
        usable = len(report.present)
        lines.append(("ok", "design", f"{usable} of {len(JOB_ATTRIBUTES)} job attributes are usable"))
        lines += [("off", "feature", line) for line in report.feature_lines()]
        lines.append(await _query_design(client, settings))
    return lines


def _design_unreadable(settings: Settings, error: AlloyError) -> Line:
    code = settings.jobs_design
    if error.is_not_found:
        return (
            "problem",
            "design",
            f"ALLOYSYNC_JOBS_DESIGN={code}: Alloy has no such design (or the API key's user may not "
            "read it): run `alloysync setup` to create the jobs design and print its settings, or set "
            "ALLOYSYNC_JOBS_DESIGN to the code of your jobs design",
        )
    if error.is_forbidden:
        return (
            "problem",
            "design",
            f"the Alloy user of this API key may not read design {code} ({error}): give that user a "
            "role that can read it (API keys act with their user's roles)",
        )
    return "problem", "alloy", str(error)


async def _query_design(client: AlloyClient, settings: Settings) -> Line:
    """One AQS query of the jobs design (at most one item): proves the key may read its items."""
    query = aqs.query(settings.jobs_design, collection=settings.jobs_collection)
    try:
        found = 0
        async for _item in client.query(query, page_size=1):
            found += 1
            break
    except AlloyError as error:
        hint = (
            ": give the API key's user a role that may read the design's items" if error.is_forbidden else ""
        )
        return "problem", "alloy query", f"cannot query design {settings.jobs_design}: {error}{hint}"
    jobs = "found job records" if found else "no job records yet"
    return "ok", "alloy query", f"the key can query {settings.jobs_design} ({jobs})"


def _probe_redis(settings: Settings) -> tuple[bool, str]:
    url = settings.effective_redis_url
    shown = redact_url(url)
    client = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3)
    try:
        client.ping()
        too_old = redis_version_problem(client)
    except redis.RedisError as error:
        hint = (
            "start Redis there or set ALLOYSYNC_REDIS_URL"
            if settings.redis_url
            else "set ALLOYSYNC_REDIS_URL"
        )
        return False, f"cannot reach Redis at {shown} ({error}): {hint}"
    finally:
        client.close()
    if too_old:
        return False, f"{shown}: {too_old}"
    return True, f"{shown} answers"

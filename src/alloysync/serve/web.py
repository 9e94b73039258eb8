"""The HTTP side of `serve` (aiohttp): the Alloy webhook, `/metrics`, the jobs page and its JSON API.

Routes:
  POST /webhooks/alloy   Alloy's "Http Request" workflow action. Authenticated by a shared secret in
                         the header ALLOYSYNC_WEBHOOK_HEADER (constant-time comparison; 401 otherwise;
                         503 while ALLOYSYNC_WEBHOOK_SECRET is unset). The body (at most
                         ALLOYSYNC_WEBHOOK_MAX_BYTES) names item ids; they are queued for the active
                         poller to sync now (whichever replica received the call).
  GET  /metrics          Prometheus exposition of this process.
  GET  /                 active jobs page (Jinja2 templates, refreshes itself; ?status= filters), with
                         each job's last outcomes as a strip.
  GET  /jobs/{id}        one job with its duration chart and recent runs (HTML).
  GET  /jobs/{id}/runs/{run id}
                         one run: its times, attempts, error, step results and log (HTML).
  GET  /api/jobs         the jobs as JSON (?status= filters); GET /api/jobs/{id} one job with runs;
                         GET /api/jobs/{id}/runs/{run id} one run in full.
  GET  /healthz          liveness, and whether this replica is the active poller.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import re
from collections.abc import Callable
from typing import Any

import aiohttp_jinja2
import redis.asyncio as aioredis
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from alloysync.log import get_logger
from alloysync.metrics import WEBHOOK_REQUESTS
from alloysync.serve import pages
from alloysync.serve.summaries import job_summary, outcome_summary, run_detail, run_summary
from alloysync.settings import Settings
from alloysync.state.jobs import JobStore
from alloysync.state.records import RunRecord
from alloysync.state.run_logs import RunLogReader
from alloysync.state.sync import SyncState

logger = get_logger(__name__)

ITEM_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_ITEMS_PER_CALL = 1000
STATUS_FILTERS = (
    "Scheduled",
    "Queued",
    "Running",
    "Succeeded",
    "Failed",
    "Overdue",
    "Cancelled",
    "Invalid",
    "Paused",
)


class WebhookBodyError(ValueError):
    """The webhook body does not name items in a shape we understand."""


def build_app(settings: Settings, client: aioredis.Redis, is_leader: Callable[[], bool]) -> web.Application:
    store = JobStore(client)
    run_logs = RunLogReader(client)
    sync = SyncState(client)
    app = web.Application(client_max_size=settings.webhook_max_bytes)
    pages.setup(app)

    async def webhook(request: web.Request) -> web.Response:
        secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else ""
        if not secret:
            WEBHOOK_REQUESTS.labels(outcome="disabled").inc()
            return _error(
                503, "the webhook is disabled: set ALLOYSYNC_WEBHOOK_SECRET on serve and in Alloy's workflow"
            )
        offered = request.headers.get(settings.webhook_header, "")
        if not hmac.compare_digest(offered.encode(), secret.encode()):
            WEBHOOK_REQUESTS.labels(outcome="unauthorized").inc()
            logger.warning("webhook call with a missing or wrong secret", remote=request.remote)
            return _error(401, f"missing or wrong shared secret in the {settings.webhook_header} header")
        if request.content_length is not None and request.content_length > settings.webhook_max_bytes:
            WEBHOOK_REQUESTS.labels(outcome="rejected").inc()
            return _error(
                413, f"body larger than {settings.webhook_max_bytes} bytes (ALLOYSYNC_WEBHOOK_MAX_BYTES)"
            )
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            WEBHOOK_REQUESTS.labels(outcome="rejected").inc()
            return _error(
                413, f"body larger than {settings.webhook_max_bytes} bytes (ALLOYSYNC_WEBHOOK_MAX_BYTES)"
            )
        try:
            item_ids = parse_webhook_body(raw)
        except WebhookBodyError as error:
            WEBHOOK_REQUESTS.labels(outcome="rejected").inc()
            return _error(400, str(error))
        await sync.request_sync(item_ids)
        WEBHOOK_REQUESTS.labels(outcome="accepted").inc()
        logger.info("webhook accepted", items=len(item_ids))
        return web.json_response({"accepted": item_ids}, status=202)

    async def metrics(_request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"ok": True, "poller": is_leader()})

    async def jobs_json(request: web.Request) -> web.Response:
        status = _status_filter(request)
        rows = [job_summary(job) for job in await store.jobs()]
        return web.json_response({"jobs": [row for row in rows if status is None or row["status"] == status]})

    async def job_json(request: web.Request) -> web.Response:
        item_id = request.match_info["item_id"]
        job = await store.job(item_id)
        if job is None:
            return _error(404, f"no job with item id {item_id!r}")
        summary = job_summary(job)
        recent = await store.recent_runs(item_id)
        logs = await run_logs.many([run.run_id for run in recent])
        summary["runs"] = [{**run_summary(run), "log": log} for run, log in zip(recent, logs, strict=True)]
        return web.json_response(summary)

    async def run_json(request: web.Request) -> web.Response:
        item_id, run_id = request.match_info["item_id"], request.match_info["run_id"]
        run = await _run_of(item_id, run_id)
        if run is None:
            return _error(404, f"no run {run_id!r} of a job with item id {item_id!r}")
        return web.json_response(run_detail(run, await run_logs.lines(run_id)))

    async def index(request: web.Request) -> web.Response:
        status = _status_filter(request)
        rows = [job_summary(job) for job in await store.jobs()]
        shown = sorted(
            (row for row in rows if status is None or row["status"] == status),
            key=lambda row: ((row["title"] or row["item_id"]).casefold(), row["item_id"]),
        )
        outcomes = await store.recent_outcomes([row["item_id"] for row in shown], pages.STRIP_LENGTH)
        leader = is_leader()

        def context() -> dict[str, Any]:
            return {
                "refresh": pages.REFRESH_SECONDS,
                "total": len(rows),
                "role": "active poller" if leader else "standby replica",
                "status": status,
                "filters": [
                    {
                        "name": name,
                        "on": status == name,
                        "count": sum(1 for row in rows if row["status"] == name),
                    }
                    for name in STATUS_FILTERS
                ],
                "strip_length": pages.STRIP_LENGTH,
                "rows": [
                    {
                        "job": row,
                        "href": pages.job_href(row["item_id"]),
                        "strip": pages.outcome_strip(
                            row["item_id"], [outcome_summary(run) for run in outcomes[row["item_id"]]]
                        ),
                    }
                    for row in shown
                ],
            }

        return await _html(request, "jobs.html", context)

    async def job_page(request: web.Request) -> web.Response:
        item_id = request.match_info["item_id"]
        job = await store.job(item_id)
        if job is None:
            return await _not_found(request, f"No job with item id {item_id}.")
        runs = [
            {**run_summary(run), "href": pages.run_href(item_id, run.run_id)}
            for run in await store.recent_runs(item_id)
        ]
        return await _html(
            request,
            "job.html",
            lambda: {
                "refresh": pages.REFRESH_SECONDS,
                "job": job_summary(job),
                "runs": runs,
                "chart": pages.duration_chart(item_id, runs),
            },
        )

    async def run_page(request: web.Request) -> web.Response:
        item_id, run_id = request.match_info["item_id"], request.match_info["run_id"]
        job = await store.job(item_id)
        run = await _run_of(item_id, run_id) if job is not None else None
        if job is None or run is None:
            return await _not_found(request, f"No run {run_id} of a job with item id {item_id}.")
        summary = job_summary(job)
        detail = run_detail(run, await run_logs.lines(run_id))

        def context() -> dict[str, Any]:
            log, log_hidden = pages.log_lines(detail)
            return {
                # An ended run does not change any more; one in progress is watched.
                "refresh": None if detail["state"] in pages.ENDED_STATES else pages.REFRESH_SECONDS,
                "job": summary,
                "job_href": pages.job_href(item_id),
                "run": detail,
                "ended_states": pages.ENDED_STATES,
                "results": pages.step_results(detail),
                "log": log,
                "log_hidden": log_hidden,
            }

        return await _html(request, "run.html", context)

    async def _run_of(item_id: str, run_id: str) -> RunRecord | None:
        """The run, if it is one of this job's (a run id names its item, but the record says)."""
        run = await store.run(run_id)
        return run if run is not None and run.item_id == item_id else None

    async def _not_found(request: web.Request, message: str) -> web.Response:
        context = {"refresh": pages.REFRESH_SECONDS, "message": message}
        return await _html(request, "not_found.html", lambda: context, status=404)

    app.router.add_post("/webhooks/alloy", webhook)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/api/jobs", jobs_json)
    app.router.add_get("/api/jobs/{item_id}", job_json)
    app.router.add_get("/api/jobs/{item_id}/runs/{run_id}", run_json)
    app.router.add_get("/", index)
    app.router.add_get("/jobs/{item_id}", job_page)
    app.router.add_get("/jobs/{item_id}/runs/{run_id}", run_page)
    return app


def parse_webhook_body(raw: bytes) -> list[str]:
    """Item ids named by a webhook body.

    Accepted shapes (what an Alloy workflow can be configured to send): `{"itemId": "…"}`,
    `{"itemIds": ["…", …]}`, `{"item": {"itemId": "…"}}`, or a list of those.
    """
    if not raw.strip():
        raise WebhookBodyError('body is empty: send e.g. {"itemId": "<item id>"}')
    try:
        document = json.loads(raw)
    except ValueError:
        raise WebhookBodyError('body is not JSON: send e.g. {"itemId": "<item id>"}') from None
    found: list[str] = []
    for part in document if isinstance(document, list) else [document]:
        if not isinstance(part, dict):
            raise WebhookBodyError('each entry must be an object such as {"itemId": "<item id>"}')
        candidates: list[Any] = []
        if "itemId" in part:
            candidates.append(part["itemId"])
        if isinstance(part.get("itemIds"), list):
            candidates.extend(part["itemIds"])
        if isinstance(part.get("item"), dict) and "itemId" in part["item"]:
            candidates.append(part["item"]["itemId"])
        if not candidates:
            raise WebhookBodyError('no item named: send {"itemId": "<item id>"} or {"itemIds": [...]}')
        for candidate in candidates:
            if not isinstance(candidate, str) or not ITEM_ID.match(candidate):
                raise WebhookBodyError(f"{str(candidate)[:80]!r} is not an item id")
            found.append(candidate)
    unique = list(dict.fromkeys(found))
    if len(unique) > MAX_ITEMS_PER_CALL:
        raise WebhookBodyError(f"too many items in one call ({len(unique)}); at most {MAX_ITEMS_PER_CALL}")
    return unique


async def _html(
    request: web.Request, template: str, context: Callable[[], dict[str, Any]], status: int = 200
) -> web.Response:
    """The page `template` with the values `context()` makes, both done in a thread so that a page of
    many jobs does not hold up serve's event loop (poller, reporter, lease); gzip-compressed when the
    browser accepts it (the jobs page refreshes itself every few seconds)."""

    def render() -> str:
        return aiohttp_jinja2.render_string(template, request, context())

    response = web.Response(text=await asyncio.to_thread(render), content_type="text/html", status=status)
    response.enable_compression()
    return response


def _status_filter(request: web.Request) -> str | None:
    value = request.query.get("status", "").strip().capitalize()
    return value if value in STATUS_FILTERS else None


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)

"""The HTTP side of `serve` (aiohttp): the Alloy webhook, `/metrics`, the jobs page and its JSON API.

Routes:
  POST /webhooks/alloy   Alloy's "Http Request" workflow action. Authenticated by a shared secret in
                         the header ALLOYSYNC_WEBHOOK_HEADER (constant-time comparison; 401 otherwise;
                         503 while ALLOYSYNC_WEBHOOK_SECRET is unset). The body (at most
                         ALLOYSYNC_WEBHOOK_MAX_BYTES) names item ids; they are queued for the active
                         poller to sync now (whichever replica received the call).
  GET  /metrics          Prometheus exposition of this process.
  GET  /                 active jobs page (server-rendered HTML, refreshes itself; ?status= filters).
  GET  /jobs/{id}        one job with its recent runs (HTML).
  GET  /api/jobs         the jobs as JSON (?status= filters); GET /api/jobs/{id} one job with runs.
  GET  /healthz          liveness, and whether this replica is the active poller.
"""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from alloysync.log import get_logger
from alloysync.metrics import WEBHOOK_REQUESTS
from alloysync.model.times import parse_alloy_datetime
from alloysync.serve import pages
from alloysync.settings import Settings
from alloysync.state.jobs import JobStore
from alloysync.state.records import JobPhase, JobRecord, RunPhase, RunRecord
from alloysync.state.sync import SyncState

logger = get_logger(__name__)

ITEM_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_ITEMS_PER_CALL = 1000
STATUS_FILTERS = ("Scheduled", "Queued", "Running", "Succeeded", "Failed", "Invalid", "Paused")


class WebhookBodyError(ValueError):
    """The webhook body does not name items in a shape we understand."""


def build_app(settings: Settings, client: aioredis.Redis, is_leader: Callable[[], bool]) -> web.Application:
    store = JobStore(client)
    sync = SyncState(client)
    app = web.Application(client_max_size=settings.webhook_max_bytes)

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
        summary["runs"] = [run_summary(run) for run in await store.recent_runs(item_id)]
        return web.json_response(summary)

    async def index(request: web.Request) -> web.Response:
        status = _status_filter(request)
        rows = [job_summary(job) for job in await store.jobs()]
        html = pages.jobs_page(rows, status, STATUS_FILTERS, leader=is_leader())
        return web.Response(text=html, content_type="text/html")

    async def job_page(request: web.Request) -> web.Response:
        item_id = request.match_info["item_id"]
        job = await store.job(item_id)
        if job is None:
            return web.Response(text=pages.not_found_page(item_id), content_type="text/html", status=404)
        summary = job_summary(job)
        runs = [run_summary(run) for run in await store.recent_runs(item_id)]
        return web.Response(text=pages.job_page(summary, runs), content_type="text/html")

    app.router.add_post("/webhooks/alloy", webhook)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/api/jobs", jobs_json)
    app.router.add_get("/api/jobs/{item_id}", job_json)
    app.router.add_get("/", index)
    app.router.add_get("/jobs/{item_id}", job_page)
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


def job_summary(job: JobRecord) -> dict[str, Any]:
    """The jobs page / API view of a job record."""
    if job.phase is JobPhase.DISABLED:
        status = "Paused"
    else:
        status = job.view.status or ("Invalid" if job.phase is JobPhase.INVALID else "")
    started = job.view.last_run_started
    finished = job.view.last_run_finished
    return {
        "item_id": job.item_id,
        "title": job.title,
        "task": job.task,
        "schedule": job.schedule,
        "timezone": job.timezone,
        "status": status,
        "message": job.view.message or job.invalid,
        "last_run_started": started,
        "last_run_finished": finished,
        "last_run_duration": _seconds_between(started, finished),
        "next_run": job.view.next_run,
        "run_count": job.view.run_count or job.run_count,
        "version": job.version,
    }


def run_summary(run: RunRecord) -> dict[str, Any]:
    """The job page / API view of a run record. `attempts` are those of the step that needed most
    (retries + 1): a pipeline whose steps each ran once shows 1."""
    shows_error = run.phase in (RunPhase.FAILED, RunPhase.SKIPPED, RunPhase.RUNNING, RunPhase.QUEUED)
    return {
        "run_id": run.run_id,
        "kind": run.kind,
        "task": run.task,
        "state": run.phase.value if run.phase else "",
        "scheduled_at": run.scheduled_at,
        "created": run.created,
        "started": run.started,
        "finished": run.finished,
        "duration": _seconds_between(run.started, run.finished),
        "attempts": run.attempts,
        "error": run.error if shows_error else "",
    }


def _seconds_between(start: str, end: str) -> float | None:
    if not start or not end:
        return None
    seconds = (parse_alloy_datetime(end) - parse_alloy_datetime(start)).total_seconds()
    return round(seconds, 3) if seconds >= 0 else None


def _status_filter(request: web.Request) -> str | None:
    value = request.query.get("status", "").strip().capitalize()
    return value if value in STATUS_FILTERS else None


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)

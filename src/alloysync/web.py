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
from datetime import datetime
from typing import Any

import redis.asyncio as aioredis
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from alloysync import keys, pages
from alloysync.log import get_logger
from alloysync.metrics import WEBHOOK_REQUESTS
from alloysync.settings import Settings
from alloysync.store import JobStore

logger = get_logger(__name__)

ITEM_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_ITEMS_PER_CALL = 1000
STATUS_FILTERS = ("Scheduled", "Queued", "Running", "Succeeded", "Failed", "Invalid", "Paused")


class WebhookBodyError(ValueError):
    """The webhook body does not name items in a shape we understand."""


def build_app(settings: Settings, client: aioredis.Redis, is_leader: Callable[[], bool]) -> web.Application:
    store = JobStore(client)
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
        await client.rpush(keys.SYNC_REQUESTS, *item_ids)
        WEBHOOK_REQUESTS.labels(outcome="accepted").inc()
        logger.info("webhook accepted", items=len(item_ids))
        return web.json_response({"accepted": item_ids}, status=202)

    async def metrics(_request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"ok": True, "poller": is_leader()})

    async def jobs_json(request: web.Request) -> web.Response:
        status = _status_filter(request)
        rows = [job_summary(row) for row in await store.jobs()]
        return web.json_response({"jobs": [row for row in rows if status is None or row["status"] == status]})

    async def job_json(request: web.Request) -> web.Response:
        item_id = request.match_info["item_id"]
        row = await store.job(item_id)
        if not row:
            return _error(404, f"no job with item id {item_id!r}")
        summary = job_summary({"item_id": item_id, **row})
        summary["runs"] = [run_summary(run) for run in await store.recent_runs(item_id)]
        return web.json_response(summary)

    async def index(request: web.Request) -> web.Response:
        status = _status_filter(request)
        rows = [job_summary(row) for row in await store.jobs()]
        html = pages.jobs_page(rows, status, STATUS_FILTERS, leader=is_leader())
        return web.Response(text=html, content_type="text/html")

    async def job_page(request: web.Request) -> web.Response:
        item_id = request.match_info["item_id"]
        row = await store.job(item_id)
        if not row:
            return web.Response(text=pages.not_found_page(item_id), content_type="text/html", status=404)
        summary = job_summary({"item_id": item_id, **row})
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


def job_summary(row: dict[str, str]) -> dict[str, Any]:
    """The jobs page / API view of a `job:{item}` hash."""
    state = row.get("state", "")
    status = (
        "Paused"
        if state == "disabled"
        else row.get("view_status") or ("Invalid" if state == "invalid" else "")
    )
    started = row.get("view_last_run_started", "")
    finished = row.get("view_last_run_finished", "")
    return {
        "item_id": row.get("item_id", ""),
        "title": row.get("title", ""),
        "task": row.get("task", ""),
        "schedule": row.get("schedule", ""),
        "timezone": row.get("timezone", ""),
        "status": status,
        "message": row.get("view_message") or row.get("invalid", ""),
        "last_run_started": started,
        "last_run_finished": finished,
        "last_run_duration": _seconds_between(started, finished),
        "next_run": row.get("view_next_run", ""),
        "run_count": int(row.get("view_run_count") or row.get("run_count") or 0),
        "version": int(row.get("version") or 0),
    }


def run_summary(run: dict[str, str]) -> dict[str, Any]:
    state = run.get("state", "")
    return {
        "run_id": run.get("run_id", ""),
        "kind": run.get("kind", ""),
        "task": run.get("task", ""),
        "state": state,
        "scheduled_at": run.get("scheduled_at", ""),
        "created": run.get("created", ""),
        "started": run.get("started", ""),
        "finished": run.get("finished", ""),
        "duration": _seconds_between(run.get("started", ""), run.get("finished", "")),
        "attempts": int(run.get("attempts") or 0),
        "error": run.get("error", "") if state in ("failed", "skipped", "running", "queued") else "",
    }


def _seconds_between(start: str, end: str) -> float | None:
    if not start or not end:
        return None
    seconds = (_parse(end) - _parse(start)).total_seconds()
    return round(seconds, 3) if seconds >= 0 else None


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _status_filter(request: web.Request) -> str | None:
    value = request.query.get("status", "").strip().capitalize()
    return value if value in STATUS_FILTERS else None


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)

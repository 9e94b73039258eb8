"""serve's HTTP side over real HTTP and real Redis: the webhook's authentication and limits, the jobs
API and page, /metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from alloysync.local.redis_server import RedisServer
from alloysync.serve.web import WebhookBodyError, build_app, parse_webhook_body
from alloysync.settings import Settings
from alloysync.state import keys

SECRET = "s3cret-for-tests"
ITEM = "5f898d4790478c0067f863e5"


@pytest.fixture
async def client(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    connection = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    yield connection
    await connection.aclose()


WebClient = TestClient[web.Request, web.Application]


async def http(client: aioredis.Redis, secret: str | None = SECRET) -> WebClient:
    """serve's app on a real loopback port, with a client for it."""
    settings = Settings(webhook_secret=SecretStr(secret) if secret else None, webhook_max_bytes=1024)
    test_client: WebClient = TestClient(
        TestServer(build_app(settings, client, lambda: True), host="127.0.0.1")
    )
    await test_client.start_server()
    return test_client


async def test_webhook_requires_the_secret(client: aioredis.Redis) -> None:
    web = await http(client)
    try:
        body = {"itemId": ITEM}
        for headers in ({}, {"X-Alloysync-Secret": "wrong"}, {"X-Alloysync-Secret": SECRET + "x"}):
            response = await web.post("/webhooks/alloy", json=body, headers=headers)
            assert response.status == 401
            assert "X-Alloysync-Secret" in (await response.json())["error"]
        assert await client.llen(keys.SYNC_REQUESTS) == 0
        response = await web.post("/webhooks/alloy", json=body, headers={"X-Alloysync-Secret": SECRET})
        assert response.status == 202 and (await response.json()) == {"accepted": [ITEM]}
        assert await client.lrange(keys.SYNC_REQUESTS, 0, -1) == [ITEM]
        response = await web.post("/webhooks/alloy", data=b"x" * 2048, headers={"X-Alloysync-Secret": SECRET})
        assert response.status == 413
        response = await web.post("/webhooks/alloy", data=b"{", headers={"X-Alloysync-Secret": SECRET})
        assert response.status == 400 and "not JSON" in (await response.json())["error"]
    finally:
        await web.close()


async def test_webhook_is_off_without_a_secret(client: aioredis.Redis) -> None:
    web = await http(client, secret=None)
    try:
        response = await web.post(
            "/webhooks/alloy", json={"itemId": ITEM}, headers={"X-Alloysync-Secret": ""}
        )
        assert response.status == 503 and "ALLOYSYNC_WEBHOOK_SECRET" in (await response.json())["error"]
        assert await client.llen(keys.SYNC_REQUESTS) == 0
    finally:
        await web.close()


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"itemId": "a1"}', ["a1"]),
        (b'{"itemIds": ["a1", "b2", "a1"]}', ["a1", "b2"]),
        (b'{"item": {"itemId": "c3", "designCode": "designs_x"}}', ["c3"]),
        (b'[{"itemId": "a1"}, {"itemId": "d4"}]', ["a1", "d4"]),
    ],
)
def test_webhook_bodies_name_items(body: bytes, expected: list[str]) -> None:
    assert parse_webhook_body(body) == expected


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"", "body is empty"),
        (b"[1]", "must be an object"),
        (b'{"designCode": "x"}', "no item named"),
        (b'{"itemId": "../../etc"}', "is not an item id"),
        (b'{"itemId": 5}', "is not an item id"),
        (b'{"itemIds": ' + str([f"i{n}" for n in range(1001)]).replace("'", '"').encode() + b"}", "too many"),
    ],
)
def test_bad_webhook_bodies_are_rejected_with_a_reason(body: bytes, fragment: str) -> None:
    with pytest.raises(WebhookBodyError, match=fragment):
        parse_webhook_body(body)


async def test_jobs_api_and_page(client: aioredis.Redis) -> None:
    await client.sadd(keys.JOBS, ITEM, "paused1")
    await client.hset(
        keys.job(ITEM),
        mapping={
            "title": "<script>alert(1)</script> prices",
            "task": "coinrequest.get_btc_prices",
            "state": "valid",
            "view_status": "Failed",
            "view_message": "Failed: RuntimeError: boom",
            "view_last_run_started": "2026-11-21T10:00:00.000Z",
            "view_last_run_finished": "2026-11-21T10:00:02.500Z",
            "view_run_count": "3",
        },
    )
    await client.hset(keys.job("paused1"), mapping={"title": "paused one", "state": "disabled"})
    await client.hset(
        keys.run("now:x:v1"),
        mapping={"run_id": "now:x:v1", "state": "failed", "started": "2026-11-21T10:00:00.000Z",
                 "finished": "2026-11-21T10:00:02.500Z", "error": "RuntimeError: boom", "attempts": "2"},
    )  # fmt: skip
    await client.lpush(keys.job_runs(ITEM), "now:x:v1")
    web = await http(client)
    try:
        jobs = (await (await web.get("/api/jobs")).json())["jobs"]
        assert {job["title"]: job["status"] for job in jobs} == {
            "<script>alert(1)</script> prices": "Failed",
            "paused one": "Paused",
        }
        failed = (await (await web.get("/api/jobs?status=failed")).json())["jobs"]
        assert [job["item_id"] for job in failed] == [ITEM]
        assert failed[0]["last_run_duration"] == 2.5 and failed[0]["run_count"] == 3
        detail = await (await web.get(f"/api/jobs/{ITEM}")).json()
        assert detail["runs"] == [
            {"run_id": "now:x:v1", "kind": "", "task": "", "state": "failed", "scheduled_at": "",
             "created": "", "started": "2026-11-21T10:00:00.000Z", "finished": "2026-11-21T10:00:02.500Z",
             "duration": 2.5, "attempts": 2, "error": "RuntimeError: boom"},
        ]  # fmt: skip
        assert (await web.get("/api/jobs/unknown")).status == 404
        page = await (await web.get("/")).text()
        assert "&lt;script&gt;alert(1)&lt;/script&gt; prices" in page and "<script>alert" not in page
        assert "Failed: RuntimeError: boom" in page and 'http-equiv="refresh"' in page
        job_page = await (await web.get(f"/jobs/{ITEM}")).text()
        assert "RuntimeError: boom" in job_page and "now:x:v1" in job_page
        metrics = await (await web.get("/metrics")).text()
        assert "alloysync_build_info" in metrics
        assert (await (await web.get("/healthz")).json()) == {"ok": True, "poller": True}
    finally:
        await web.close()

"""serve's HTTP side over real HTTP and real Redis: the webhook's authentication and limits, the jobs
API, the pages (jobs list with outcome strips, job page with its duration chart, run page; rendered
from the Jinja2 templates, markup escaped), /metrics."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from alloysync.local.redis_server import RedisServer
from alloysync.model.freshness import max_age_text
from alloysync.model.times import format_alloy_datetime
from alloysync.serve import pages
from alloysync.serve.web import WebhookBodyError, build_app, parse_webhook_body
from alloysync.settings import Settings
from alloysync.state import keys
from alloysync.state.connections import connect_async
from alloysync.state.jobs import OUTCOME_ERROR_CHARS, JobStore, RunOutcome
from tests.support.browser import Cell, Page

SECRET = "s3cret-for-tests"
ITEM = "5f898d4790478c0067f863e5"


@pytest.fixture
async def client(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    connection = connect_async(redis_server.url)
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
             "duration": 2.5, "attempts": 2, "error": "RuntimeError: boom",
             "log": []},  # each run's log (issue 11): none kept for this hand-made run
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


# --- the pages (Jinja2 templates) -----------------------------------------------------------------

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def at(minutes: float) -> str:
    """Alloy DateTime text `minutes` after NOW."""
    return format_alloy_datetime(NOW + timedelta(minutes=minutes))


async def add_job(client: aioredis.Redis, item_id: str, **fields: str) -> None:
    await client.sadd(keys.JOBS, item_id)
    record: dict[Any, Any] = {"title": item_id, "task": "tests.record", "state": "valid", **fields}
    await client.hset(keys.job(item_id), mapping=record)


async def add_run(
    client: aioredis.Redis, item_id: str, run_id: str, state: str, start: float | None = None,
    seconds: float | None = None, **fields: str,
) -> None:  # fmt: skip
    """A run record of `item_id` that started `start` minutes after NOW and took `seconds`, pushed
    onto the job's history as its newest run."""
    record: dict[Any, Any] = {"run_id": run_id, "item": item_id, "state": state, "kind": "cron", **fields}
    record.setdefault("task", "tests.record")
    if start is not None:
        record["started"] = at(start)
        if seconds is not None:
            record["finished"] = at(start + seconds / 60)
    await client.hset(keys.run(run_id), mapping=record)
    await client.lpush(keys.job_runs(item_id), run_id)


async def page(web: WebClient, path: str, status: int = 200) -> Page:
    response = await web.get(path)
    assert response.status == status, (path, response.status, await response.text())
    assert response.content_type == "text/html"
    return Page.parse(await response.text())


def strip_of(row: list[Cell]) -> list[dict[str, str]]:
    """The strip's cells (runs are links, empty slots are not), left to right."""
    return [attrs for _tag, attrs in row[7].elements if "cell" in attrs.get("class", "").split()]


def test_the_environment_escapes_markup() -> None:
    env = pages.environment()
    assert env.autoescape is True
    html = env.get_template("not_found.html").render(refresh=None, message="<script>alert(1)</script>")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert" not in html


async def test_jobs_page_shows_each_jobs_last_20_outcomes_as_a_strip(client: aioredis.Redis) -> None:
    await add_job(client, "busy", title="Busy job", view_status="Succeeded")
    await add_job(client, "fresh", title="Fresh job", view_status="Queued")
    states = ["failed", "succeeded", "skipped", "running", "queued"]
    for number in range(23):  # oldest first: run 22 is the newest
        state = states[number % len(states)] if number < 20 else "succeeded"
        ended = state in ("failed", "succeeded")
        await add_run(
            client, "busy", f"cron:busy:{number}", state, start=number, seconds=2.5 if ended else None,
            error="RuntimeError: <b>boom</b>" if state == "failed" else "",
        )  # fmt: skip
    await client.hset(keys.job("busy"), mapping={"consecutive_failures": "0"})
    await add_run(client, "fresh", "now:fresh:v1", "queued")
    web = await http(client)
    try:
        rows = {row[0].text: row for row in (await page(web, "/")).rows("jobs")}
        assert list(rows) == ["Busy job", "Fresh job"]  # by title
        busy = strip_of(rows["Busy job"])
        assert len(busy) == 20 and all(cell["href"] for cell in busy)
        # The newest 20 (runs 3..22), oldest on the left.
        expected = [states[n % len(states)] if n < 20 else "succeeded" for n in range(3, 23)]
        assert [cell["data-state"] for cell in busy] == expected
        assert [cell["href"] for cell in busy][-1] == "/jobs/busy/runs/cron:busy:22"
        assert "s-running" in busy[expected.index("running")]["class"]
        first = busy[0]  # run 3: running, no duration yet
        assert first["title"].startswith("cron:busy:3\nrunning · " + at(3)), first
        failed = busy[expected.index("failed")]  # run 5
        assert failed["title"] == f"cron:busy:5\nfailed · {at(5)} · 2.5 s\nRuntimeError: <b>boom</b>"
        fresh = strip_of(rows["Fresh job"])
        assert [cell["data-state"] for cell in fresh] == [""] * 19 + ["queued"]
        assert "failed in a row" not in rows["Busy job"][7].text
        # The page is large for many jobs and refreshes itself: it is compressed.
        assert (await web.get("/", headers={"Accept-Encoding": "gzip"})).headers["Content-Encoding"] == "gzip"
        # The strip is only for the jobs shown.
        only_queued = (await page(web, "/?status=Queued")).rows("jobs")
        assert [row[0].text for row in only_queued] == ["Fresh job"]
    finally:
        await web.close()


async def test_recent_outcomes_reads_many_jobs_at_once(client: aioredis.Redis) -> None:
    store = JobStore(client)
    jobs = [f"j{job}" for job in range(250)]  # more than two batches of jobs per script call
    async with client.pipeline(transaction=False) as pipe:
        for job_number, item_id in enumerate(jobs):
            for number in range(job_number % 4):
                run_id = f"now:{item_id}:v{number}"
                pipe.hset(
                    keys.run(run_id), mapping={"state": "failed", "started": at(number), "error": "x" * 500}
                )
                pipe.lpush(keys.job_runs(item_id), run_id)
        await pipe.execute()
    await client.lpush(keys.job_runs("j3"), "now:j3:expired")  # its record is gone
    await client.config_resetstat()
    found = await store.recent_outcomes([*jobs, "unknown"], limit=2)
    calls = {name: stats["calls"] for name, stats in (await client.info("commandstats")).items()}
    # Three script calls for 251 jobs (Redis counts the scripts' own LRANGE and HMGET calls too,
    # one per job and per run, but they are not round trips).
    assert calls.get("cmdstat_evalsha", 0) + calls.get("cmdstat_eval", 0) == 3, calls
    assert calls["cmdstat_lrange"] == 251 and "cmdstat_hgetall" not in calls, calls
    assert list(found) == [*jobs, "unknown"]
    assert found["unknown"] == [] and found["j0"] == [] and len(found["j249"]) == 1
    # The newest two ids of j3 are the expired run's and v2's: the expired one is left out.
    assert [run.run_id for run in found["j3"]] == ["now:j3:v2"]
    assert [run.run_id for run in found["j2"]] == ["now:j2:v1", "now:j2:v0"]
    assert found["j2"][0] == RunOutcome("now:j2:v1", "failed", "", "", at(1), "", "x" * OUTCOME_ERROR_CHARS)


async def test_job_page_draws_a_duration_chart_and_links_each_run(client: aioredis.Redis) -> None:
    await add_job(client, ITEM, title="Charted", view_status="Failed")
    await add_run(client, ITEM, "cron:a", "succeeded", start=0, seconds=1.0)
    await add_run(client, ITEM, "cron:b", "failed", start=1, seconds=2.0, error="RuntimeError: boom")
    await add_run(client, ITEM, "cron:c", "succeeded", start=2, seconds=4.0)
    await add_run(client, ITEM, "cron:d", "skipped")
    web = await http(client)
    try:
        detail = await page(web, f"/jobs/{ITEM}")
        bars = detail.find("rect", "bar")
        assert [bar["data-state"] for bar in bars] == ["succeeded", "failed", "succeeded", "skipped"]
        heights = [float(bar["height"]) for bar in bars]
        # The axis tops at 5 s: 4 s is twice 2 s and four times 1 s; a skipped run is a stub.
        assert heights[2] == pytest.approx(2 * heights[1]) == pytest.approx(4 * heights[0])
        assert heights[3] == pages.STUB_HEIGHT
        assert [float(bar["x"]) for bar in bars] == sorted(float(bar["x"]) for bar in bars)
        baseline = {round(float(bar["y"]) + float(bar["height"]), 2) for bar in bars}
        assert len(baseline) == 1, baseline
        assert len(detail.find("g", "mark")) == 1  # the failed run is marked
        svg = detail.html[detail.html.index("<svg") : detail.html.index("</svg>")]
        for label in (">0 s<", ">2.5 s<", ">5 s<", "duration"):
            assert label in svg, label
        assert "<title>cron:b\nfailed · " + at(1) + " · 2.0 s\nRuntimeError: boom</title>" in svg
        links = [attrs["href"] for attrs in detail.find("a") if "/runs/" in attrs.get("href", "")]
        assert "/jobs/" + ITEM + "/runs/cron:b" in links
        runs = detail.rows("runs")
        assert [run[0].text for run in runs] == ["cron:d", "cron:c", "cron:b", "cron:a"]
        assert runs[2][0].find("a") == [{"href": f"/jobs/{ITEM}/runs/cron:b"}]
        assert (
            runs[2][1].text == "failed"
            and runs[2][5].text == "2.0 s"
            and runs[2][7].text == "RuntimeError: boom"
        )
        started = runs[2][3].find("time")
        assert started == [{"datetime": at(1), "title": at(1), "data-at": at(1), "data-show": "recent"}]
        assert runs[2][3].text == f"{(NOW + timedelta(minutes=1)):%Y-%m-%d %H:%M:%S} UTC"  # before the script
        # No runs: no chart.
        await add_job(client, "idle", title="Idle")
        idle = await page(web, "/jobs/idle")
        assert not idle.find("svg") and "No runs yet." in idle.html
    finally:
        await web.close()


async def test_run_page_and_api(client: aioredis.Redis) -> None:
    await add_job(client, ITEM, title="Pipeline <i>job</i>")
    await add_run(
        client, ITEM, "cron:" + ITEM + ":2026-11-21T12:00:00.000Z", "failed", start=0, seconds=90,
        steps=json.dumps(["tests.record", "tests.echo"]), step="1", attempts="3", worker="host:42",
        scheduled_at=at(0), created=at(-0.1), error="RuntimeError: <script>alert(1)</script>",
        **{"result:0": json.dumps({"summary": "step one", "blob": "x" * 10_000})},
    )  # fmt: skip
    await add_job(client, "other")
    await add_run(client, "other", "now:other:v1", "succeeded", start=0, seconds=1)
    run_id = "cron:" + ITEM + ":2026-11-21T12:00:00.000Z"
    web = await http(client)
    try:
        for path in (f"/jobs/{ITEM}/runs/{run_id}", f"/jobs/{ITEM}/runs/{run_id.replace(':', '%3A')}"):
            shown = await page(web, path)
            facts = {row[0].text: row[1] for row in shown.rows("run")}
            assert facts["State"].text == "failed" and facts["Kind"].text == "cron"
            assert facts["Steps"].text == "tests.record → tests.echo (failed at step 2)"
            assert facts["Attempts"].text == "3" and facts["Worker"].text == "host:42"
            assert facts["Duration"].text == "90.0 s"
            assert facts["Started"].find("time")[0]["datetime"] == at(0)
            assert facts["Finished"].find("time")[0]["title"] == at(1.5)
            assert facts["Error"].text == "RuntimeError: <script>alert(1)</script>"
            assert "<script>alert" not in shown.html and "&lt;script&gt;alert(1)" in shown.html
            assert "Pipeline &lt;i&gt;job&lt;/i&gt;" in shown.html
            results = shown.rows("steps")
            assert [row[1].text for row in results] == ["tests.record"]
            assert '"summary": "step one"' in results[0][2].text and "more characters)" in results[0][2].text
            assert len(results[0][2].text) < pages.RESULT_CHARS_SHOWN + 100
            assert "No log lines kept for this run." in shown.html
            assert not shown.meta or all(meta.get("http-equiv") != "refresh" for meta in shown.meta)  # ended
        api = await (await web.get(f"/api/jobs/{ITEM}/runs/{run_id}")).json()
        assert api["run_id"] == run_id and api["item_id"] == ITEM and api["state"] == "failed"
        assert (
            api["steps"] == ["tests.record", "tests.echo"] and api["step"] == 1 and api["worker"] == "host:42"
        )
        assert api["duration"] == 90 and api["attempts"] == 3 and api["log"] == []
        assert api["step_results"][0]["step"] == 0 and api["step_results"][0]["task"] == "tests.record"
        assert api["step_results"][0]["result"]["summary"] == "step one"
        # A run of another job, an unknown run, an unknown job: 404, as a page and in the API.
        for path in (
            f"/jobs/{ITEM}/runs/now:other:v1",
            f"/jobs/{ITEM}/runs/nope",
            f"/jobs/nope/runs/{run_id}",
        ):
            missing = await page(web, path, status=404)
            assert "No run " in missing.html and "← all jobs" in missing.html
            response = await web.get("/api" + path)
            assert response.status == 404 and "no run" in (await response.json())["error"]
        # A run in progress is watched: its page refreshes itself.
        await add_run(client, "other", "now:other:v2", "running", start=1)
        running = await page(web, "/jobs/other/runs/now:other:v2")
        assert {"http-equiv": "refresh", "content": str(pages.REFRESH_SECONDS)} in running.meta
    finally:
        await web.close()


def test_run_log_is_rendered_as_text_and_bounded() -> None:
    lines = [
        {"at": at(n / 60), "level": "info", "text": f"line {n}"} for n in range(pages.LOG_LINES_SHOWN + 3)
    ]
    lines[-1] = {"at": at(9), "level": "error", "text": "<script>alert(1)</script> went wrong"}
    run = {"run_id": "now:x:v1", "kind": "now", "task": "tests.record", "steps": ["tests.record"], "step": 0,
           "state": "failed", "scheduled_at": "", "created": "", "started": at(0), "finished": at(9),
           "duration": 540.0, "attempts": 1, "error": "boom", "worker": "", "log": lines,
           "step_results": []}  # fmt: skip
    log, hidden = pages.log_lines(run)
    html = pages.environment().get_template("run.html").render(
        refresh=None, job={"title": "x", "item_id": "x"}, job_href="/jobs/x", run=run,
        ended_states=pages.ENDED_STATES, results=[], log=log, log_hidden=hidden,
    )  # fmt: skip
    shown = Page.parse(html)
    rows = shown.rows("log")
    assert hidden == 3 and len(rows) == pages.LOG_LINES_SHOWN and "3 older lines not shown." in html
    assert rows[0][2].text == "line 3"  # the newest lines are kept
    assert rows[-1][1].text == "error" and "level-error" in rows[-1][1].attrs["class"]
    assert rows[-1][2].text == "<script>alert(1)</script> went wrong" and "<script>alert" not in html
    assert rows[-1][0].find("time")[0]["datetime"] == at(9)
    assert "No log lines kept" not in html


async def test_job_fields_are_shown_when_present(client: aioredis.Redis) -> None:
    await add_job(
        client, ITEM, title="Watched", view_status="Failed", overlap="queue-one", concurrency_key="<nightly>",
        consecutive_failures="3", last_succeeded=at(-60), max_age="93600", overdue="1",
    )  # fmt: skip
    await add_job(client, "plain", title="Plain", view_status="Succeeded")
    web = await http(client)
    try:
        facts = {row[0].text: row[1] for row in (await page(web, f"/jobs/{ITEM}")).rows("job")}
        assert facts["Status"].text == "Failed Overdue"
        assert facts["Overlap"].text == "queue-one" and facts["Concurrency key"].text == "<nightly>"
        assert facts["Failures in a row"].text == "3" and facts["Max age"].text == "26h Overdue"
        assert facts["Last succeeded"].find("time")[0]["datetime"] == at(-60)
        plain = {row[0].text for row in (await page(web, "/jobs/plain")).rows("job")}
        assert plain == {
            "Status",
            "Task",
            "Schedule",
            "Next run",
            "Last run",
            "Runs",
            "Message",
            "Alloy item",
        }
        rows = {row[0].text: row for row in (await page(web, "/")).rows("jobs")}
        assert (
            rows["Watched"][2].text == "Failed Overdue"
            and rows["Watched"][2].attrs["data-status"] == "Failed"
        )
        assert rows["Watched"][7].text == "3 failed in a row" and rows["Plain"][7].text == ""
        api = await (await web.get(f"/api/jobs/{ITEM}")).json()
        expected = {"overlap": "queue-one", "concurrency_key": "<nightly>", "consecutive_failures": 3,
                    "max_age": "26h", "overdue": True, "last_succeeded": at(-60)}  # fmt: skip
        assert {name: api[name] for name in expected} == expected
        assert (await (await web.get("/api/jobs/plain")).json())["overdue"] is False
    finally:
        await web.close()


def test_strip_and_chart_know_every_run_state() -> None:
    states = ["succeeded", "failed", "skipped", "cancelled", "running", "queued", "waiting"]
    runs = [{"run_id": f"r{n}", "state": state, "duration": None} for n, state in enumerate(states)]
    cells = pages.outcome_strip("j", list(reversed(runs)))
    assert [cell.state for cell in cells][-len(states) :] == states
    chart = pages.duration_chart("j", list(reversed(runs)), now=NOW)
    assert chart is not None and [bar.state for bar in chart.bars] == states
    css = (Path(pages.__file__).parent / "templates" / "style.css").read_text()
    for state in [*states, "empty", "unknown"]:
        assert f".s-{state} {{ --state: var(--{state}); }}" in css, state


@pytest.mark.parametrize(
    ("value", "ceiling"),
    [(1.0, 1.0), (1.2, 2.0), (2.2, 2.5), (4.0, 5.0), (7.0, 10.0), (0.031, 0.05), (130, 200)],
)
def test_the_chart_axis_tops_at_a_round_number(value: float, ceiling: float) -> None:
    assert pages.nice_ceiling(value) == ceiling


def test_durations_and_max_ages_read_as_people_write_them() -> None:
    assert [pages.duration_text(s) for s in (None, 2.54, 119.9, 150, 7300)] == [
        "",
        "2.5 s",
        "119.9 s",
        "2.5 min",
        "2.0 h",
    ]
    assert [max_age_text(s) for s in (None, 93_600, 5_400, 172_800, 45)] == [
        "",
        "26h",
        "90m",
        "2d",
        "45s",
    ]
    assert [pages.axis_label(v, top) for v, top in ((0, 5), (2.5, 5), (300, 600), (5400, 7200))] == [
        "0 s", "2.5 s", "5 min", "1.5 h",
    ]  # fmt: skip
    assert pages.moment("2026-11-21T10:00:00Z") == pages.Moment(
        "2026-11-21T10:00:00.000Z", "2026-11-21 10:00:00 UTC"
    )
    assert pages.moment("") is None and pages.moment("not a time") is None

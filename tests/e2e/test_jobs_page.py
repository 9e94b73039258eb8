"""The jobs page, the job detail page and the JSON API, seen through a real headless Chromium.

serve and a worker run against the emulator holding demo-like jobs in every state (succeeded, failed
twice with an error, invalid, scheduled, paused, a title with markup in it). Chromium loads `/`, a
status filter and a job's detail page and shows what a person would see; a screenshot is taken; a
live browser left on `/` shows a job's new status without anyone reloading it.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.support.browser import Browser, Cell, DevToolsError, LivePage, Page, png_size
from tests.support.system import System

FAILED_ERROR = "RuntimeError: boom failed on purpose"
MARKUP_TITLE = "<b>Tom & Jerry</b> <script>alert(1)</script>"
JOB_KEYS = {
    "item_id",
    "title",
    "task",
    "schedule",
    "timezone",
    "status",
    "message",
    "last_run_started",
    "last_run_finished",
    "last_run_duration",
    "next_run",
    "run_count",
    "version",
}
RUN_KEYS = {
    "run_id",
    "kind",
    "task",
    "state",
    "scheduled_at",
    "created",
    "started",
    "finished",
    "duration",
    "attempts",
    "error",
}


@pytest.fixture
def browser(tmp_path: Path) -> Browser:
    return Browser(tmp_path / "chromium")


def demo_jobs(system: System) -> dict[str, str]:
    """Title → item id of jobs in every state, once they have reached it."""
    items = {
        "Nightly report": system.create_job("Nightly report", "tests.record", params={"label": "nightly"}),
        "Broken import": system.create_job("Broken import", "tests.fail", params={"label": "boom"}),
        "Typo task": system.create_job("Typo task", "nope.missing", params={}),
        "Morning digest": system.create_job(
            "Morning digest", "tests.record", params={"label": "digest"}, schedule="0 9 * * *"
        ),
        "Paused thing": system.create_job(
            "Paused thing", "tests.record", params={"label": "paused"}, enabled=False
        ),
        MARKUP_TITLE: system.create_job(MARKUP_TITLE, "tests.record", params={"label": "markup"}),
    }
    system.wait_for_status(items["Nightly report"], "Succeeded")
    system.wait_for_status(items[MARKUP_TITLE], "Succeeded")
    system.wait_for_status(items["Broken import"], "Failed")
    system.wait_for_status(items["Typo task"], "Invalid")
    system.wait_for_status(items["Morning digest"], "Scheduled")
    # Run the failed job once more on request, so that its history holds two failed runs.
    system.edit_job(items["Broken import"], run_requested=True)
    system.wait_until(
        lambda: (job := system.job(items["Broken import"]))["run_count"] == 2 and job["status"] == "Failed",
        30,
        "the requested second run to fail",
    )
    return items


def by_title(rows: list[list[Cell]]) -> dict[str, list[Cell]]:
    return {row[0].text: row for row in rows}


def get_status(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - loopback test URL
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_jobs_page_lists_filters_and_details_in_a_real_browser(
    system: System, browser: Browser, tmp_path: Path
) -> None:
    system.start_serve()
    system.start_worker()
    items = demo_jobs(system)
    system.wait_until(
        lambda: system.api("/api/jobs/" + items["Paused thing"])["status"] == "Paused", 10, "Paused to show"
    )
    base = system.url()

    # `/`: every job by title with its status; messages tell what happened.
    page = Page.parse(browser.dump_dom(base + "/"))
    rows = by_title(page.rows("jobs"))
    statuses = {title: row[2].attrs.get("data-status") for title, row in rows.items()}
    assert statuses == {
        "Nightly report": "Succeeded",
        "Broken import": "Failed",
        "Typo task": "Invalid",
        "Morning digest": "Scheduled",
        "Paused thing": "Paused",
        MARKUP_TITLE: "Succeeded",
    }, statuses
    for title, row in rows.items():
        assert row[2].text == statuses[title], (title, row[2].text)  # the badge shows the status
        assert f'href="/jobs/{items[title]}"' in page.html, title
    assert FAILED_ERROR in rows["Broken import"][6].text
    assert rows["Broken import"][6].text.startswith("Failed after 2 attempts")
    assert "unknown task 'nope.missing'" in rows["Typo task"][6].text
    assert rows["Morning digest"][5].text.endswith("T09:00:00.000Z")  # next run
    assert rows["Paused thing"][6].text.startswith("Paused: Enabled is false")
    assert rows["Nightly report"][1].text == "tests.record" and rows["Nightly report"][3].text  # started
    # A title is text, never markup: the browser made no <b> or <script> element of it.
    assert rows[MARKUP_TITLE][0].html_tags == ["a"], rows[MARKUP_TITLE][0]
    # The page refreshes itself.
    assert {"http-equiv": "refresh", "content": "5"} in page.meta, page.meta

    # Status filter: only the failed job, and the filter link says how many.
    failed_page = Page.parse(browser.dump_dom(base + "/?status=Failed"))
    assert list(by_title(failed_page.rows("jobs"))) == ["Broken import"]
    assert '<a href="/?status=Failed" class="on">Failed (1)</a>' in failed_page.html
    paused_page = Page.parse(browser.dump_dom(base + "/?status=Paused"))
    assert list(by_title(paused_page.rows("jobs"))) == ["Paused thing"]

    # Detail page of the failed job: facts and the run history, newest first, with the error.
    detail = Page.parse(browser.dump_dom(f"{base}/jobs/{items['Broken import']}"))
    facts = {row[0].text: row[1].text for row in detail.rows("job")}
    assert facts["Status"] == "Failed" and facts["Task"] == "tests.fail" and facts["Runs"] == "2", facts
    assert FAILED_ERROR in facts["Message"]
    runs = detail.rows("runs")
    assert [run[0].text.split(":")[0] for run in runs] == ["req", "now"], [run[0].text for run in runs]
    for run in runs:
        run_id, outcome, _scheduled, started, finished, duration, attempts, error = (
            cell.text for cell in run
        )
        assert outcome == "failed" and error == FAILED_ERROR, run_id
        assert started and finished and duration.endswith(" s") and attempts == "2", run_id
    missing = Page.parse(browser.dump_dom(f"{base}/jobs/no-such-job"))
    assert "No job with item id no-such-job" in missing.html

    # A screenshot of the jobs page, as a person would see it.
    shot = browser.screenshot(base + "/", tmp_path / "jobs-page.png")
    assert png_size(shot) == (1280, 900)
    assert shot.stat().st_size > 20_000, shot.stat().st_size

    # The JSON API: the same jobs, and one job with its run history.
    jobs = system.api("/api/jobs")["jobs"]
    assert all(set(job) == JOB_KEYS for job in jobs), jobs
    assert {job["title"]: job["status"] for job in jobs} == statuses
    assert [job["title"] for job in system.api("/api/jobs?status=Failed")["jobs"]] == ["Broken import"]
    assert [job["title"] for job in system.api("/api/jobs?status=invalid")["jobs"]] == ["Typo task"]
    failed = system.api(f"/api/jobs/{items['Broken import']}")
    assert set(failed) == JOB_KEYS | {"runs"}
    assert failed["status"] == "Failed" and failed["run_count"] == 2 and FAILED_ERROR in failed["message"]
    assert isinstance(failed["last_run_duration"], float)
    assert [run["kind"] for run in failed["runs"]] == ["req", "now"]
    for run in failed["runs"]:
        assert set(run) == RUN_KEYS, run
        assert run["state"] == "failed" and run["error"] == FAILED_ERROR and run["task"] == "tests.fail"
        assert run["started"] and run["finished"] and run["started"] <= run["finished"], run
        assert isinstance(run["duration"], float) and run["duration"] >= 0 and run["attempts"] == 2, run
    succeeded = system.api(f"/api/jobs/{items['Nightly report']}")
    assert [(run["state"], run["error"]) for run in succeeded["runs"]] == [("succeeded", "")]
    assert system.api(f"/api/jobs/{items['Paused thing']}")["runs"] == []
    status, body = get_status(f"{base}/api/jobs/no-such-job")
    assert status == 404 and "no-such-job" in json.loads(body)["error"]


def live_statuses(page: LivePage) -> dict[str, Any] | None:
    """Title → status as the open page shows it now, plus the page's identity; None while reloading."""
    try:
        value: dict[str, Any] | None = page.evaluate(
            """(() => {
                if (document.readyState !== "complete" || !document.querySelector("#jobs")) return null;
                const rows = Array.from(document.querySelectorAll("#jobs tbody tr"));
                return {
                    statuses: Object.fromEntries(
                        rows.map(tr => [tr.cells[0].innerText, tr.cells[2].dataset.status])
                    ),
                    marked: window.__testMarker === true,
                    origin: performance.timeOrigin,
                    url: location.href,
                };
            })()"""
        )
    except DevToolsError:
        return None
    return value


def test_jobs_page_refreshes_itself_in_an_open_browser(system: System, browser: Browser) -> None:
    system.start_serve()
    system.start_worker()
    waiting = system.create_job("Waiting job", "tests.record", params={"label": "waiting"}, enabled=False)
    done = system.create_job("Done job", "tests.record", params={"label": "done"})
    system.wait_for_status(done, "Succeeded")
    system.wait_until(lambda: system.api(f"/api/jobs/{waiting}")["status"] == "Paused", 10, "Paused to show")

    with browser.live(system.url() + "/") as page:
        first = system.wait_until(lambda: live_statuses(page), 30, "the page to load in Chromium")
        assert first["statuses"] == {"Waiting job": "Paused", "Done job": "Succeeded"}, first
        page.evaluate("window.__testMarker = true")  # gone once the page has reloaded itself
        marked = live_statuses(page)
        assert marked and marked["marked"], marked

        system.edit_job(waiting, enabled=True)  # now it runs once and succeeds
        system.wait_for_status(waiting, "Succeeded")
        started = time.monotonic()

        def refreshed() -> dict[str, Any] | None:
            now = live_statuses(page)
            return (
                now
                if now and not now["marked"] and now["statuses"].get("Waiting job") == "Succeeded"
                else None
            )

        later = system.wait_until(refreshed, 20, "the open page to show the new status by itself")
        assert later["url"] == first["url"] and later["origin"] > first["origin"], (first, later)
        assert later["statuses"] == {"Waiting job": "Succeeded", "Done job": "Succeeded"}, later
        assert time.monotonic() - started < 15  # within a few refresh periods (5 s)

"""The jobs page, the job detail page, the run page and the JSON API, seen through a real headless
Chromium.

serve and a worker run against the emulator holding demo-like jobs in every state (succeeded, failed
twice with an error, invalid, scheduled, paused, a title with markup in it). Chromium loads `/`, a
status filter and a job's detail page and shows what a person would see; a screenshot is taken; a
live browser left on `/` shows a job's new status without anyone reloading it. A job that failed,
succeeded twice and failed again is looked at in a browser in another time zone: its outcome strip
and its duration chart are checked pixel by pixel in screenshots, its times are in the viewer's
zone, and its runs' pages are one click away.
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from alloysync.model.times import parse_alloy_datetime
from tests.support.browser import Browser, Cell, DevToolsError, LivePage, Page, Picture, png_size, read_png
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
    "overlap",
    "concurrency_key",
    "waiting_runs",
    "backfill",
    "consecutive_failures",
    "last_succeeded",
    "overdue",
    "max_age",
    "notify",
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
    "log",  # each run's log lines (issue 11)
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
    # Next run: exact UTC in the time element (and on hover), relative text shown ("in 5 h").
    next_run = rows["Morning digest"][5].find("time")
    assert len(next_run) == 1 and next_run[0]["datetime"].endswith("T09:00:00.000Z"), next_run
    assert next_run[0]["title"] == next_run[0]["datetime"]
    assert rows["Morning digest"][5].text.startswith("in "), rows["Morning digest"][5].text
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


# --- the strip, the chart and the viewer's time zone, in pixels ------------------------------------------

VIEWER_ZONE = "Asia/Tokyo"
# The colours the style sheet gives each run state (templates/style.css).
COLOURS = {
    "succeeded": (0x2D, 0xA4, 0x4E),
    "failed": (0xCF, 0x22, 0x2E),
    "empty": (0xEA, 0xEE, 0xF2),
}
FLIP_FLOP = ["failed", "succeeded", "succeeded", "failed"]  # oldest first
RELATIVE_PAST = re.compile(r"\((just now|[0-9.]+ (s|min|h|d) ago)\)")


def close_to(colour: tuple[int, int, int], expected: tuple[int, int, int], slack: int = 6) -> bool:
    return all(abs(a - b) <= slack for a, b in zip(colour, expected, strict=True))


def colour_name(colour: tuple[int, int, int]) -> str:
    return next((name for name, rgb in COLOURS.items() if close_to(colour, rgb)), "other")


def runs_of_colours(line: list[tuple[int, int, int]], names: tuple[str, ...] = tuple(COLOURS)) -> list[str]:
    """The colours `names` along a line of pixels, each contiguous stretch once (others left out)."""
    stretches: list[str] = []
    for pixel in line:
        name = colour_name(pixel)
        if not stretches or stretches[-1] != name:
            stretches.append(name)
    return [name for name in stretches if name in names]


def drawn(page: LivePage, measure: str) -> tuple[Any, Picture]:
    """Where `measure` (a JS expression giving {clip, ...}) says things are, and a screenshot of its
    clip, taken without the page reloading itself in between."""
    for _attempt in range(10):
        before = page.evaluate(
            "(async () => { await document.fonts.ready;"
            " return document.readyState === 'complete' ? performance.timeOrigin : null; })()"
        )
        if before is None:
            time.sleep(0.2)
            continue
        layout = page.evaluate(measure)
        png = page.screenshot(clip=layout["clip"])
        if page.evaluate("performance.timeOrigin") == before:
            return layout, read_png(png)
    raise AssertionError("the page kept reloading while it was measured")


RECT = "r => ({x: r.left + window.scrollX, y: r.top + window.scrollY, width: r.width, height: r.height})"


def test_strip_and_chart_render_in_chromium_in_the_viewers_zone(system: System, tmp_path: Path) -> None:
    system.start_serve()
    system.start_worker()
    item = system.create_job("Flip-flop", "tests.fail", params={"label": "flip"})
    system.wait_for_status(item, "Failed")
    # Each edit is a new definition version, so the once-now job runs again.
    for task, params, outcome in (
        ("tests.record", {"label": "flip", "sleep": 0.4}, "Succeeded"),
        ("tests.record", {"label": "flip", "sleep": 1.6}, "Succeeded"),
        ("tests.fail", {"label": "flip"}, "Failed"),
    ):
        count = len(system.api(f"/api/jobs/{item}")["runs"])
        system.edit_job(item, task=task, params=params)

        def ended(count: int = count, outcome: str = outcome) -> bool:
            job = system.api(f"/api/jobs/{item}")
            runs = job["runs"]
            return len(runs) == count + 1 and runs[0]["state"] == outcome.lower() and job["status"] == outcome

        system.wait_until(ended, 30, f"run {count + 1} to end {outcome}")
    runs = system.api(f"/api/jobs/{item}")["runs"]
    assert [run["state"] for run in reversed(runs)] == FLIP_FLOP, runs
    base = system.url()
    browser = Browser(tmp_path / "chromium-tokyo", timezone=VIEWER_ZONE)

    # The jobs page: the strip, as drawn.
    with browser.live(base + "/") as page:
        system.wait_until(lambda: page.evaluate("!!document.querySelector('#jobs .strip')"), 30, "the strip")
        layout, picture = drawn(
            page,
            f"""(() => {{
                const rect = {RECT};
                const strip = document.querySelector("#jobs tbody tr .strip");
                const cells = Array.from(strip.querySelectorAll(".cell"));
                return {{clip: rect(strip.getBoundingClientRect()),
                         cells: cells.map(cell => rect(cell.getBoundingClientRect())),
                         zone: document.getElementById("zone").textContent}};
            }})()""",
        )
        (tmp_path / "strip.png").write_bytes(page.screenshot(clip=layout["clip"]))
        (tmp_path / "jobs-page-tokyo.png").write_bytes(page.screenshot())
    clip = layout["clip"]
    assert layout["zone"].startswith(f"times in {VIEWER_ZONE}"), layout["zone"]
    assert len(layout["cells"]) == 20
    seen = [
        colour_name(
            picture.pixel(
                cell["x"] - clip["x"] + cell["width"] / 2, cell["y"] - clip["y"] + cell["height"] / 2
            )
        )
        for cell in layout["cells"]
    ]
    assert seen == ["empty"] * 16 + FLIP_FLOP, seen
    middle = picture.rows[int(picture.height / 2)]
    assert runs_of_colours(middle) == ["empty"] * 16 + FLIP_FLOP  # 20 separate cells, gaps between them

    # The job page: the duration chart, as drawn.
    with browser.live(f"{base}/jobs/{item}") as page:
        system.wait_until(lambda: page.evaluate("!!document.querySelector('#durations')"), 30, "the chart")
        layout, picture = drawn(
            page,
            f"""(() => {{
                const rect = {RECT};
                const svg = document.querySelector("#durations");
                const boxes = selector => Array.from(svg.querySelectorAll(selector))
                    .map(element => rect(element.getBoundingClientRect()));
                const lastRun = Array.from(document.querySelectorAll("#job tr"))
                    .find(tr => tr.cells[0].textContent === "Last run").cells[1];
                return {{clip: rect(svg.getBoundingClientRect()),
                         bars: boxes("rect.bar"), marks: boxes("g.mark"),
                         labels: Array.from(svg.querySelectorAll("text")).map(text => text.textContent),
                         lastRun: lastRun.textContent,
                         lastRunAt: lastRun.querySelector("time").getAttribute("datetime")}};
            }})()""",
        )
        (tmp_path / "chart.png").write_bytes(page.screenshot(clip=layout["clip"]))
        (tmp_path / "job-page-tokyo.png").write_bytes(page.screenshot())
    clip = layout["clip"]
    bars = layout["bars"]
    assert len(bars) == 4 and len(layout["marks"]) == 2, layout
    colours = [
        colour_name(
            picture.pixel(bar["x"] - clip["x"] + bar["width"] / 2, bar["y"] - clip["y"] + bar["height"] - 2)
        )
        for bar in bars
    ]
    assert colours == FLIP_FLOP, colours
    baseline_row = picture.rows[int(bars[0]["y"] - clip["y"] + bars[0]["height"] - 1)]
    assert runs_of_colours(baseline_row, ("failed", "succeeded")) == FLIP_FLOP  # 4 separate bars
    # The 1.6 s run's bar is the tallest, taller than the 0.4 s run's.
    heights = [bar["height"] for bar in bars]
    assert heights[2] == max(heights) and heights[2] > 2 * heights[1], heights
    for mark, bar in zip(layout["marks"], (bars[0], bars[3]), strict=True):  # a red cross over each failure
        centre = (mark["x"] - clip["x"] + mark["width"] / 2, mark["y"] - clip["y"] + mark["height"] / 2)
        assert colour_name(picture.pixel(*centre)) == "failed", mark
        assert mark["y"] + mark["height"] <= bar["y"], (mark, bar)
    assert {"0 s", "duration"} <= set(layout["labels"]), layout["labels"]
    # Times in the viewer's zone: the last run's local time in Tokyo, and how long ago.
    tokyo = parse_alloy_datetime(layout["lastRunAt"]).astimezone(ZoneInfo(VIEWER_ZONE))
    assert f"{tokyo:%H:%M:%S} GMT+9 (" in layout["lastRun"], layout["lastRun"]
    assert RELATIVE_PAST.search(layout["lastRun"]), layout["lastRun"]

    # Each run of the job page links to its run page, which shows the run and its log section.
    detail = Page.parse(browser.dump_dom(f"{base}/jobs/{item}"))
    newest = detail.rows("runs")[0]
    href = newest[0].find("a")[0]["href"]
    assert href == f"/jobs/{item}/runs/{runs[0]['run_id']}", href
    run_page = Page.parse(browser.dump_dom(base + href))
    browser.screenshot(base + href, tmp_path / "run-page-tokyo.png")
    facts = {row[0].text: row[1].text for row in run_page.rows("run")}
    assert facts["State"] == "failed" and facts["Task"] == "tests.fail" and facts["Attempts"] == "2", facts
    assert FAILED_ERROR.replace("boom", "flip") in facts["Error"], facts
    assert "GMT+9 (" in facts["Started"] and RELATIVE_PAST.search(facts["Started"]), facts
    assert "<h2>Log</h2>" in run_page.html
    assert "log" in run_page.tables or "No log lines kept for this run." in run_page.html
    api = system.api(f"/api/jobs/{item}/runs/{runs[0]['run_id']}")
    assert api["state"] == "failed" and api["item_id"] == item and api["steps"] == ["tests.fail"]
    assert isinstance(api["log"], list)
    assert get_status(f"{base}/jobs/{item}/runs/no-such-run")[0] == 404

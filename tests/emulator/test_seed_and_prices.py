"""The seeds (the jobs design of `none` and `demo`, the demo's job records, the new tenant of `empty`),
and the CoinDesk-shaped price feed."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from alloysync.model.design import JOB_ATTRIBUTES, AttributeType
from alloysync.settings import Settings
from tests.emulator.aqs_nodes import JOBS, attribute_values, query
from tests.support.emulator import EmulatorProcess

PIPELINE = "coinrequest.get_btc_prices | coinrequest.process_prices | coinrequest.compose_price_email"
OWNED_BY_ALLOYSYNC = {
    "attributes_alloysyncJobsStatus",
    "attributes_alloysyncJobsMessage",
    "attributes_alloysyncJobsResult",
    "attributes_alloysyncJobsLastRunStarted",
    "attributes_alloysyncJobsLastRunFinished",
    "attributes_alloysyncJobsNextRun",
    "attributes_alloysyncJobsRunCount",
}


def _demo_jobs(emu: EmulatorProcess) -> dict[str, dict[str, object]]:
    status, body = emu.query(query(JOBS, sort={"itemPropertyName": "createdDate", "sortOrder": "Ascending"}))
    assert status == 200
    jobs = [attribute_values(item) for item in body["results"]]
    return {str(job["attributes_itemsTitle"]): job for job in jobs}


def test_demo_seed_has_the_five_jobs(emu: EmulatorProcess) -> None:
    seeded_at = datetime.now(UTC)
    emu.reset("demo")
    jobs = _demo_jobs(emu)
    assert list(jobs) == [
        "BTC price e-mail (one-off)",
        "BTC prices every minute",
        "BTC price e-mail at a set time",
        "Weekly price report (paused)",
        "Broken job: unknown task",
        "Close jobs whose work orders are completed (recipe)",  # built-in tasks only (docs/recipes.md)
    ]
    one_off = jobs["BTC price e-mail (one-off)"]
    assert one_off == {
        "attributes_itemsTitle": "BTC price e-mail (one-off)",
        "attributes_alloysyncJobsEnabled": True,
        "attributes_alloysyncJobsTask": PIPELINE,
        "attributes_alloysyncJobsParams": {"currencies": ["USD", "GBP", "EUR"]},
        "attributes_alloysyncJobsSchedule": "",
        "attributes_alloysyncJobsTimezone": "",
    }
    every_minute = jobs["BTC prices every minute"]
    assert (
        every_minute["attributes_alloysyncJobsTask"]
        == "coinrequest.get_btc_prices | coinrequest.process_prices"
    )
    assert every_minute["attributes_alloysyncJobsParams"] == {"currencies": ["USD", "EUR"]}
    assert every_minute["attributes_alloysyncJobsSchedule"] == "* * * * *"
    assert every_minute["attributes_alloysyncJobsTimezone"] == "Europe/London"

    run_at = jobs["BTC price e-mail at a set time"]
    schedule = str(run_at["attributes_alloysyncJobsSchedule"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", schedule)
    offset = datetime.fromisoformat(schedule) - seeded_at
    assert timedelta(seconds=43) <= offset <= timedelta(seconds=47)
    assert run_at["attributes_alloysyncJobsTask"] == PIPELINE
    assert run_at["attributes_alloysyncJobsParams"] == {}

    paused = jobs["Weekly price report (paused)"]
    assert paused["attributes_alloysyncJobsEnabled"] is False
    assert paused["attributes_alloysyncJobsSchedule"] == "0 8 * * mon"
    assert paused["attributes_alloysyncJobsTimezone"] == "Europe/London"

    broken = jobs["Broken job: unknown task"]
    assert broken["attributes_alloysyncJobsTask"] == "coinrequest.fetch_everything"
    assert broken["attributes_alloysyncJobsEnabled"] is True
    assert broken["attributes_alloysyncJobsSchedule"] == ""

    for job in jobs.values():
        assert not OWNED_BY_ALLOYSYNC & set(job)


def test_reset_drops_items_and_counters(emu: EmulatorProcess) -> None:
    emu.reset("demo")
    emu.query(query(JOBS))
    emu.reset("none")
    assert emu.stats()["query"] == {}
    assert emu.query(query(JOBS))[1]["results"] == []
    status, _ = emu.request("POST", "/_emulator/reset", {"seed": "everything"})
    assert status == 400


def test_the_jobs_design_has_every_job_attribute_under_the_default_codes(emu: EmulatorProcess) -> None:
    design = emu.get_design(JOBS)
    assert (design["code"], design["name"]) == (JOBS, "alloysync jobs")
    by_code = {attribute["code"]: attribute for attribute in design["attributes"]}
    codes = Settings().attributes
    for job_attribute in JOB_ATTRIBUTES:
        code = getattr(codes, job_attribute.field)
        attribute = by_code[code]
        assert attribute["type"] == str(job_attribute.type), code
        if code == "attributes_itemsTitle":
            assert (attribute["parent"], attribute["context"]) == ("designInterfaces_items", "Core")
            continue
        assert attribute["name"] == job_attribute.name
        assert (attribute["parent"], attribute["context"]) == (JOBS, "Customer")
        if job_attribute.type is AttributeType.STRING:
            assert attribute["options"]["max"] == job_attribute.max_length, code
    assert len(by_code) == len(JOB_ATTRIBUTES) + 2  # and the interface's Subtitle and Geometry
    assert design["dodiTitle"]["value"] == "{{attributes_itemsTitle}}"
    assert design["dodiSubtitle"]["value"] == "{{attributes_alloysyncJobsStatus}}"


def test_the_jobs_design_follows_the_code_settings(tmp_path: Path) -> None:
    process = EmulatorProcess(
        tmp_path,
        seed="demo",
        extra_env={
            "ALLOYSYNC_JOBS_DESIGN": "designs_myJobs_0123456789abcdef01234567",
            "ALLOYSYNC_ATTRIBUTES__STATUS": "attributes_myJobsStatus",
            "ALLOYSYNC_ATTRIBUTES__TITLE": "attributes_myJobsTitle",
        },
    )
    process.start()
    try:
        design = process.get_design("designs_myJobs_0123456789abcdef01234567")
        codes = {attribute["code"] for attribute in design["attributes"]}
        assert {"attributes_myJobsStatus", "attributes_myJobsTitle", "attributes_alloysyncJobsTask"} <= codes
        assert "attributes_alloysyncJobsStatus" not in codes
        status, body = process.query(query("designs_myJobs_0123456789abcdef01234567"))
        assert status == 200
        titles = sorted(item["title"] for item in body["results"])
        assert len(titles) == 6 and "BTC prices every minute" in titles
        assert process.request("GET", f"/api/design/{JOBS}")[0] == 404
    finally:
        process.stop()


def _assert_no_jobs_design(emu: EmulatorProcess) -> None:
    status, body = emu.request("GET", f"/api/design/{JOBS}")
    assert (status, body["category"]) == (404, "DesignNotFound")
    status, body = emu.query(query(JOBS))
    assert (status, body["category"]) == (400, "DodiNotFound")
    status, body = emu.request("POST", "/api/item", {"designCode": JOBS, "attributes": []})
    assert (status, body["category"]) == (400, "DesignNotFound")
    assert JOBS in body["message"]


def test_reset_to_empty_drops_the_jobs_design(emu: EmulatorProcess) -> None:
    emu.reset("empty")
    _assert_no_jobs_design(emu)
    assert emu.admin("GET", "designs") == {"designs": []}
    emu.reset("none")
    assert emu.get_design(JOBS)["code"] == JOBS


def test_seed_empty_is_a_new_tenant_where_designs_are_made_through_the_api(tmp_path: Path) -> None:
    process = EmulatorProcess(tmp_path, seed="empty")
    process.start()
    try:
        _assert_no_jobs_design(process)
        design = process.create_design("alloysync jobs", title="{{attributes_itemsTitle}}")
        code = design["code"]
        assert re.fullmatch(r"designs_alloysyncJobs_[0-9a-f]{24}", code)
        status_code = process.add_attribute(
            code, "Status", {"max": 20, "discriminator": "DodiAttributeOptionsStringWebModel"}
        )
        assert re.fullmatch(r"attributes_alloysyncJobsStatus_[0-9a-f]{24}", status_code)
        item = process.create_item(code, {"attributes_itemsTitle": "first", status_code: "Queued"})
        assert item["title"] == "first"
        status, body = process.query(query(code))
        assert status == 200
        assert [attribute_values(found) for found in body["results"]] == [
            {"attributes_itemsTitle": "first", status_code: "Queued"}
        ]
    finally:
        process.stop()


def test_price_feed_shape(emu: EmulatorProcess) -> None:
    status, feed = emu.request("GET", "/v1/bpi/currentprice.json", auth=False)
    assert status == 200
    assert set(feed) == {"time", "disclaimer", "chartName", "bpi"}
    assert feed["chartName"] == "Bitcoin"
    assert set(feed["time"]) == {"updated", "updatedISO", "updateduk"}
    assert datetime.fromisoformat(feed["time"]["updatedISO"]).tzinfo is not None
    assert set(feed["bpi"]) == {"USD", "GBP", "EUR"}
    for code, entry in feed["bpi"].items():
        assert set(entry) == {"code", "symbol", "rate", "description", "rate_float"}
        assert entry["code"] == code
        assert re.fullmatch(r"\d{1,3}(,\d{3})*\.\d{4}", entry["rate"])
        assert float(entry["rate"].replace(",", "")) == entry["rate_float"]
        assert 10_000 < entry["rate_float"] < 300_000
    usd, gbp = feed["bpi"]["USD"]["rate_float"], feed["bpi"]["GBP"]["rate_float"]
    assert gbp < usd


def test_prices_move_on_every_call(emu: EmulatorProcess) -> None:
    rates = [
        emu.request("GET", "/v1/bpi/currentprice.json", auth=False)[1]["bpi"]["USD"]["rate_float"]
        for _ in range(5)
    ]
    assert len(set(rates)) == 5
    assert max(rates) / min(rates) < 1.05  # small steps

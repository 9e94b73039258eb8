"""The demo seed's job records, and the CoinDesk-shaped price feed."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

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

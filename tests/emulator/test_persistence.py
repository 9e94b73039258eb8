"""`--state FILE`: designs and items survive a restart (clean stop or kill), and many creates stay fast."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import aiohttp

from tests.emulator.aqs_nodes import JOBS, attribute_values, query
from tests.emulator.designs import OTHER, define_other
from tests.support.emulator import EmulatorProcess


def test_items_survive_a_clean_restart(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    process = EmulatorProcess(tmp_path, state_file=state, item_dates=True)
    process.start()
    try:
        define_other(process)
        item = process.create_item(
            JOBS, {"attributes_itemsTitle": "kept", "attributes_alloysyncJobsParams": {"a": [1]}}
        )
        edited = process.edit_item(item["itemId"], {"attributes_alloysyncJobsStatus": "Queued"})
        gone = process.create_item(OTHER, {})
        assert process.request("DELETE", f"/api/item/{gone['itemId']}")[0] == 200
    finally:
        process.stop()  # SIGTERM: flushes the state file
    assert json.loads(state.read_text())["items"][0]["itemId"] == item["itemId"]

    process.start()
    try:
        assert process.get_item(item["itemId"]) == edited  # same signature, dates and values
        status, body = process.query(query(OTHER))
        assert (status, body["results"]) == (200, [])
        again = process.edit_item(item["itemId"], {"attributes_alloysyncJobsStatus": "Running"})
        assert again["lastEditDate"] > edited["lastEditDate"]
    finally:
        process.stop()


def test_the_state_is_saved_shortly_after_a_change_even_without_a_clean_stop(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    process = EmulatorProcess(tmp_path, state_file=state)
    process.start()
    item = process.create_item(JOBS, {"attributes_itemsTitle": "saved soon"})
    time.sleep(0.8)
    process.kill()  # SIGKILL: no shutdown flush
    process.start()
    try:
        assert process.attributes(item["itemId"]) == {"attributes_itemsTitle": "saved soon"}
    finally:
        process.stop()


def test_an_existing_state_file_wins_over_the_seed(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    process = EmulatorProcess(tmp_path, seed="demo", state_file=state)
    process.start()
    try:
        assert len(process.query(query(JOBS))[1]["results"]) == 6  # the demo jobs and the recipe job
    finally:
        process.stop()
    process.start()
    try:
        assert len(process.query(query(JOBS))[1]["results"]) == 6  # not seeded twice
    finally:
        process.stop()


async def test_a_thousand_creates_are_fast_and_all_saved(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    process = EmulatorProcess(tmp_path, state_file=state, rate_limits=False)
    process.start()
    try:
        headers = {"Authorization": f"Bearer {process.token}"}
        started = time.monotonic()
        async with aiohttp.ClientSession(process.url, headers=headers) as session:

            async def create(number: int) -> str:
                body = {
                    "designCode": JOBS,
                    "attributes": [{"attributeCode": "attributes_itemsTitle", "value": f"{number}"}],
                }
                async with session.post("/api/item", json=body) as response:
                    assert response.status == 200
                    item_id: str = (await response.json())["item"]["itemId"]
                    return item_id

            for batch in range(10):
                await asyncio.gather(*(create(batch * 100 + number) for number in range(100)))
        elapsed = time.monotonic() - started
        assert elapsed < 10, f"1000 creates took {elapsed:.1f} s"
    finally:
        process.stop()
    saved = json.loads(state.read_text())["items"]
    assert len(saved) == 1000
    assert {attribute_values(item)["attributes_itemsTitle"] for item in saved} == {
        str(n) for n in range(1000)
    }


def test_a_corrupt_state_file_is_not_overwritten(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    state.write_text("{ this is not json")
    process = EmulatorProcess(tmp_path, state_file=state)
    try:
        process.start(timeout=10)
    except RuntimeError as error:
        assert "not valid JSON" in str(error)
    else:
        process.stop()
        raise AssertionError("the emulator started on a corrupt state file")
    assert state.read_text() == "{ this is not json"


def test_designs_survive_a_restart_with_their_codes_and_signatures(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    process = EmulatorProcess(tmp_path, seed="empty", state_file=state)
    process.start()
    try:
        design = process.create_design("Kept things", title="{{attributes_itemsTitle}}")
        code = process.add_attribute(
            design["code"],
            "Size",
            {"decimalPlaces": 1, "max": 10, "discriminator": "DodiAttributeOptionsNumberWebModel"},
        )
        before = process.get_design(design["code"])
        item = process.create_item(design["code"], {"attributes_itemsTitle": "box", code: 2.5})
    finally:
        process.stop()
    process.start()
    try:
        assert process.get_design(design["code"]) == before
        assert process.get_item(item["itemId"]) == item
        assert process.request("GET", "/api/design/designs_alloysyncJobs")[0] == 404  # no seed over a state
        status, body = process.request(
            "POST",
            "/api/item",
            {"designCode": design["code"], "attributes": [{"attributeCode": code, "value": 11}]},
        )
        assert (status, body["category"]) == (400, "DodiAttributeOptionConstraintViolated")
        process.add_attribute(
            design["code"], "Colour", {"discriminator": "DodiAttributeOptionsStringWebModel"}
        )
    finally:
        process.stop()


def test_a_version_1_state_file_loads_with_the_jobs_design(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    item_id = "0123456789abcdef01234567"
    item: dict[str, Any] = {
        "itemId": item_id,
        "designCode": JOBS,
        "collection": "Live",
        "attributes": [{"attributeCode": "attributes_itemsTitle", "value": "from version 1"}],
        "signature": "89abcdef0123456789abcdef",
        "lastEditDate": "2024-07-02T10:00:00.000Z",
        "createdDate": "2024-07-01T10:00:00.000Z",
    }
    state.write_text(json.dumps({"format": "alloysync-emulator-state", "version": 1, "items": [item]}))
    process = EmulatorProcess(tmp_path, state_file=state, item_dates=True)
    process.start()
    try:
        loaded = process.get_item(item_id)
        assert (loaded["lastEditDate"], loaded["title"]) == ("2024-07-02T10:00:00.000Z", "from version 1")
        assert process.get_design(JOBS)["code"] == JOBS
    finally:
        process.stop()
    assert json.loads(state.read_text())["version"] == 2

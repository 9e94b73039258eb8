"""`--state FILE`: items survive a restart (clean stop or kill), and many creates stay fast."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import aiohttp

from tests.emulator.aqs_nodes import JOBS, attribute_values, query
from tests.support.emulator import EmulatorProcess


def test_items_survive_a_clean_restart(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    process = EmulatorProcess(tmp_path, state_file=state)
    process.start()
    try:
        item = process.create_item(
            JOBS, {"attributes_itemsTitle": "kept", "attributes_alloysyncJobsParams": {"a": [1]}}
        )
        edited = process.edit_item(item["itemId"], {"attributes_alloysyncJobsStatus": "Queued"})
        gone = process.create_item("designs_other", {})
        assert process.request("DELETE", f"/api/item/{gone['itemId']}")[0] == 200
    finally:
        process.stop()  # SIGTERM: flushes the state file
    assert json.loads(state.read_text())["items"][0]["itemId"] == item["itemId"]

    process.start()
    try:
        assert process.get_item(item["itemId"]) == edited  # same signature, dates and values
        status, body = process.query(query("designs_other"))
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
        assert len(process.query(query(JOBS))[1]["results"]) == 5
    finally:
        process.stop()
    process.start()
    try:
        assert len(process.query(query(JOBS))[1]["results"]) == 5  # not seeded twice
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

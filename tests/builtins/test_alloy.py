"""alloy.query, alloy.get, alloy.update and alloy.create against the emulator over real HTTP, with
their memory in the test's Redis."""

from __future__ import annotations

from typing import Any

import pytest

from alloysync.builtins import alloy
from alloysync.builtins.common import BuiltinError
from alloysync.local.redis_server import RedisServer
from alloysync.settings import Settings
from tests.builtins.conftest import ContextFactory, make_settings
from tests.support.emulator import EmulatorProcess
from tests.support.recipes import DEFECTS, HIGHWAY_JOBS, defect, values_of

NAMES = {
    "ref": "attributes_defectsReference",
    "status": "attributes_defectsStatus",
    "priority": "attributes_defectsPriority",
}


def writes(emulator: EmulatorProcess) -> int:
    return sum(emulator.stats().get("write", {}).values())


@pytest.fixture
def defects(recipe_emulator: EmulatorProcess) -> list[dict[str, Any]]:
    drafts = [
        defect(f"D-{n:02d}", "Open", "High" if n % 2 else "Low", age_days=n * 3 - 0.5) for n in range(1, 26)
    ]
    drafts += [defect("D-99", "Closed", "High", age_days=90)]
    return recipe_emulator.bulk_create(drafts)


async def test_query_pages_filters_renames_and_stops_at_its_limit(
    redis_server: RedisServer, recipe_emulator: EmulatorProcess, defects: Any, context: ContextFactory
) -> None:
    settings = make_settings(redis_server, recipe_emulator, alloy_page_size=10)
    where = {"attributes_defectsStatus": "Open", "attributes_defectsReported": {"before": "now-30d"}}
    async with context(settings) as ctx:
        rows = await alloy.query(ctx=ctx, design=DEFECTS, where=where, attributes=NAMES)
        # 3 days apart: D-11 (32.5 days) to D-25 are older than 30 days; D-99 is closed.
        assert sorted(row["ref"] for row in rows) == [f"D-{n}" for n in range(11, 26)]
        assert {"itemId", "designCode", "signature", "ref", "status", "priority"} <= set(rows[0])
        assert not [key for key in rows[0] if key.startswith("attributes_")]  # only the renamed ones
        before = recipe_emulator.stats()["query"]
        limited = await alloy.query(ctx=ctx, design=DEFECTS, limit=12)
        assert len(limited) == 12 and limited[0]["attributes_defectsStatus"] in ("Open", "Closed")
        assert sum(recipe_emulator.stats()["query"].values()) - sum(before.values()) == 2  # two pages of 10
        urgent_or_high = {
            "any": [{"attributes_defectsPriority": "Urgent"}, {"attributes_defectsPriority": ["High"]}]
        }
        high = await alloy.query(
            ctx=ctx, design=DEFECTS, where=urgent_or_high, attributes=["attributes_defectsPriority"]
        )
        assert len(high) == 14 and {row["attributes_defectsPriority"] for row in high} == {"High"}
        raw = {
            "type": "Equals",
            "children": [
                {"type": "Attribute", "properties": {"attributeCode": "attributes_defectsReference"}},
                {"type": "String", "properties": {"value": ["D-99"]}},
            ],
        }
        assert [
            row["ref"] for row in await alloy.query(ctx=ctx, design=DEFECTS, aqs=raw, attributes=NAMES)
        ] == ["D-99"]


async def test_get_reads_ids_from_the_previous_step(
    builtin_settings: Settings, defects: list[dict[str, Any]], context: ContextFactory
) -> None:
    ids = [item["itemId"] for item in defects[:3]]
    async with context(builtin_settings) as ctx:
        rows = await alloy.get([*ids, ids[0]], ctx=ctx, attributes={"ref": "attributes_defectsReference"})
        assert [row["ref"] for row in rows] == ["D-01", "D-02", "D-03"]
        assert [row["itemId"] for row in await alloy.get({"rows": [{"itemId": ids[1]}]}, ctx=ctx)] == [ids[1]]
        missing = "64f0c0ffee0000000000dead"
        assert len(await alloy.get(ctx=ctx, ids=[ids[0], missing], missing="skip")) == 1
        with pytest.raises(BuiltinError, match=f"cannot read item {missing}"):
            await alloy.get(ctx=ctx, ids=[missing])


async def test_update_is_idempotent_per_run_and_keeps_a_concurrent_edit(
    builtin_settings: Settings, recipe_emulator: EmulatorProcess, defects: Any, context: ContextFactory
) -> None:
    options: dict[str, Any] = {
        "design": DEFECTS,
        "values": {"attributes_defectsStatus": "Escalated"},
        "stamp": ["attributes_defectsEscalated"],
    }
    async with context(builtin_settings, run_id="cron:job-1:2026-03-02T07:00:00Z", step=2) as ctx:
        rows = await alloy.query(
            ctx=ctx, design=DEFECTS, where={"attributes_defectsReference": ["D-01", "D-02"]}, attributes=NAMES
        )
        # A user edits another attribute of D-01 after the query read it: its signature is stale now.
        first = next(row for row in rows if row["ref"] == "D-01")
        recipe_emulator.edit_item(first["itemId"], {"attributes_defectsLocation": "Mill Lane (moved)"})
        before = writes(recipe_emulator)
        updated = await alloy.update(rows, ctx=ctx, **options)
        assert writes(recipe_emulator) - before == 3  # two edits and one signature conflict
        assert {row["status"] for row in updated} == {"Open"}  # the renamed value is the query's
        assert all(row["attributes_defectsStatus"] == "Escalated" for row in updated)
        stored = values_of(recipe_emulator, DEFECTS)
        assert stored["D-01"]["attributes_defectsStatus"] == "Escalated"
        assert stored["D-01"]["attributes_defectsLocation"] == "Mill Lane (moved)"  # the user's edit stays
        assert stored["D-01"]["attributes_defectsEscalated"] and stored["D-02"]["attributes_defectsEscalated"]
        stamped = stored["D-01"]["attributes_defectsEscalated"]
        # The same run again (a redelivered step): nothing is written.
        before = writes(recipe_emulator)
        again = await alloy.update(rows, ctx=ctx, **options)
        assert writes(recipe_emulator) - before == 0
        assert [row["itemId"] for row in again] == [row["itemId"] for row in updated]
        assert values_of(recipe_emulator, DEFECTS)["D-01"]["attributes_defectsEscalated"] == stamped
    async with context(builtin_settings, run_id="cron:job-1:2026-03-09T07:00:00Z", step=2) as ctx:
        # Another run whose rows already hold the values writes nothing either.
        fresh = await alloy.query(ctx=ctx, design=DEFECTS, where={"attributes_defectsReference": "D-01"})
        before = writes(recipe_emulator)
        await alloy.update(fresh, ctx=ctx, design=DEFECTS, values={"attributes_defectsStatus": "Escalated"})
        assert writes(recipe_emulator) - before == 0


async def test_update_edits_only_items_of_the_allowed_design(
    builtin_settings: Settings,
    recipe_emulator: EmulatorProcess,
    defects: list[dict[str, Any]],
    context: ContextFactory,
) -> None:
    job = recipe_emulator.bulk_create(
        [
            {
                "designCode": HIGHWAY_JOBS,
                "attributes": [{"attributeCode": "attributes_highwayJobsReference", "value": "J-1"}],
            }
        ]
    )[0]
    async with context(builtin_settings) as ctx:
        with pytest.raises(
            BuiltinError, match=f"item {job['itemId']} is of design {HIGHWAY_JOBS}, not {DEFECTS}"
        ):
            await alloy.update(
                [job["itemId"]], ctx=ctx, design=DEFECTS, values={"attributes_defectsStatus": "x"}
            )
    assert "attributes_defectsStatus" not in values_of(recipe_emulator, HIGHWAY_JOBS)["J-1"]
    # An interface in the allow-list lets every design implementing it be edited.
    interface = make_settings_like(builtin_settings, builtin_alloy_designs=["designInterfaces_items"])
    async with context(interface) as ctx:
        rows = await alloy.update(
            [job["itemId"]],
            ctx=ctx,
            design="designInterfaces_items",
            values={"attributes_highwayJobsStatus": "Open"},
        )
    assert rows[0]["attributes_highwayJobsStatus"] == "Open"
    assert values_of(recipe_emulator, HIGHWAY_JOBS)["J-1"]["attributes_highwayJobsStatus"] == "Open"
    # The worker's own allow-list is checked again at run time.
    closed = make_settings_like(builtin_settings, builtin_alloy_designs=[])
    async with context(closed) as ctx:
        with pytest.raises(Exception, match="ALLOYSYNC_BUILTIN_ALLOY_DESIGNS"):
            await alloy.update(
                [defects[0]["itemId"]], ctx=ctx, design=DEFECTS, values={"attributes_defectsStatus": "x"}
            )


async def test_create_makes_one_item_per_entry_once_per_run(
    builtin_settings: Settings, recipe_emulator: EmulatorProcess, context: ContextFactory
) -> None:
    entries = [{"ref": "J-7"}, {"ref": "J-8"}]
    options: dict[str, Any] = {
        "design": HIGHWAY_JOBS,
        "values": {"attributes_highwayJobsStatus": "New"},
        "values_from": {"attributes_highwayJobsReference": "ref"},
    }
    async with context(builtin_settings, step=1) as ctx:
        created = await alloy.create(entries, ctx=ctx, **options)
        again = await alloy.create(entries, ctx=ctx, **options)
    assert [row["itemId"] for row in again] == [row["itemId"] for row in created]
    stored = values_of(recipe_emulator, HIGHWAY_JOBS)
    assert sorted(stored) == ["J-7", "J-8"] and stored["J-7"]["attributes_highwayJobsStatus"] == "New"


def make_settings_like(settings: Settings, **overrides: Any) -> Settings:
    return Settings(**{**settings.model_dump(), **overrides})

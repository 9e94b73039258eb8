"""The emulator's query cache (emulator/query_cache.py), in process: a query is computed once per
store generation, and every change to the store gives the answer of a fresh scan."""

from __future__ import annotations

from dataclasses import replace

from alloysync.emulator.aqs import parse_query
from alloysync.emulator.clock import format_timestamp
from alloysync.emulator.design_store import DesignStore
from alloysync.emulator.query_cache import QueryCache
from alloysync.emulator.seed import jobs_design
from alloysync.emulator.store import ItemDraft, ItemStore
from alloysync.settings import Settings
from tests.emulator.aqs_nodes import (
    JOBS,
    all_of,
    any_of,
    attribute,
    equals,
    greater_than,
    item_property,
    less_than,
    literal,
    query,
)

SETTINGS = Settings()
TITLE = SETTINGS.attributes.title
ENABLED = SETTINGS.attributes.enabled


def _store() -> ItemStore:
    designs = DesignStore()
    draft, attributes = jobs_design(SETTINGS.attributes)
    designs.create(draft, attributes, code=JOBS)
    return ItemStore(designs)


def _job(title: str, enabled: bool) -> ItemDraft:
    return ItemDraft(design_code=JOBS, attributes={TITLE: title, ENABLED: enabled})


def test_an_unchanged_store_answers_from_the_cache_and_a_change_rescans() -> None:
    store = _store()
    store.create_many([_job(f"j{n}", n % 2 == 0) for n in range(6)])
    cache = QueryCache(store)
    enabled = parse_query({"aqs": query(JOBS, equals(attribute(ENABLED), literal("Boolean", True)))})
    first = cache.results(enabled)
    assert cache.results(enabled) is first  # not scanned again
    assert [item.attributes[TITLE] for item in first] == ["j0", "j2", "j4"]

    edited = store.edit(first[0].item_id, {ENABLED: False}, first[0].signature)
    assert [item.attributes[TITLE] for item in cache.results(enabled)] == ["j2", "j4"]
    store.create(_job("j6", True))
    assert [item.attributes[TITLE] for item in cache.results(enabled)] == ["j2", "j4", "j6"]
    store.delete(first[1].item_id, None)
    assert [item.attributes[TITLE] for item in cache.results(enabled)] == ["j4", "j6"]
    assert cache.results(enabled) == enabled.run(store.snapshot())
    assert edited.item_id not in {item.item_id for item in cache.results(enabled)}


def test_each_query_has_its_own_entry() -> None:
    store = _store()
    store.create_many([_job("a", True), _job("b", False)])
    cache = QueryCache(store)
    on = parse_query({"aqs": query(JOBS, equals(attribute(ENABLED), literal("Boolean", True)))})
    off = parse_query({"aqs": query(JOBS, equals(attribute(ENABLED), literal("Boolean", False)))})
    assert [item.attributes[TITLE] for item in cache.results(on)] == ["a"]
    assert [item.attributes[TITLE] for item in cache.results(off)] == ["b"]
    assert [item.attributes[TITLE] for item in cache.results(on)] == ["a"]


def test_the_store_keeps_edit_order_and_its_fast_paths_answer_as_a_full_scan() -> None:
    """Incremental queries (`lastEditDate > t`, sorted by lastEditDate) read only the items edited
    after t; every query answers what a scan and sort of the whole store answers."""
    store = _store()
    created = store.create_many([_job(f"j{n}", n % 3 == 0) for n in range(30)])
    current = {item.item_id: item for item in created}
    for number in (4, 17, 2, 25, 4, 11):  # j4 twice: it moves to the end again
        item = current[created[number].item_id]
        current[item.item_id] = store.edit(
            item.item_id, {ENABLED: not item.attributes[ENABLED]}, item.signature
        )
    snapshot = store.snapshot()
    assert store.in_edit_order
    assert [item.last_edit for item in snapshot] == sorted(item.last_edit for item in snapshot)
    assert [item.attributes[TITLE] for item in snapshot[-5:]] == ["j17", "j2", "j25", "j4", "j11"]

    middle = format_timestamp(snapshot[20].last_edit)
    since = greater_than(item_property("lastEditDate"), literal("DateTime", middle))
    enabled = equals(attribute(ENABLED), literal("Boolean", True))
    by_edit = {"itemPropertyName": "lastEditDate", "sortOrder": "Descending"}
    queries = [
        query(JOBS, since, sort=by_edit),  # the poller's incremental pass
        query(JOBS, since, sort={**by_edit, "sortOrder": "Ascending"}),
        query(JOBS, all_of(since, enabled), sort=by_edit),
        query(JOBS, any_of(since, enabled), sort=by_edit),  # no bound: every item is scanned
        query(JOBS, enabled),  # sorted by item id
        query(JOBS, sort={"attributeCode": TITLE, "sortOrder": "Descending"}),
        query(JOBS, less_than(item_property("lastEditDate"), literal("DateTime", middle)), sort=by_edit),
    ]
    for raw in queries:
        parsed = parse_query({"aqs": raw})
        scanned = parsed.run(snapshot)  # no assumption about the order of `snapshot`
        assert parsed.run(snapshot, edit_ordered=True) == scanned, raw
        assert QueryCache(store).results(parsed) == scanned, raw
    incremental = parse_query({"aqs": queries[0]}).run(snapshot, edit_ordered=True)
    assert [item.attributes[TITLE] for item in incremental] == [
        item.attributes[TITLE] for item in reversed(snapshot[21:])
    ]


def test_a_loaded_store_is_put_in_edit_order_or_else_sorts_as_before() -> None:
    store = _store()
    items = store.create_many([_job(f"j{n}", True) for n in range(5)])
    reloaded = _store()
    reloaded.load(reversed(items))
    assert reloaded.in_edit_order
    assert reloaded.snapshot() == items
    tied = [replace(item, last_edit=items[0].last_edit) for item in items]  # stamps alike
    reloaded.load(tied)
    assert not reloaded.in_edit_order
    by_edit = parse_query(
        {"aqs": query(JOBS, sort={"itemPropertyName": "lastEditDate", "sortOrder": "Descending"})}
    )
    assert QueryCache(reloaded).results(by_edit) == sorted(tied, key=lambda item: item.item_id, reverse=True)

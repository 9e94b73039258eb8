"""The emulator's query cache (emulator/query_cache.py), in process: a query is computed once per
store generation, and every change to the store gives the answer of a fresh scan."""

from __future__ import annotations

from alloysync.emulator.aqs import parse_query
from alloysync.emulator.design_store import DesignStore
from alloysync.emulator.query_cache import QueryCache
from alloysync.emulator.seed import jobs_design
from alloysync.emulator.store import ItemDraft, ItemStore
from alloysync.settings import Settings
from tests.emulator.aqs_nodes import JOBS, attribute, equals, literal, query

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

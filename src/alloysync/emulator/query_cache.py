"""The results of recent AQS queries, so that a paged read filters and sorts the store once.

A client reads a query's pages one request at a time (serve's poller: pages 1..N of one query), and
each request asks for the whole result again. Without a cache the emulator filters and sorts every
item for every page: a read of 100,000 items in pages of 100 costs 1,000 full scans. An entry is
the query's matching items in order at one `ItemStore.generation`; any create, edit or delete makes
a new generation, so a cached answer is always the one a fresh scan would give.
"""

from __future__ import annotations

from collections import OrderedDict

from alloysync.emulator.aqs import Query
from alloysync.emulator.store import Item, ItemStore

CACHED_QUERIES = 8  # distinct queries kept (the poller's pass, the full pass, a test's reads)


class QueryCache:
    """`results(query)`: the matching items of `store`, computed once per query and generation."""

    def __init__(self, store: ItemStore) -> None:
        self.store = store
        self._entries: OrderedDict[Query, tuple[int, list[Item]]] = OrderedDict()

    def results(self, query: Query) -> list[Item]:
        # A parsed query is hashable: frozen dataclasses of strings, numbers, datetimes and tuples.
        generation = self.store.generation
        entry = self._entries.get(query)
        if entry is not None and entry[0] == generation:
            self._entries.move_to_end(query)
            return entry[1]
        matching = query.run(self.store.snapshot(), edit_ordered=self.store.in_edit_order)
        self._entries[query] = (generation, matching)
        self._entries.move_to_end(query)
        while len(self._entries) > CACHED_QUERIES:
            self._entries.popitem(last=False)
        return matching

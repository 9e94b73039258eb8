"""One running emulator: the parts (designs, items, limits, faults, stats, call-outs, prices, state
file) and how they are connected. The HTTP layer reaches it through `STATE_KEY` on the aiohttp
application.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from alloysync.emulator.auth import TokenCheck
from alloysync.emulator.callouts import Callouts
from alloysync.emulator.clock import utc_now
from alloysync.emulator.design_store import DesignStore
from alloysync.emulator.designs import Design
from alloysync.emulator.faults import Faults
from alloysync.emulator.limits import RateLimitConfig, RateLimiter
from alloysync.emulator.persistence import StateSaver, load_state
from alloysync.emulator.prices import PriceFeed
from alloysync.emulator.query_cache import QueryCache
from alloysync.emulator.seed import (
    SEEDS_WITH_JOBS_DESIGN,
    demo_jobs,
    jobs_design,
    recipe_designs,
    recipe_highway_jobs,
    recipe_job,
    recipe_work_orders,
)
from alloysync.emulator.stats import RequestStats
from alloysync.emulator.store import Change, Item, ItemStore, encoded_item
from alloysync.settings import Settings


@dataclass
class EmulatorState:
    settings: Settings
    tokens: TokenCheck
    designs: DesignStore
    store: ItemStore
    limiter: RateLimiter
    faults: Faults
    stats: RequestStats
    callouts: Callouts
    prices: PriceFeed
    saver: StateSaver | None
    queries: QueryCache
    item_dates: bool = False  # send items with lastEditDate/createdDate (real Alloy does not)

    def encoded_item(self, item: Item, only_attributes: frozenset[str] | None = None) -> bytes:
        """The item as the API sends it, as encoded JSON (cached: see `store.encoded_item`)."""
        design = self.designs.find(item.design_code)
        return encoded_item(item, design, item_dates=self.item_dates, only_attributes=only_attributes)

    def load_seed(self, seed: str) -> int:
        """Add the named seed's designs and items (see `seed`); the number of items added."""
        if seed in SEEDS_WITH_JOBS_DESIGN:
            self.add_jobs_design()
        if seed != "demo":
            return 0
        for code, draft, attributes in recipe_designs():  # what the demo's recipe job works on
            self.designs.create(draft, attributes, code=code)
        highway_jobs = self.store.create_many(recipe_highway_jobs())
        work_orders = self.store.create_many(recipe_work_orders([item.item_id for item in highway_jobs]))
        drafts = demo_jobs(self.settings.jobs_design, self.settings.attributes, utc_now())
        drafts.append(recipe_job(self.settings.jobs_design, self.settings.attributes))
        return len(highway_jobs) + len(work_orders) + len(self.store.create_many(drafts))

    def add_jobs_design(self) -> Design:
        draft, attributes = jobs_design(self.settings.attributes)
        return self.designs.create(draft, attributes, code=self.settings.jobs_design)

    def reset(self, seed: str) -> None:
        """Drop every design, item, request count and rate-limit window; then load the seed."""
        self.store.clear()
        self.designs.clear()
        self.stats.clear()
        self.callouts.clear_counts()
        self.limiter.reset_windows()
        self.load_seed(seed)

    def snapshot(self) -> tuple[list[Design], list[Item]]:
        return self.designs.snapshot(), self.store.snapshot()

    def on_store_change(self, change: Change) -> None:
        self.mark_dirty()
        self.callouts.on_change(change)

    def mark_dirty(self) -> None:
        if self.saver is not None:
            self.saver.mark_dirty()


STATE_KEY = web.AppKey("alloysync_emulator_state", EmulatorState)


def create_state(
    settings: Settings, *, state_file: Path | None, rate_limits: bool, item_dates: bool = False
) -> tuple[EmulatorState, bool]:
    """A new emulator state, with the designs and items of `state_file` when it exists.

    Returns the state and whether the file was loaded. A version 1 file (items only) gets the jobs
    design of the `none` seed (and is rewritten in version 2). Raises `StateFileError` when the file
    exists but is not a readable state file (it is never overwritten then). Call it on the event loop.
    """
    designs = DesignStore()
    store = ItemStore(designs)
    saved = load_state(state_file) if state_file is not None else None
    state = EmulatorState(
        settings=settings,
        tokens=TokenCheck(settings.alloy_token_value()),
        designs=designs,
        store=store,
        limiter=RateLimiter(RateLimitConfig(enabled=rate_limits)),
        faults=Faults(),
        stats=RequestStats(),
        callouts=Callouts(),
        prices=PriceFeed(),
        saver=None,
        queries=QueryCache(store),
        item_dates=item_dates,
    )
    if state_file is not None:
        state.saver = StateSaver(state_file, state.snapshot)
    if saved is not None:
        store.load(saved.items)
        if saved.designs is None:
            state.add_jobs_design()
            state.mark_dirty()  # rewrite the file in version 2, with the design
        else:
            designs.load(saved.designs)
    store.add_listener(state.on_store_change)
    designs.add_listener(state.mark_dirty)
    return state, saved is not None

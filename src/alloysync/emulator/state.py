"""One running emulator: the parts (items, limits, faults, stats, call-outs, prices, state file) and
how they are connected. The HTTP layer reaches it through `STATE_KEY` on the aiohttp application.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from alloysync.emulator.auth import TokenCheck
from alloysync.emulator.callouts import Callouts
from alloysync.emulator.clock import utc_now
from alloysync.emulator.designs import DesignRules, job_attribute_types
from alloysync.emulator.faults import Faults
from alloysync.emulator.limits import RateLimitConfig, RateLimiter
from alloysync.emulator.persistence import StateSaver, load_items
from alloysync.emulator.prices import PriceFeed
from alloysync.emulator.seed import demo_jobs
from alloysync.emulator.stats import RequestStats
from alloysync.emulator.store import Change, ItemStore
from alloysync.settings import Settings


@dataclass
class EmulatorState:
    settings: Settings
    tokens: TokenCheck
    store: ItemStore
    limiter: RateLimiter
    faults: Faults
    stats: RequestStats
    callouts: Callouts
    prices: PriceFeed
    saver: StateSaver | None

    def load_seed(self, seed: str) -> int:
        """Add the named seed's items ("none" adds nothing); the number of items added."""
        if seed != "demo":
            return 0
        drafts = demo_jobs(self.settings.jobs_design, self.settings.attributes, utc_now())
        return len(self.store.create_many(drafts))

    def reset(self, seed: str) -> None:
        """Drop every item, the request counts and the rate-limit windows; then load the seed."""
        self.store.clear()
        self.stats.clear()
        self.callouts.clear_counts()
        self.limiter.reset_windows()
        self.load_seed(seed)

    def on_store_change(self, change: Change) -> None:
        if self.saver is not None:
            self.saver.mark_dirty()
        self.callouts.on_change(change)


STATE_KEY = web.AppKey("alloysync_emulator_state", EmulatorState)


def create_state(
    settings: Settings, *, state_file: Path | None, rate_limits: bool
) -> tuple[EmulatorState, bool]:
    """A new emulator state, with the items of `state_file` when it exists.

    Returns the state and whether items were loaded from the file. Raises `StateFileError` when the
    file exists but is not a readable state file (it is never overwritten then).
    """
    rules = DesignRules({settings.jobs_design: job_attribute_types(settings.attributes)})
    store = ItemStore(rules)
    loaded = load_items(state_file) if state_file is not None else None
    if loaded is not None:
        store.load(loaded)
    state = EmulatorState(
        settings=settings,
        tokens=TokenCheck(settings.alloy_token_value()),
        store=store,
        limiter=RateLimiter(RateLimitConfig(enabled=rate_limits)),
        faults=Faults(),
        stats=RequestStats(),
        callouts=Callouts(),
        prices=PriceFeed(),
        saver=None if state_file is None else StateSaver(state_file, store.snapshot),
    )
    store.add_listener(state.on_store_change)
    return state, loaded is not None

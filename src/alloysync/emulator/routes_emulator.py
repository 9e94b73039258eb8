"""The emulator's own endpoints, which real Alloy does not have: the admin API and the price feed.

Admin API under `/_emulator/` (the bearer token is required except for `health`; never rate
limited or faulty), documented for callers in `tests/support/emulator.py`:
health, faults, rate-limits, reset, stats, designs (define with codes of one's own, list, read),
items (bulk create, validated against the designs like the API; list, read), webhook.
The price feed `/v1/bpi/currentprice.json` needs no token; faults apply to it, rate limits do not.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from alloysync.emulator.callouts import parse_webhook_config
from alloysync.emulator.design_requests import parse_admin_design
from alloysync.emulator.errors import bad_request
from alloysync.emulator.prices import PRICE_PATH
from alloysync.emulator.routes_api import item_response, parse_draft
from alloysync.emulator.seed import SEED_NAMES
from alloysync.emulator.state import STATE_KEY
from alloysync.emulator.wire import encoded_array, json_response, json_response_with, read_json_object

ADMIN_PREFIX = "/_emulator/"
HEALTH_PATH = ADMIN_PREFIX + "health"
MAX_BULK_ITEMS = 100_000


def add_emulator_routes(app: web.Application) -> None:
    app.router.add_get(HEALTH_PATH, health)
    app.router.add_get(ADMIN_PREFIX + "faults", get_faults)
    app.router.add_put(ADMIN_PREFIX + "faults", put_faults)
    app.router.add_get(ADMIN_PREFIX + "rate-limits", get_rate_limits)
    app.router.add_put(ADMIN_PREFIX + "rate-limits", put_rate_limits)
    app.router.add_post(ADMIN_PREFIX + "reset", reset)
    app.router.add_get(ADMIN_PREFIX + "stats", stats)
    app.router.add_post(ADMIN_PREFIX + "designs", define_design)
    app.router.add_get(ADMIN_PREFIX + "designs", list_designs)
    app.router.add_get(ADMIN_PREFIX + "designs/{code}", read_design)
    app.router.add_post(ADMIN_PREFIX + "items", bulk_create)
    app.router.add_get(ADMIN_PREFIX + "items", list_items)
    app.router.add_get(ADMIN_PREFIX + "items/{item_id}", read_item)
    app.router.add_get(ADMIN_PREFIX + "webhook", get_webhook)
    app.router.add_put(ADMIN_PREFIX + "webhook", put_webhook)
    app.router.add_get(PRICE_PATH, current_price)


async def health(request: web.Request) -> web.Response:
    return json_response({"ok": True})


async def get_faults(request: web.Request) -> web.Response:
    return json_response(request.app[STATE_KEY].faults.config.to_json())


async def put_faults(request: web.Request) -> web.Response:
    """Change some fault knobs; the others keep their value. Returns all knobs."""
    config = request.app[STATE_KEY].faults.configure(await read_json_object(request))
    return json_response(config.to_json())


async def get_rate_limits(request: web.Request) -> web.Response:
    return json_response(request.app[STATE_KEY].limiter.config.to_json())


async def put_rate_limits(request: web.Request) -> web.Response:
    """Change some rate-limit settings (windows start afresh). Returns all settings."""
    config = request.app[STATE_KEY].limiter.configure(await read_json_object(request))
    return json_response(config.to_json())


async def reset(request: web.Request) -> web.Response:
    """`{"seed": "none"|"demo"|"empty"}`: drop every design, item, counter and rate-limit window,
    then seed (`empty`: no designs at all)."""
    body = await read_json_object(request, required=False)
    seed = body.get("seed", "none")
    if seed not in SEED_NAMES:
        raise bad_request(f"seed must be one of {', '.join(SEED_NAMES)}, got {seed!r}")
    state = request.app[STATE_KEY]
    state.reset(seed)
    return json_response({"ok": True, "designs": len(state.designs), "items": len(state.store)})


async def stats(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    return json_response(
        {
            "requests": state.stats.snapshot(),
            "callouts": dict(state.callouts.counts),
            "designs": len(state.designs),
            "items": len(state.store),
        }
    )


async def define_design(request: web.Request) -> web.Response:
    """A design with codes of one's own (`{"code"?, "name", ..., "attributes": [{"code"?, "name",
    "type" | "options", ...}]}`), without a signature; codes left out are generated."""
    draft, attributes, code = parse_admin_design(await read_json_object(request))
    design = request.app[STATE_KEY].designs.create(draft, attributes, code=code)
    return json_response({"design": design.to_json()})


async def list_designs(request: web.Request) -> web.Response:
    return json_response(
        {"designs": [design.to_json() for design in request.app[STATE_KEY].designs.snapshot()]}
    )


async def read_design(request: web.Request) -> web.Response:
    design = request.app[STATE_KEY].designs.get(request.match_info["code"])
    return json_response({"design": design.to_json()})


async def bulk_create(request: web.Request) -> web.Response:
    """`{"items": [{designCode, collection?, attributes}]}`: create all or none, every item checked
    against its design as the API does; no rate limits or faults."""
    body = await read_json_object(request)
    raw_items = body.get("items")
    if not isinstance(raw_items, list) or len(raw_items) > MAX_BULK_ITEMS:
        raise bad_request(f'the body must be {{"items": [...]}} with at most {MAX_BULK_ITEMS} items')
    drafts = []
    for position, raw in enumerate(raw_items):
        if not isinstance(raw, dict):
            raise bad_request(f"items[{position}] must be an object with designCode and attributes")
        drafts.append(parse_draft(raw))
    state = request.app[STATE_KEY]
    created = state.store.create_many(drafts)
    return json_response_with({}, "items", encoded_array(state.encoded_item(item) for item in created))


async def list_items(request: web.Request) -> web.Response:
    """Every item (optionally `?design=`), for observers such as tests and the demo's live view.

    Unlike the Alloy API this costs no rate-limit budget, so watching the records does not take
    budget away from the alloysync processes that share the token."""
    design = request.query.get("design")
    state = request.app[STATE_KEY]
    items = [item for item in state.store.snapshot() if design in (None, item.design_code)]
    items.sort(key=lambda item: (item.created, item.item_id))  # in the order they were created
    return json_response_with({}, "items", encoded_array(state.encoded_item(item) for item in items))


async def read_item(request: web.Request) -> web.Response:
    """One item as `{"item": ...}`, without rate limits or faults (for observers)."""
    state = request.app[STATE_KEY]
    return item_response(state, state.store.get(request.match_info["item_id"]))


async def get_webhook(request: web.Request) -> web.Response:
    return json_response(request.app[STATE_KEY].callouts.config.describe())


async def put_webhook(request: web.Request) -> web.Response:
    """`{"url", "headers", "design_codes"}`: where to call out on item changes (url null: off)."""
    config = parse_webhook_config(await read_json_object(request))
    request.app[STATE_KEY].callouts.configure(config)
    return json_response(config.describe())


async def current_price(request: web.Request) -> web.Response:
    feed_latency = request.app[STATE_KEY].faults.config.feed_latency_ms / 1000.0
    if feed_latency > 0:
        await asyncio.sleep(feed_latency)
    return json_response(request.app[STATE_KEY].prices.current())

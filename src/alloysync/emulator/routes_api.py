"""The Alloy API's item endpoints: AQS query, and item read, create, edit and delete.

Authentication, rate limits, faults and error bodies are applied around these handlers by the gate
in `app`; a handler only raises `AlloyError` for a request Alloy would refuse. Items are sent as
`EmulatorState.encoded_item` encodes them (no dates unless `--item-dates`).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from alloysync.emulator.aqs import check_query, parse_query
from alloysync.emulator.errors import bad_request
from alloysync.emulator.item_values import parse_attribute_list
from alloysync.emulator.state import STATE_KEY, EmulatorState
from alloysync.emulator.store import DEFAULT_COLLECTION, Item, ItemDraft
from alloysync.emulator.wire import (
    encoded_array,
    json_response,
    json_response_with,
    query_page,
    read_json,
    read_json_object,
)


def add_api_routes(app: web.Application) -> None:
    app.router.add_post("/api/aqs/query", query_items)
    app.router.add_get("/api/item/{item_id}", get_item)
    app.router.add_post("/api/item", create_item)
    app.router.add_put("/api/item/{item_id}", edit_item)
    app.router.add_delete("/api/item/{item_id}", delete_item)


async def query_items(request: web.Request) -> web.Response:
    """`POST /api/aqs/query?page=N&pageSize=M` → `{"page", "pageSize", "results"}` (no totals)."""
    page, page_size = query_page(request)
    query = parse_query(await read_json(request))
    state = request.app[STATE_KEY]
    check_query(query, state.designs)
    matching = state.queries.results(query)
    start = (page - 1) * page_size
    results = [state.encoded_item(item, query.attributes) for item in matching[start : start + page_size]]
    return json_response_with({"page": page, "pageSize": page_size}, "results", encoded_array(results))


async def get_item(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    return item_response(state, state.store.get(request.match_info["item_id"]))


async def create_item(request: web.Request) -> web.Response:
    """`POST /api/item` `{designCode, collection, attributes}` → `{"item"}`."""
    draft = parse_draft(await read_json_object(request))
    state = request.app[STATE_KEY]
    return item_response(state, state.store.create(draft))


async def edit_item(request: web.Request) -> web.Response:
    """`PUT /api/item/{id}` `{attributes, signature}`: a partial edit → `{"item"}` with a new signature."""
    body = await read_json_object(request)
    signature = body.get("signature")
    if not isinstance(signature, str) or not signature:
        raise bad_request(
            "signature is required: send the item's current signature (from the latest read) with every edit"
        )
    values = parse_attribute_list(body.get("attributes"))
    state = request.app[STATE_KEY]
    item = state.store.edit(request.match_info["item_id"], values, signature)
    return item_response(state, item)


async def delete_item(request: web.Request) -> web.Response:
    """`DELETE /api/item/{id}` with an optional `{"signature"}` body (a stale one is refused)."""
    body = await read_json_object(request, required=False)
    signature = body.get("signature")
    if signature is not None and not isinstance(signature, str):
        raise bad_request("signature must be a string")
    request.app[STATE_KEY].store.delete(request.match_info["item_id"], signature)
    return json_response({})


def item_response(state: EmulatorState, item: Item) -> web.Response:
    """`{"item": ...}`, the item as the API sends it."""
    return json_response_with({}, "item", state.encoded_item(item))


def parse_draft(body: dict[str, Any]) -> ItemDraft:
    """A create request's body as an `ItemDraft`; 400 when a field is missing or of the wrong type."""
    design_code = body.get("designCode")
    if not isinstance(design_code, str) or not design_code:
        raise bad_request("designCode is required: the code of the design the item belongs to")
    collection = body.get("collection", DEFAULT_COLLECTION)
    if not isinstance(collection, str) or not collection:
        raise bad_request('collection must be a collection code such as "Live"')
    return ItemDraft(
        design_code=design_code,
        attributes=parse_attribute_list(body.get("attributes")),
        collection=collection,
    )

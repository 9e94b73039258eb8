"""The Alloy API endpoints: AQS query, and item read, create, edit and delete.

Authentication, rate limits, faults and error bodies are applied around these handlers by the gate
in `app`; a handler only raises `AlloyError` for a request Alloy would refuse.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from alloysync.emulator.aqs import parse_query
from alloysync.emulator.designs import parse_attribute_list
from alloysync.emulator.errors import bad_request
from alloysync.emulator.state import STATE_KEY
from alloysync.emulator.store import DEFAULT_COLLECTION, ItemDraft
from alloysync.emulator.wire import json_response, read_json, read_json_object

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100


def add_api_routes(app: web.Application) -> None:
    app.router.add_post("/api/aqs/query", query_items)
    app.router.add_get("/api/item/{item_id}", get_item)
    app.router.add_post("/api/item", create_item)
    app.router.add_put("/api/item/{item_id}", edit_item)
    app.router.add_delete("/api/item/{item_id}", delete_item)


async def query_items(request: web.Request) -> web.Response:
    """`POST /api/aqs/query?page=N&pageSize=M` → `{"page", "pageSize", "results"}` (no totals)."""
    page = _query_int(request, "page", default=1, maximum=None)
    page_size = _query_int(request, "pageSize", default=DEFAULT_PAGE_SIZE, maximum=MAX_PAGE_SIZE)
    query = parse_query(await read_json(request))
    state = request.app[STATE_KEY]
    matching = query.run(state.store.snapshot())
    start = (page - 1) * page_size
    results = [item.to_json(query.attributes) for item in matching[start : start + page_size]]
    return json_response({"page": page, "pageSize": page_size, "results": results})


async def get_item(request: web.Request) -> web.Response:
    item = request.app[STATE_KEY].store.get(request.match_info["item_id"])
    return json_response({"item": item.to_json()})


async def create_item(request: web.Request) -> web.Response:
    """`POST /api/item` `{designCode, collection, attributes}` → `{"item"}`."""
    draft = parse_draft(await read_json_object(request))
    item = request.app[STATE_KEY].store.create(draft)
    return json_response({"item": item.to_json()})


async def edit_item(request: web.Request) -> web.Response:
    """`PUT /api/item/{id}` `{attributes, signature}`: a partial edit → `{"item"}` with a new signature."""
    body = await read_json_object(request)
    signature = body.get("signature")
    if not isinstance(signature, str) or not signature:
        raise bad_request(
            "signature is required: send the item's current signature (from the latest read) with every edit",
            error_code="ItemSignatureRequired",
        )
    values = parse_attribute_list(body.get("attributes"))
    item = request.app[STATE_KEY].store.edit(request.match_info["item_id"], values, signature)
    return json_response({"item": item.to_json()})


async def delete_item(request: web.Request) -> web.Response:
    """`DELETE /api/item/{id}` with an optional `{"signature"}` body (a stale one → 409)."""
    body = await read_json_object(request, required=False)
    signature = body.get("signature")
    if signature is not None and not isinstance(signature, str):
        raise bad_request("signature must be a string")
    request.app[STATE_KEY].store.delete(request.match_info["item_id"], signature)
    return json_response({})


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


def _query_int(request: web.Request, name: str, *, default: int, maximum: int | None) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise bad_request(
            f"{name} must be a whole number, got {raw!r}", error_code="InvalidQueryParameter"
        ) from None
    if value < 1:
        raise bad_request(f"{name} must be 1 or more, got {value}", error_code="InvalidQueryParameter")
    if maximum is not None and value > maximum:
        raise bad_request(
            f"{name} must be at most {maximum}, got {value}", error_code="InvalidQueryParameter"
        )
    return value

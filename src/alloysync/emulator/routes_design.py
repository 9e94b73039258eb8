"""The Alloy API's design endpoints, with the request and response models of Alloy's API.

- `GET /api/design/{code}` → `{"design": DesignWebModel, "operationsSummary": {...}}`
  (`DesignWithOperationsSummaryWebResponseModel`); 404 `DesignNotFound`.
- `GET /api/design?query=&page=&pageSize=` → `{"page", "pageSize", "results": [{design,
  operationsSummary}], "totalPages", "totalResults"}` (`DesignListWebResponseModel`); `query`
  matches a part of the name, without case.
- `POST /api/design` `DesignCreateWebRequestModel` → `{"design", "operationsSummary"}`: the design
  with a generated code `designs_<camelCaseName>_<24 hex>`.
- `POST /api/design/{code}/attribute` `DodiAttributeCreateWebRequestModel` (name, required,
  readonly, unique, tags, options with a discriminator, and the design's signature) →
  `{"attributeCode", "designWithOperationsSummary": {"design", "operationsSummary"}}`
  (`DodiAttributeCreateWebResponseModel`); a stale signature → `DesignSignatureMismatch`.
Rate limits: reads count in the `read` family, creates in `write` (see `limits`).
"""

from __future__ import annotations

from aiohttp import web

from alloysync.emulator.design_requests import parse_attribute_create, parse_design_create
from alloysync.emulator.state import STATE_KEY
from alloysync.emulator.wire import json_response, query_page, query_text, read_json_object


def add_design_routes(app: web.Application) -> None:
    app.router.add_get("/api/design", list_designs)
    app.router.add_post("/api/design", create_design)
    app.router.add_get("/api/design/{code}", get_design)
    app.router.add_post("/api/design/{code}/attribute", add_attribute)


async def get_design(request: web.Request) -> web.Response:
    design = request.app[STATE_KEY].designs.get(request.match_info["code"])
    return json_response(design.with_operations())


async def list_designs(request: web.Request) -> web.Response:
    page, page_size = query_page(request)
    wanted = (query_text(request, "query") or "").strip().casefold()
    designs = [
        design for design in request.app[STATE_KEY].designs.snapshot() if wanted in design.name.casefold()
    ]
    start = (page - 1) * page_size
    return json_response(
        {
            "page": page,
            "pageSize": page_size,
            "results": [design.with_operations() for design in designs[start : start + page_size]],
            "totalPages": (len(designs) + page_size - 1) // page_size,
            "totalResults": len(designs),
        }
    )


async def create_design(request: web.Request) -> web.Response:
    draft = parse_design_create(await read_json_object(request))
    design = request.app[STATE_KEY].designs.create(draft)
    return json_response(design.with_operations())


async def add_attribute(request: web.Request) -> web.Response:
    draft, signature = parse_attribute_create(await read_json_object(request))
    design, attribute = request.app[STATE_KEY].designs.add_attribute(
        request.match_info["code"], draft, signature
    )
    return json_response(
        {"attributeCode": attribute.code, "designWithOperationsSummary": design.with_operations()}
    )

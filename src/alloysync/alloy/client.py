"""`AlloyClient`: the one way alloysync talks to the Alloy API.

This module owns the API's endpoints as alloysync uses them: paging of AQS queries, items, the
read → edit → resolve-conflict cycle, and designs; the HTTP conversation under them (session,
authentication, timeouts, retries, pacing, metrics) is `transport.py`. It speaks only the public
API (`/api/...` under `ALLOYSYNC_ALLOY_URL`), so it works identically against real Alloy and
`alloysync emulator`.

Which requests may be repeated: `POST /api/item` is not idempotent, and a retry after a lost
response (timeout, reset connection, 502/504 from a proxy) could create the item twice. It is
therefore retried only when the server certainly did not process it: 429 (refused by the rate
limiter before any work), 503 (refused as unavailable) and a connection that was never established.
Creating a design is not repeated for the same reason. AQS queries are POSTs too, but read-only, so
they retry like reads. Edits carry a signature, so a repeated edit cannot silently apply twice: at
worst it fails with a signature mismatch, which `update_owned` resolves; adding a design attribute
carries the design's signature and is safe to repeat for the same reason.

Designs (`GET /api/design/{code}`, `GET /api/design`, `POST /api/design`, `POST
/api/design/{code}/attribute`) are paced through the `read` and `write` families: Alloy documents no
limits of their own for them.

Alloy's clock. `query_pages` yields each page with its response's `Date` header, so a caller can
learn the time of a query on Alloy's clock rather than its own.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote

from alloysync.alloy.aqs import Node
from alloysync.alloy.designs import AttributeAdded, Design, NewAttribute
from alloysync.alloy.errors import AlloyError
from alloysync.alloy.models import Item
from alloysync.alloy.ratelimit import RateLimits
from alloysync.alloy.responses import (
    KnownView,
    ignore,
    parse_attribute_added,
    parse_design_page,
    parse_http_date,
    parse_page,
    parse_wrapped_design,
    parse_wrapped_item,
    wire_attributes,
)
from alloysync.alloy.transport import DEFAULT_BACKOFF_BASE, DEFAULT_BACKOFF_MAX, AlloyTransport, Request
from alloysync.log import get_logger
from alloysync.settings import Settings

__all__ = ["AlloyClient", "Page", "parse_http_date"]

log = get_logger(__name__)

# Consecutive full pages with nothing new after which paging stops (a server ignoring `page`).
_MAX_STALE_PAGES = 3


class AlloyClient(AlloyTransport):
    """An async Alloy API client: one aiohttp session, used as `async with AlloyClient(...) as alloy:`.

    Make one per process (`AlloyClient.from_settings(settings)`) and share it: the rate-limit
    budgets and the connection pool are per client.
    """

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        limits: RateLimits | None = None,
        backoff_base: float = DEFAULT_BACKOFF_BASE,
        backoff_max: float = DEFAULT_BACKOFF_MAX,
    ) -> AlloyClient:
        """A client for `ALLOYSYNC_ALLOY_URL` with the token, timeout, retries, page size and budgets."""
        return cls(
            settings.alloy_url,
            settings.alloy_token,
            timeout=settings.alloy_timeout,
            max_retries=settings.alloy_max_retries,
            page_size=settings.alloy_page_size,
            limits=limits if limits is not None else RateLimits.from_settings(settings),
            backoff_base=backoff_base,
            backoff_max=backoff_max,
        )

    # --- items -----------------------------------------------------------------------------

    async def query(self, aqs: Node, page_size: int | None = None) -> AsyncGenerator[Item, None]:
        """Yield every item matched by `aqs`, fetching pages lazily as the caller iterates.

        Alloy sends no totals: paging stops at an empty page, or at a page holding fewer results
        than the page size the server echoed back (so a query matching fewer items than a page
        costs exactly one request). Items edited while we page can move between pages; an item id
        already yielded is never yielded again within one iteration.
        """
        async for page in self.query_pages(aqs, page_size):
            for item in page.items:
                yield item

    async def query_pages(
        self, aqs: Node, page_size: int | None = None, known_view: KnownView | None = None
    ) -> AsyncGenerator[Page, None]:
        """Like `query`, one `Page` at a time: its new items and the server's clock.

        `page.server_time` is the `Date` header of that page's response (Alloy's clock, whole
        seconds), so the first page's is the time of the query on Alloy's clock. Paging rules are
        those of `query`; an empty last page is yielded too (with no items). With `known_view`,
        results whose (itemId, signature) it says the caller has are not parsed: their ids come
        in `page.known` instead of `page.items`.
        """
        size = page_size or self.page_size
        seen: set[str] = set()
        page_number = 1
        stale_pages = 0
        while True:
            params = {"page": str(page_number), "pageSize": str(size)}
            request = Request("query", "POST", "/api/aqs/query", params, {"aqs": aqs})
            answer = await self._send(request, parse_page(size, known_view))
            page = answer.value
            new_items = [item for item in page.items if item.itemId not in seen]
            seen.update(item.itemId for item in new_items)
            known = [item_id for item_id in page.known if item_id not in seen]
            seen.update(known)
            yield Page(number=page_number, items=new_items, server_time=answer.server_time, known=known)
            if page.size == 0 or page.size < page.page_size:
                return
            stale_pages = 0 if new_items or known else stale_pages + 1
            if stale_pages >= _MAX_STALE_PAGES:
                log.warning(
                    "query paging stalled: Alloy answers full pages with nothing new",
                    page=page_number,
                    page_size=size,
                    items=len(seen),
                )
                return
            page_number += 1

    async def get_item(self, item_id: str) -> Item:
        """Read one item."""
        return await self._call("read", "GET", f"/api/item/{item_id}", parse_wrapped_item)

    async def create_item(self, design: str, attributes: Mapping[str, Any], collection: str = "Live") -> Item:
        """Create an item of `design` with `attributes` (`{code: value}`); returns it as created."""
        body = {"designCode": design, "collection": collection, "attributes": wire_attributes(attributes)}
        return await self._call("write", "POST", "/api/item", parse_wrapped_item, body=body, idempotent=False)

    async def edit_item(self, item_id: str, attributes: Mapping[str, Any], signature: str | None) -> Item:
        """Set `attributes` on the item; all others keep their value. Returns the item with its new signature.

        Fails with `is_signature_mismatch` when `signature` is stale; `update_owned` handles that.
        """
        body = {"attributes": wire_attributes(attributes), "signature": signature}
        return await self._call("write", "PUT", f"/api/item/{item_id}", parse_wrapped_item, body=body)

    async def update_owned(
        self,
        item_id: str,
        attributes: Mapping[str, Any],
        signature: str | None = None,
        max_conflicts: int = 5,
    ) -> Item:
        """Write attributes alloysync owns, resolving signature conflicts without clobbering anyone.

        Edits with `signature` (reading the item first when not given). When someone else edited
        the item in between, re-reads it for the fresh signature and sends the same `attributes`
        again — only those, never a whole item, so a user's concurrent change to any other
        attribute survives. Gives up after `max_conflicts` conflicts, raising the last
        signature-mismatch error.
        """
        return (await self.edit_owned(item_id, attributes, signature, max_conflicts)).item

    async def edit_owned(
        self,
        item_id: str,
        attributes: Mapping[str, Any],
        signature: str | None = None,
        max_conflicts: int = 5,
    ) -> OwnedEdit:
        """`update_owned`, also saying which view of the item the edit that landed was based on."""
        if signature is None:
            signature = (await self.get_item(item_id)).signature
        conflicts = 0
        while True:
            try:
                return OwnedEdit(await self.edit_item(item_id, attributes, signature), signature)
            except AlloyError as error:
                if not error.is_signature_mismatch or conflicts >= max_conflicts:
                    raise
                conflicts += 1
                log.info(
                    "signature conflict; reading the item again",
                    item_id=item_id,
                    conflict=conflicts,
                    limit=max_conflicts,
                )
            signature = (await self.get_item(item_id)).signature

    async def delete_item(self, item_id: str, signature: str | None = None) -> None:
        """Delete an item (reading it first for its signature when not given)."""
        if signature is None:
            signature = (await self.get_item(item_id)).signature
        await self._call("write", "DELETE", f"/api/item/{item_id}", ignore, body={"signature": signature})

    # --- designs ---------------------------------------------------------------------------

    async def get_design(self, code: str) -> Design:
        """Read a design with its attributes and signature (`GET /api/design/{code}`).

        Fails with `is_not_found` when there is no such design (or the key's user cannot see it).
        """
        return await self._call("read", "GET", f"/api/design/{quote(code, safe='')}", parse_wrapped_design)

    async def list_designs(self, name_query: str | None = None, page_size: int = 100) -> list[Design]:
        """Every design whose name matches `name_query` (Alloy's own match), or every design.

        `GET /api/design?Query=...`, all pages; this endpoint does send totals (`totalPages`).
        """
        designs: list[Design] = []
        page_number = 1
        while True:
            params = {"Page": str(page_number), "PageSize": str(page_size)}
            if name_query:
                params["Query"] = name_query
            page = await self._call("read", "GET", "/api/design", parse_design_page, params=params)
            designs.extend(page.designs)
            last_page = page.total_pages if page.total_pages is not None else page_number
            if not page.designs or page_number >= last_page or len(page.designs) < page_size:
                return designs
            page_number += 1

    async def create_design(
        self,
        name: str,
        *,
        collections: Sequence[str] = ("Live",),
        geometry_required: bool = False,
        title: str | None = None,
        subtitle: str | None = None,
    ) -> Design:
        """Create a design (`POST /api/design`); Alloy generates its code. Returns the new design.

        Not repeated after an answer that may have been lost: that could create two designs.
        """
        body: dict[str, Any] = {
            "name": name,
            "collections": list(collections),
            "geometryRequired": geometry_required,
        }
        if title is not None:
            body["title"] = title
        if subtitle is not None:
            body["subtitle"] = subtitle
        return await self._call(
            "write", "POST", "/api/design", parse_wrapped_design, body=body, idempotent=False
        )

    async def add_design_attribute(
        self, design_code: str, attribute: NewAttribute, signature: str | None
    ) -> AttributeAdded:
        """Add an attribute to a design (`POST /api/design/{code}/attribute`) with its `signature`.

        Returns the generated attribute code and the design as it now is (with the signature for
        the next edit). A stale signature fails with `is_design_signature_mismatch`; the signature
        also makes a repeated request safe (the second one is refused as stale).
        """
        return await self._call(
            "write",
            "POST",
            f"/api/design/{quote(design_code, safe='')}/attribute",
            parse_attribute_added,
            body=attribute.wire(signature),
        )


@dataclass(frozen=True)
class OwnedEdit:
    """An edit of alloysync's attributes that landed: the item as it is now, and the signature of
    the view it was made on (so the item differs from that view only by the attributes sent)."""

    item: Item
    based_on: str | None


@dataclass(frozen=True)
class Page:
    """One page of an AQS query: the items not seen on an earlier page, and Alloy's clock."""

    number: int  # 1-based
    items: list[Item]
    server_time: datetime | None  # the response's `Date` header (aware UTC), None when absent or bad
    known: list[str] = field(default_factory=list)  # ids of items the caller had (see `query_pages`)

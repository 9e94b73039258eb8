"""`AlloyClient`: the one way alloysync talks to the Alloy API.

This module owns the HTTP conversation with Alloy: the session, authentication, timeouts, retries,
pacing through the client-side rate limits, paging of AQS queries, the read → edit → resolve-conflict
cycle, and the request metrics. It speaks only the public API (`/api/...` under
`ALLOYSYNC_ALLOY_URL`), so it works identically against real Alloy and `alloysync emulator`.

Retries. Every request first takes a token from its endpoint family's budget (`ratelimit.py`), then
is sent with `ALLOYSYNC_ALLOY_TIMEOUT`. Connection errors, timeouts, 5xx and 429 are retried up to
`ALLOYSYNC_ALLOY_MAX_RETRIES` times with exponential backoff and full jitter; a 429 that says when
the window resets blocks the whole family until then instead. Other 4xx fail at once — a rejected
token (401) is not going to improve by asking again.

Creating an item is the exception: `POST /api/item` is not idempotent, and a retry after a lost
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

Alloy's clock. Every response's `Date` header is kept in `last_server_time`; `query_pages` yields it
per page, so a caller can learn the time of a query on Alloy's clock rather than its own.

The API token is held as a `SecretStr`, put into the Authorization header of each request and
nowhere else: not in reprs, exceptions, log lines or metrics.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any, Generic, Self, TypeVar
from urllib.parse import quote

import aiohttp
from pydantic import BaseModel, SecretStr, ValidationError

from alloysync import __version__
from alloysync.alloy.aqs import Node
from alloysync.alloy.designs import AttributeAdded, Design, NewAttribute
from alloysync.alloy.errors import AlloyError, error_from_response, network_error
from alloysync.alloy.models import Item, format_alloy_datetime
from alloysync.alloy.ratelimit import Family, RateLimits, parse_rate_limit_headers, parse_retry_after
from alloysync.log import get_logger
from alloysync.metrics import ALLOY_RATE_LIMIT_WAIT, ALLOY_REQUEST_DURATION, ALLOY_REQUESTS
from alloysync.settings import Settings

__all__ = ["AlloyClient", "Page", "parse_http_date"]

log = get_logger(__name__)

T = TypeVar("T")

DEFAULT_BACKOFF_BASE = 0.5  # seconds; the first retry waits up to this long
DEFAULT_BACKOFF_MAX = 30.0  # seconds; no single backoff is longer than this
# Consecutive full pages with nothing new after which paging stops (a server ignoring `page`).
_MAX_STALE_PAGES = 3


class AlloyClient:
    """An async Alloy API client: one aiohttp session, used as `async with AlloyClient(...) as alloy:`.

    Make one per process (`AlloyClient.from_settings(settings)`) and share it: the rate-limit
    budgets and the connection pool are per client.
    """

    def __init__(
        self,
        base_url: str,
        token: SecretStr | str,
        *,
        timeout: float = 30.0,
        max_retries: int = 5,
        page_size: int = 100,
        limits: RateLimits | None = None,
        backoff_base: float = DEFAULT_BACKOFF_BASE,
        backoff_max: float = DEFAULT_BACKOFF_MAX,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token if isinstance(token, SecretStr) else SecretStr(token)
        self.timeout = timeout
        self.max_retries = max_retries
        self.page_size = page_size
        self.limits = limits if limits is not None else RateLimits.per_minute()
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self._session: aiohttp.ClientSession | None = None
        # Alloy's clock: the `Date` header of the latest response that had one (see `query_pages`).
        self.last_server_time: datetime | None = None

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

    def __repr__(self) -> str:
        return f"AlloyClient(base_url={self.base_url!r})"

    # --- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        self._ensure_session()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the HTTP session (the client may be used again: a new session is then opened)."""
        session, self._session = self._session, None
        if session is not None and not session.closed:
            await session.close()

    def _ensure_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                headers={"Accept": "application/json", "User-Agent": f"alloysync/{__version__}"},
                raise_for_status=False,
            )
        return self._session

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

    async def query_pages(self, aqs: Node, page_size: int | None = None) -> AsyncGenerator[Page, None]:
        """Like `query`, one `Page` at a time: its new items and the server's clock.

        `page.server_time` is the `Date` header of that page's response (Alloy's clock, whole
        seconds), so the first page's is the time of the query on Alloy's clock. Paging rules are
        those of `query`; an empty last page is yielded too (with no items).
        """
        size = page_size or self.page_size
        seen: set[str] = set()
        page_number = 1
        stale_pages = 0
        while True:
            answer = await self._send(
                "query",
                "POST",
                "/api/aqs/query",
                _parse_page(size),
                params={"page": str(page_number), "pageSize": str(size)},
                body={"aqs": aqs},
            )
            page = answer.value
            new_items = [item for item in page.items if item.itemId not in seen]
            seen.update(item.itemId for item in new_items)
            yield Page(number=page_number, items=new_items, server_time=answer.server_time)
            if page.size == 0 or page.size < page.page_size:
                return
            stale_pages = 0 if new_items else stale_pages + 1
            if stale_pages >= _MAX_STALE_PAGES:
                log.warning("alloy.query_paging_stalled", page=page_number, page_size=size, items=len(seen))
                return
            page_number += 1

    async def get_item(self, item_id: str) -> Item:
        """Read one item."""
        return await self._call("read", "GET", f"/api/item/{item_id}", _parse_wrapped_item)

    async def create_item(self, design: str, attributes: Mapping[str, Any], collection: str = "Live") -> Item:
        """Create an item of `design` with `attributes` (`{code: value}`); returns it as created."""
        body = {"designCode": design, "collection": collection, "attributes": _wire_attributes(attributes)}
        return await self._call(
            "write", "POST", "/api/item", _parse_wrapped_item, body=body, idempotent=False
        )

    async def edit_item(self, item_id: str, attributes: Mapping[str, Any], signature: str | None) -> Item:
        """Set `attributes` on the item; all others keep their value. Returns the item with its new signature.

        Fails with `is_signature_mismatch` when `signature` is stale; `update_owned` handles that.
        """
        body = {"attributes": _wire_attributes(attributes), "signature": signature}
        return await self._call("write", "PUT", f"/api/item/{item_id}", _parse_wrapped_item, body=body)

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
        if signature is None:
            signature = (await self.get_item(item_id)).signature
        conflicts = 0
        while True:
            try:
                return await self.edit_item(item_id, attributes, signature)
            except AlloyError as error:
                if not error.is_signature_mismatch or conflicts >= max_conflicts:
                    raise
                conflicts += 1
                log.info("alloy.signature_conflict", item_id=item_id, conflict=conflicts, limit=max_conflicts)
            signature = (await self.get_item(item_id)).signature

    async def delete_item(self, item_id: str, signature: str | None = None) -> None:
        """Delete an item (reading it first for its signature when not given)."""
        if signature is None:
            signature = (await self.get_item(item_id)).signature
        await self._call("write", "DELETE", f"/api/item/{item_id}", _ignore, body={"signature": signature})

    # --- designs ---------------------------------------------------------------------------

    async def get_design(self, code: str) -> Design:
        """Read a design with its attributes and signature (`GET /api/design/{code}`).

        Fails with `is_not_found` when there is no such design (or the key's user cannot see it).
        """
        return await self._call("read", "GET", f"/api/design/{quote(code, safe='')}", _parse_wrapped_design)

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
            page = await self._call("read", "GET", "/api/design", _parse_design_page, params=params)
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
            "write", "POST", "/api/design", _parse_wrapped_design, body=body, idempotent=False
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
            _parse_attribute_added,
            body=attribute.wire(signature),
        )

    # --- the request loop ------------------------------------------------------------------

    async def _call(
        self,
        family: Family,
        method: str,
        path: str,
        parse: Callable[[Any], T],
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        idempotent: bool = True,
    ) -> T:
        """Send one API request with pacing, timeout and retries; return `parse(decoded JSON body)`."""
        answer = await self._send(
            family, method, path, parse, params=params, body=body, idempotent=idempotent
        )
        return answer.value

    async def _send(
        self,
        family: Family,
        method: str,
        path: str,
        parse: Callable[[Any], T],
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        idempotent: bool = True,
    ) -> _Answer[T]:
        """`_call`, also returning the server's `Date` of the answer that succeeded.

        `idempotent=False` marks a request that may only be repeated when the server certainly did
        not process it (see the module docstring).
        """
        request = _Request(family, method, path, params, body)
        attempt = 0
        while True:
            try:
                return await self._attempt(request, parse)
            except _AttemptFailed as failed:
                error = failed.error
                safe_to_repeat = idempotent or failed.unprocessed
            if not (error.is_retryable and safe_to_repeat and attempt < self.max_retries):
                self._log_failure(error, family, attempt)
                raise error
            attempt += 1
            # While the server has the family blocked (0 remaining, Retry-After), the next acquire()
            # waits for exactly that long; otherwise back off exponentially with full jitter.
            delay = 0.0 if self.limits[family].blocked_for > 0 else self._backoff(attempt)
            log.warning(
                "alloy.retry",
                request=error.request,
                endpoint=family,
                status=error.status,
                category=error.category or None,
                code=error.code or None,
                attempt=attempt,
                max_retries=self.max_retries,
                delay=round(delay, 3),
                error=error.message,
            )
            if delay > 0:
                await asyncio.sleep(delay)

    async def _attempt(self, request: _Request, parse: Callable[[Any], T]) -> _Answer[T]:
        """One try: wait for the family's budget, send, record metrics and the server's rate headers.

        Returns the parsed body of a 2xx answer; raises `_AttemptFailed` for anything else, and
        `AlloyError` directly for a 2xx answer with an unexpected body (never worth repeating).
        """
        family, label = request.family, request.label
        waited = await self.limits.acquire(family)
        if waited > 0:
            ALLOY_RATE_LIMIT_WAIT.labels(endpoint=family).inc(waited)
        session = self._ensure_session()
        started = time.monotonic()
        try:
            async with session.request(
                request.method,
                self.base_url + request.path,
                params=request.params,
                json=request.body,
                headers=self._auth_header(),
                allow_redirects=False,  # a redirected POST would silently turn into a GET
            ) as response:
                raw = await response.read()
        except (TimeoutError, aiohttp.ClientError) as exc:
            ALLOY_REQUESTS.labels(endpoint=family, status="error").inc()
            ALLOY_REQUEST_DURATION.labels(endpoint=family).observe(time.monotonic() - started)
            if isinstance(exc, TimeoutError):
                error = network_error(self.base_url, "timeout", request=label, timeout=self.timeout)
                raise _AttemptFailed(error, unprocessed=False) from None
            # A connector error means no connection was ever made: the server saw nothing.
            never_connected = isinstance(exc, aiohttp.ClientConnectorError)
            error = network_error(self.base_url, _reason(exc), request=label, connected=not never_connected)
            raise _AttemptFailed(error, unprocessed=never_connected) from None

        status = response.status
        ALLOY_REQUESTS.labels(endpoint=family, status=str(status)).inc()
        ALLOY_REQUEST_DURATION.labels(endpoint=family).observe(time.monotonic() - started)
        self.limits.observe_headers(family, response.headers)
        content_type = response.headers.get("Content-Type", "")
        server_time = parse_http_date(response.headers.get("Date"))
        if server_time is not None:
            self.last_server_time = server_time
        if 200 <= status < 300:
            try:
                return _Answer(parse(_decode_json(raw, content_type)), server_time)
            except _UnexpectedResponse as exc:
                error = AlloyError(
                    f"Alloy answered HTTP {status} with {exc}",
                    status=status,
                    code="InvalidResponse",
                    category="Client",
                    request=label,
                )
                self._log_failure(error, family, 0)
                raise error from None

        error = error_from_response(
            status, raw, content_type, request=label, secrets=[self._token.get_secret_value()]
        )
        if error.is_rate_limited:
            error.retry_after = _server_wait(response.headers)
            if error.retry_after is not None:
                self.limits.block_for(family, error.retry_after)
        # A rate-limit refusal, a 503 or maintenance: turned away before any work was done.
        refused = error.is_rate_limited or status == 503 or error.names("SystemUnderMaintenance")
        raise _AttemptFailed(error, unprocessed=refused)

    def _backoff(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(max, base * 2^(attempt-1))]."""
        ceiling = min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1))
        return random.uniform(0, ceiling)

    def _auth_header(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token.get_secret_value()}"}

    def _log_failure(self, error: AlloyError, family: Family, attempt: int) -> None:
        fields: dict[str, Any] = {
            "request": error.request,
            "endpoint": family,
            "status": error.status,
            "category": error.category or None,
            "code": error.code or None,
            "attempts": attempt + 1,
            "error": error.message,
        }
        if error.is_unauthorized:
            log.error("alloy.unauthorized", **fields)
        elif error.is_retryable:
            log.warning("alloy.request_failed", **fields)
        else:  # a 4xx answer the caller is expected to handle (not found, signature mismatch, ...)
            log.debug("alloy.request_rejected", **fields)


# --- helpers -------------------------------------------------------------------------------


class _UnexpectedResponse(Exception):
    """A 2xx response whose body is not what the endpoint returns; `_attempt` turns it into an AlloyError."""


class _AttemptFailed(Exception):
    """One try of a request failed; `unprocessed` when the server certainly did not act on it."""

    def __init__(self, error: AlloyError, *, unprocessed: bool) -> None:
        super().__init__(error.message)
        self.error = error
        self.unprocessed = unprocessed


@dataclass(frozen=True)
class _Request:
    family: Family
    method: str
    path: str
    params: Mapping[str, str] | None
    body: Any

    @property
    def label(self) -> str:
        return f"{self.method} {self.path}"


@dataclass(frozen=True)
class Page:
    """One page of an AQS query: the items not seen on an earlier page, and Alloy's clock."""

    number: int  # 1-based
    items: list[Item]
    server_time: datetime | None  # the response's `Date` header (aware UTC), None when absent or bad


@dataclass(frozen=True)
class _Answer(Generic[T]):
    value: T
    server_time: datetime | None


@dataclass(frozen=True)
class _DesignPage:
    designs: list[Design]
    total_pages: int | None


@dataclass(frozen=True)
class _RawPage:
    items: list[Item]
    size: int  # the number of results the server returned (before removing repeats)
    page_size: int  # the page size the server says it used


def _reason(exc: BaseException) -> str:
    """A short description of a connection failure (aiohttp's messages never carry headers)."""
    text = str(exc).strip()
    return text or type(exc).__name__


def _server_wait(headers: Mapping[str, str]) -> float | None:
    """How long a 429 asked us to wait: `Retry-After`, else until `X-Rate-Limit-Reset`."""
    retry_after = parse_retry_after(headers.get("Retry-After"))
    if retry_after is not None:
        return retry_after
    _remaining, reset_at = parse_rate_limit_headers(headers)
    if reset_at is None:
        return None
    return max(0.0, (reset_at - datetime.now(UTC)).total_seconds())


def _decode_json(raw: bytes, content_type: str) -> Any:
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except ValueError:
        snippet = raw[:200].decode("utf-8", errors="replace")
        raise _UnexpectedResponse(
            f"a body that is not JSON ({content_type or 'no content type'}): {snippet!r}"
        ) from None


def _ignore(_payload: Any) -> None:
    return None


def _parse_page(requested: int) -> Callable[[Any], _RawPage]:
    def parse(payload: Any) -> _RawPage:
        if not isinstance(payload, dict):
            raise _UnexpectedResponse("a query answer that is not an object with results")
        results = payload.get("results")
        if results is None:
            results = []
        if not isinstance(results, list):
            raise _UnexpectedResponse("a query answer whose results are not a list")
        return _RawPage([_parse_item(raw) for raw in results], len(results), _page_size(payload, requested))

    return parse


def _page_size(payload: dict[str, Any], requested: int) -> int:
    """The page size the server says it used (it may cap ours), else the one we asked for."""
    echoed = payload.get("pageSize")
    if isinstance(echoed, int) and not isinstance(echoed, bool) and echoed > 0:
        return echoed
    return requested


def _parse_wrapped_item(payload: Any) -> Item:
    """Single items come as `{"item": {...}}`; a bare item is accepted too."""
    if isinstance(payload, dict) and isinstance(payload.get("item"), dict):
        payload = payload["item"]
    return _parse_item(payload)


def _parse_wrapped_design(payload: Any) -> Design:
    """A design comes as `{"design": {...}, "operationsSummary": {...}}`; a bare design is accepted too."""
    if isinstance(payload, dict) and isinstance(payload.get("design"), dict):
        payload = payload["design"]
    return _validated(Design, payload, "a design")


def _parse_attribute_added(payload: Any) -> AttributeAdded:
    """`{"attributeCode", "designWithOperationsSummary": {"design": {...}}}`."""
    if not isinstance(payload, dict) or not isinstance(payload.get("attributeCode"), str):
        raise _UnexpectedResponse("an answer to adding an attribute without its attributeCode")
    wrapped = payload.get("designWithOperationsSummary", payload.get("design"))
    design = _parse_wrapped_design(wrapped) if isinstance(wrapped, dict) else None
    return AttributeAdded(attribute_code=payload["attributeCode"], design=design)


def _parse_design_page(payload: Any) -> _DesignPage:
    if not isinstance(payload, dict) or not isinstance(payload.get("results", []), list):
        raise _UnexpectedResponse("a design list that is not an object with results")
    designs = [_parse_wrapped_design(raw) for raw in payload.get("results") or []]
    total = payload.get("totalPages")
    total_pages = total if isinstance(total, int) and not isinstance(total, bool) else None
    return _DesignPage(designs, total_pages)


M = TypeVar("M", bound=BaseModel)


def _validated(model: type[M], raw: Any, what: str) -> M:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in problem['loc']) or 'body'}: {problem['msg']}"
            for problem in exc.errors()[:3]
        )
        raise _UnexpectedResponse(f"something that is not {what} ({problems})") from None


def parse_http_date(value: str | None) -> datetime | None:
    """An HTTP `Date` header (`Tue, 02 Jul 2024 10:00:00 GMT`) as an aware UTC datetime, or None."""
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed.tzinfo is None:  # `-0000`: UTC by RFC 5322
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _parse_item(raw: Any) -> Item:
    return _validated(Item, raw, "an item")


def _wire_attributes(attributes: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [{"attributeCode": code, "value": _wire_value(value)} for code, value in attributes.items()]


def _wire_value(value: Any) -> Any:
    """Python values Alloy has a text form for: datetimes as Alloy DateTime, dates as `YYYY-MM-DD`."""
    if isinstance(value, datetime):
        return format_alloy_datetime(value)
    if isinstance(value, date):
        return value.isoformat()
    return value

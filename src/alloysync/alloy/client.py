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
AQS queries are POSTs too, but read-only, so they retry like reads. Edits carry a signature, so a
repeated edit cannot silently apply twice: at worst it fails with a signature mismatch, which
`update_owned` resolves.

The API token is held as a `SecretStr`, put into the Authorization header of each request and
nowhere else: not in reprs, exceptions, log lines or metrics.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import AsyncGenerator, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from types import TracebackType
from typing import Any, Self, TypeVar

import aiohttp
from pydantic import SecretStr, ValidationError

from alloysync import __version__
from alloysync.alloy.aqs import Node
from alloysync.alloy.errors import AlloyError, error_from_response, network_error
from alloysync.alloy.models import Item, format_alloy_datetime
from alloysync.alloy.ratelimit import Family, RateLimits, parse_rate_limit_headers, parse_retry_after
from alloysync.log import get_logger
from alloysync.metrics import ALLOY_RATE_LIMIT_WAIT, ALLOY_REQUEST_DURATION, ALLOY_REQUESTS
from alloysync.settings import Settings

__all__ = ["AlloyClient"]

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
        than the page size the server echoed back. Items edited while we page can move between
        pages; an item id already yielded is never yielded again within one iteration.
        """
        size = page_size or self.page_size
        seen: set[str] = set()
        page_number = 1
        stale_pages = 0
        while True:
            page = await self._call(
                "query",
                "POST",
                "/api/aqs/query",
                _parse_page(size),
                params={"page": str(page_number), "pageSize": str(size)},
                body={"aqs": aqs},
            )
            new = 0
            for item in page.items:
                if item.itemId in seen:
                    continue
                seen.add(item.itemId)
                new += 1
                yield item
            if page.size == 0 or page.size < page.page_size:
                return
            stale_pages = 0 if new else stale_pages + 1
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
        """Send one API request with pacing, timeout and retries; return `parse(decoded JSON body)`.

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
                code=error.code or None,
                attempt=attempt,
                max_retries=self.max_retries,
                delay=round(delay, 3),
                error=error.message,
            )
            if delay > 0:
                await asyncio.sleep(delay)

    async def _attempt(self, request: _Request, parse: Callable[[Any], T]) -> T:
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
        if 200 <= status < 300:
            try:
                return parse(_decode_json(raw, content_type))
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

        retry_after = _server_wait(response.headers) if status == 429 else None
        if retry_after is not None:
            self.limits.block_for(family, retry_after)
        error = error_from_response(
            status,
            raw,
            content_type,
            request=label,
            retry_after=retry_after,
            secrets=[self._token.get_secret_value()],
        )
        # 429 and 503 are refusals: the request was turned away before any work was done.
        raise _AttemptFailed(error, unprocessed=status in (429, 503))

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
class _Page:
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


def _parse_page(requested: int) -> Callable[[Any], _Page]:
    def parse(payload: Any) -> _Page:
        if not isinstance(payload, dict):
            raise _UnexpectedResponse("a query answer that is not an object with results")
        results = payload.get("results")
        if results is None:
            results = []
        if not isinstance(results, list):
            raise _UnexpectedResponse("a query answer whose results are not a list")
        return _Page([_parse_item(raw) for raw in results], len(results), _page_size(payload, requested))

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


def _parse_item(raw: Any) -> Item:
    try:
        return Item.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in problem['loc']) or 'item'}: {problem['msg']}"
            for problem in exc.errors()[:3]
        )
        raise _UnexpectedResponse(f"something that is not an item ({problems})") from None


def _wire_attributes(attributes: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [{"attributeCode": code, "value": _wire_value(value)} for code, value in attributes.items()]


def _wire_value(value: Any) -> Any:
    """Python values Alloy has a text form for: datetimes as Alloy DateTime, dates as `YYYY-MM-DD`."""
    if isinstance(value, datetime):
        return format_alloy_datetime(value)
    if isinstance(value, date):
        return value.isoformat()
    return value

"""`AlloyTransport`: the HTTP conversation with Alloy under `AlloyClient` — the session,
authentication, timeouts, retries, pacing through the client-side rate limits, Alloy's clock and
the request metrics. `client.py` builds the API's endpoints on it.

Retries. Every request first takes a token from its endpoint family's budget (`ratelimit.py`), then
is sent with `ALLOYSYNC_ALLOY_TIMEOUT`. Connection errors, timeouts, 5xx and 429 are retried up to
`ALLOYSYNC_ALLOY_MAX_RETRIES` times with exponential backoff and full jitter; a 429 that says when
the window resets blocks the whole family until then instead. Other 4xx fail at once — a rejected
token (401) is not going to improve by asking again. A request marked not idempotent is repeated
only when the server certainly did not process it: 429 (refused by the rate limiter before any
work), 503 (refused as unavailable) and a connection that was never established.

Alloy's clock. Every response's `Date` header is kept in `last_server_time`, and `_send` returns it
with the answer, so a caller can learn the time of a request on Alloy's clock rather than its own.

The API token is held as a `SecretStr`, put into the Authorization header of each request and
nowhere else: not in reprs, exceptions, log lines or metrics.
"""

from __future__ import annotations

import asyncio
import functools
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

import aiohttp
from pydantic import SecretStr

from alloysync import __version__
from alloysync.alloy.errors import AlloyError, error_from_response, network_error
from alloysync.alloy.ratelimit import Family, RateLimits, parse_rate_limit_headers, parse_retry_after
from alloysync.alloy.responses import UnexpectedResponse, decode_json, parse_http_date
from alloysync.log import get_logger
from alloysync.metrics import ALLOY_RATE_LIMIT_WAIT, ALLOY_REQUEST_DURATION, ALLOY_REQUESTS
from alloysync.model.json_text import json_bytes

__all__ = ["DEFAULT_BACKOFF_BASE", "DEFAULT_BACKOFF_MAX", "AlloyTransport", "Request"]

log = get_logger(__name__)

T = TypeVar("T")

DEFAULT_BACKOFF_BASE = 0.5  # seconds; the first retry waits up to this long
DEFAULT_BACKOFF_MAX = 30.0  # seconds; no single backoff is longer than this


class AlloyTransport:
    """One aiohttp session to one Alloy, with its budgets; used as `async with ...:`."""

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
        not process it (see the module docstring)."""
        answer = await self._send(Request(family, method, path, params, body), parse, idempotent)
        return answer.value

    async def _send(self, request: Request, parse: Callable[[Any], T], idempotent: bool = True) -> Answer[T]:
        """`_call`, also returning the server's `Date` of the answer that succeeded."""
        family = request.family
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
                "Alloy request failed; retrying",
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

    async def _attempt(self, request: Request, parse: Callable[[Any], T]) -> Answer[T]:
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
            headers = self._auth_header()
            body = None
            if request.body is not None:
                body = json_bytes(request.body)
                headers["Content-Type"] = "application/json"
            async with session.request(
                request.method,
                self.base_url + request.path,
                params=request.params,
                data=body,
                headers=headers,
                allow_redirects=False,  # a redirected POST would silently turn into a GET
            ) as response:
                raw = await response.read()
        except (TimeoutError, aiohttp.ClientError) as exc:
            _observe(family, "error", time.monotonic() - started)
            if isinstance(exc, TimeoutError):
                error = network_error(self.base_url, "timeout", request=label, timeout=self.timeout)
                raise _AttemptFailed(error, unprocessed=False) from None
            # A connector error means no connection was ever made: the server saw nothing.
            never_connected = isinstance(exc, aiohttp.ClientConnectorError)
            error = network_error(self.base_url, _reason(exc), request=label, connected=not never_connected)
            raise _AttemptFailed(error, unprocessed=never_connected) from None

        status = response.status
        _observe(family, str(status), time.monotonic() - started)
        self.limits.observe_headers(family, response.headers)
        content_type = response.headers.get("Content-Type", "")
        server_time = parse_http_date(response.headers.get("Date"))
        if server_time is not None:
            self.last_server_time = server_time
        if 200 <= status < 300:
            try:
                return Answer(parse(decode_json(raw, content_type)), server_time)
            except UnexpectedResponse as exc:
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
            log.error("Alloy refused the API token", **fields)
        elif error.is_retryable:
            log.warning("Alloy request failed", **fields)
        else:  # a 4xx answer the caller is expected to handle (not found, signature mismatch, ...)
            log.debug("Alloy rejected the request", **fields)


# --- helpers -------------------------------------------------------------------------------


def _observe(family: Family, status: str, seconds: float) -> None:
    """Count a request by family and status (or 'error'), and time it."""
    requests, duration = _request_metrics(family, status)
    requests.inc()
    duration.observe(seconds)


@functools.cache
def _request_metrics(family: Family, status: str) -> tuple[Any, Any]:
    """The metrics' children for one family and status, looked up once (not under their lock
    for every request)."""
    requests = ALLOY_REQUESTS.labels(endpoint=family, status=status)
    return requests, ALLOY_REQUEST_DURATION.labels(endpoint=family)


class _AttemptFailed(Exception):
    """One try of a request failed; `unprocessed` when the server certainly did not act on it."""

    def __init__(self, error: AlloyError, *, unprocessed: bool) -> None:
        super().__init__(error.message)
        self.error = error
        self.unprocessed = unprocessed


@dataclass(frozen=True)
class Request:
    family: Family
    method: str
    path: str
    params: Mapping[str, str] | None
    body: Any

    @property
    def label(self) -> str:
        return f"{self.method} {self.path}"


@dataclass(frozen=True)
class Answer(Generic[T]):
    value: T
    server_time: datetime | None


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

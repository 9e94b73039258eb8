"""`AlloyError`, the one exception the Alloy client raises, and the lenient parser of error bodies.

This module owns how a failed Alloy call is described: which fields an error carries, how callers
classify it (`is_retryable`, `is_signature_mismatch`, ...) and the human-readable message. Error
bodies come in several shapes — the current `{category, errorCode, message, httpStatusCode,
errorData}`, the older `{errorCodeString, debugErrorMessage, ...}`, an HTML page from a proxy, an
empty body, odd JSON — and `error_from_response` turns every one of them into an `AlloyError`
without ever raising itself.

Messages are written for the person reading the log: a rejected token says which setting to check,
an unreachable host says which URL could not be reached. They never contain the API token.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

__all__ = ["SIGNATURE_MISMATCH", "AlloyError", "error_from_response", "network_error"]

SIGNATURE_MISMATCH = "ItemSignatureMismatch"

_SNIPPET_CHARS = 200
_REDACTED = "**********"
_TAG = re.compile(r"<[^>]*>")
_SPACE = re.compile(r"\s+")


class AlloyError(Exception):
    """A failed Alloy API call.

    `status` is the HTTP status, or None when no response arrived (connection refused, DNS failure,
    reset, timeout). `category` and `code` are Alloy's (empty when the body did not say);
    `error_data` is Alloy's `errorData` as sent. `request` names the call (`PUT /api/item/…`).
    `retry_after` is how long the server asked us to wait, in seconds, when it said so.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str = "",
        category: str = "",
        error_data: Any = None,
        request: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.category = category
        self.error_data = error_data
        self.request = request
        self.retry_after = retry_after

    def __str__(self) -> str:
        return f"{self.message} [{self.request}]" if self.request else self.message

    def __repr__(self) -> str:
        return (
            f"AlloyError(status={self.status!r}, code={self.code!r}, category={self.category!r}, "
            f"message={self.message!r}, request={self.request!r})"
        )

    @property
    def is_signature_mismatch(self) -> bool:
        """Our signature was stale: someone edited the item since we read it (any status, or 409)."""
        return self.code.lower() == SIGNATURE_MISMATCH.lower() or self.status == 409

    @property
    def is_retryable(self) -> bool:
        """Worth trying again later: no response at all, a timeout, 429 or a 5xx."""
        return self.status is None or self.status == 429 or self.status >= 500

    @property
    def is_not_found(self) -> bool:
        """The item (or endpoint) does not exist."""
        return self.status == 404 or self.code.lower().endswith("notfound")

    @property
    def is_unauthorized(self) -> bool:
        """The API token was rejected."""
        return self.status == 401

    @property
    def is_rate_limited(self) -> bool:
        """Alloy refused the call because the API key's rate limit was used up."""
        return self.status == 429


def network_error(
    base_url: str,
    reason: str,
    *,
    request: str | None = None,
    timeout: float | None = None,
    connected: bool = False,
) -> AlloyError:
    """An error for a call that got no HTTP response.

    `timeout` is set when it timed out; `connected` when a connection was made but broke before an
    answer arrived (reset, disconnect), as opposed to a connection that could not be made at all.
    """
    if timeout is not None:
        message = (
            f"Alloy at {base_url} did not answer within {timeout:g} s; check ALLOYSYNC_ALLOY_URL, "
            "the network, or raise ALLOYSYNC_ALLOY_TIMEOUT"
        )
        return AlloyError(message, code="Timeout", category="Network", request=request)
    if connected:
        message = (
            f"the connection to Alloy at {base_url} broke before an answer arrived ({reason}); "
            "check ALLOYSYNC_ALLOY_URL and the network"
        )
    else:
        message = f"could not reach Alloy at {base_url} ({reason}); check ALLOYSYNC_ALLOY_URL and the network"
    return AlloyError(message, code="ConnectionError", category="Network", request=request)


def error_from_response(
    status: int,
    body: bytes,
    content_type: str | None = None,
    *,
    request: str | None = None,
    retry_after: float | None = None,
    secrets: Iterable[str] = (),
) -> AlloyError:
    """Build an `AlloyError` from an HTTP error response, whatever its body looks like. Never raises.

    Any string in `secrets` is blanked out of the message and the error data.
    """
    try:
        fields = _fields_from_body(body, content_type or "")
    except Exception:  # a parser of untrusted input must not be the thing that crashes
        fields = _Fields()
    message = _human_message(status, fields)
    secret_values = [secret for secret in secrets if secret]
    error_data = fields.error_data
    if secret_values:
        message = _scrub(message, secret_values)
        error_data = _scrub_data(error_data, secret_values)
    return AlloyError(
        message,
        status=status,
        code=fields.code,
        category=fields.category,
        error_data=error_data,
        request=request,
        retry_after=retry_after,
    )


class _Fields:
    def __init__(
        self, code: str = "", category: str = "", text: str = "", error_data: Any = None, raw: str = ""
    ) -> None:
        self.code = code
        self.category = category
        self.text = text  # the server's own message, if it gave one
        self.error_data = error_data
        self.raw = raw  # a snippet of a body that was not a JSON error object


def _fields_from_body(body: bytes, content_type: str) -> _Fields:
    text = body.decode("utf-8", errors="replace").strip()
    if not text:
        return _Fields()
    try:
        document = json.loads(text)
    except ValueError:
        kind = content_type.split(";")[0].strip() or "unknown content type"
        return _Fields(raw=f"a non-JSON body ({kind}): {_snippet(text)}")
    return _fields_from_json(document)


def _fields_from_json(document: Any, depth: int = 0) -> _Fields:
    if isinstance(document, list):
        for element in document:
            if isinstance(element, dict):
                return _fields_from_json(element, depth + 1)
        return _Fields(raw=f"a JSON list: {_snippet(json.dumps(document))}")
    if isinstance(document, str):
        return _Fields(text=_snippet(document))
    if not isinstance(document, dict):
        return _Fields(raw=f"unexpected JSON: {_snippet(json.dumps(document))}")
    nested = document.get("error")
    if isinstance(nested, dict) and depth < 3 and not _has_error_keys(document):
        return _fields_from_json(nested, depth + 1)
    code = _first_text(document, "errorCode", "errorCodeString", "code", "error")
    if document.get("errorCodeString") and not isinstance(document.get("errorCode"), str):
        code = _first_text(document, "errorCodeString") or code
    text = _first_text(document, "message", "debugErrorMessage", "errorMessage", "detail", "title")
    error_data = document.get("errorData", document.get("error_data"))
    category = _first_text(document, "category")
    if not (code or text or category or error_data is not None):
        return _Fields(raw=f"unexpected JSON: {_snippet(json.dumps(document))}")
    return _Fields(code=code, category=category, text=_snippet(text), error_data=error_data)


def _has_error_keys(document: dict[str, Any]) -> bool:
    return any(key in document for key in ("errorCode", "errorCodeString", "message", "debugErrorMessage"))


def _first_text(document: dict[str, Any], *keys: str) -> str:
    for key in keys:
        value = document.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return ""


def _snippet(text: str) -> str:
    flat = _SPACE.sub(" ", _TAG.sub(" ", text)).strip()
    return flat if len(flat) <= _SNIPPET_CHARS else flat[: _SNIPPET_CHARS - 1] + "…"


_GENERIC = {
    400: "Alloy rejected the request as invalid",
    403: "the Alloy API token is not allowed to do this; check the API key's permissions in Alloy",
    404: "Alloy has no such item or endpoint",
    409: "the item was edited by someone else since it was read",
    429: "Alloy's rate limit for this API key is used up",
}


def _human_message(status: int, fields: _Fields) -> str:
    detail = fields.text or fields.raw
    label = f"HTTP {status}" + (f" {fields.code}" if fields.code else "")
    if status == 401:
        head = "Alloy rejected the API token; check ALLOYSYNC_ALLOY_TOKEN"
    elif 300 <= status < 400:
        head = "Alloy answered with a redirect; check ALLOYSYNC_ALLOY_URL (https rather than http?)"
    elif status in (502, 503, 504):
        head = "Alloy (or a proxy in front of it) is unavailable right now"
    elif status >= 500:
        head = "Alloy had an internal error"
    elif fields.code.lower() == SIGNATURE_MISMATCH.lower():
        head = _GENERIC[409]
    else:
        head = _GENERIC.get(status, "Alloy refused the request")
    return f"{head} ({label}): {detail}" if detail else f"{head} ({label})"


def _scrub(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, _REDACTED)
    return text


def _scrub_data(data: Any, secrets: list[str]) -> Any:
    if isinstance(data, str):
        return _scrub(data, secrets)
    if isinstance(data, list):
        return [_scrub_data(element, secrets) for element in data]
    if isinstance(data, dict):
        return {_scrub(str(key), secrets): _scrub_data(value, secrets) for key, value in data.items()}
    return data

"""`AlloyError`, the one exception the Alloy client raises, and the lenient parser of error bodies.

This module owns how a failed Alloy call is described: which fields an error carries, how callers
classify it (`is_retryable`, `is_signature_mismatch`, ...) and the human-readable message.

Alloy names the reason of an error in `category`, one of its published values (`ItemSignatureMismatch`,
`ItemNotFound`, `RateLimited`, `UserUnauthorized`, `BadRequest`, `InternalError`,
`SystemUnderMaintenance`, ...); the HTTP status of some reasons (a stale signature) is not
documented. So every classification works from the category alone, from the error code alone (older
bodies put the reason there), or from the HTTP status, and a category that names a definite reason
wins over a status that would suggest another (a stale signature sent as a 500 is not retried). Error
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
from dataclasses import KW_ONLY, dataclass
from typing import Any

__all__ = [
    "NOT_FOUND_REASONS",
    "RATE_LIMITED_REASONS",
    "RETRYABLE_REASONS",
    "SIGNATURE_MISMATCH",
    "SIGNATURE_MISMATCH_REASONS",
    "UNAUTHORIZED_REASONS",
    "AlloyError",
    "error_from_response",
    "network_error",
]

SIGNATURE_MISMATCH = "ItemSignatureMismatch"

# Reasons by Alloy's `category` values (ErrorCodeCategory in Alloy's published API models); an
# older body may carry the same word as its error code, so both fields are compared.
SIGNATURE_MISMATCH_REASONS = (SIGNATURE_MISMATCH,)
NOT_FOUND_REASONS = ("ItemNotFound", "DesignNotFound", "DodiNotFound", "DesignInterfaceNotFound")
UNAUTHORIZED_REASONS = ("UserUnauthorized", "UserSessionInvalid")
RATE_LIMITED_REASONS = ("RateLimited",)
RETRYABLE_REASONS = (
    *RATE_LIMITED_REASONS,
    "SystemUnderMaintenance",
    "InternalError",
    "RequestTimeout",
    "EngineNotInitialized",
    "DatabaseConnection",
    "DatabaseTransientError",
)
DESIGN_SIGNATURE_MISMATCH_REASONS = ("DesignSignatureMismatch",)
# Something the request body refers to does not exist; the addressed item or design may exist.
_REFERENCE_REASONS = ("DodiAttributeNotFound", "DodiAttributeNotInDesign", "DodiAttributeLinkItemNotFound")
_DEFINITE_REASONS: tuple[str, ...] = (
    *SIGNATURE_MISMATCH_REASONS,
    *DESIGN_SIGNATURE_MISMATCH_REASONS,
    *NOT_FOUND_REASONS,
    *_REFERENCE_REASONS,
    *UNAUTHORIZED_REASONS,
    "BadRequest",
    "ModelValidationFailed",
)
# Every reason this module classifies: a body naming one of them is not judged by its status.
_KNOWN_REASONS = (*_DEFINITE_REASONS, *RETRYABLE_REASONS)

_SNIPPET_CHARS = 200
_REDACTED = "**********"
_TAG = re.compile(r"<[^>]*>")
_SPACE = re.compile(r"\s+")


@dataclass(eq=False)
class AlloyError(Exception):
    """A failed Alloy API call.

    `status` is the HTTP status, or None when no response arrived (connection refused, DNS failure,
    reset, timeout). `category` and `code` are Alloy's (empty when the body did not say);
    `error_data` is Alloy's `errorData` as sent. `request` names the call (`PUT /api/item/…`).
    `retry_after` is how long the server asked us to wait, in seconds, when it said so.
    """

    message: str
    _: KW_ONLY
    status: int | None = None
    code: str = ""
    category: str = ""
    error_data: Any = None
    request: str | None = None
    retry_after: float | None = None

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def __str__(self) -> str:
        return f"{self.message} [{self.request}]" if self.request else self.message

    def __repr__(self) -> str:
        return (
            f"AlloyError(status={self.status!r}, code={self.code!r}, category={self.category!r}, "
            f"message={self.message!r}, request={self.request!r})"
        )

    def names(self, *reasons: str) -> bool:
        """Whether the category or the error code is one of `reasons` (compared case-insensitively)."""
        wanted = {reason.lower() for reason in reasons}
        return self.category.lower() in wanted or self.code.lower() in wanted

    def _status_means(self, status: int, *own_reasons: str) -> bool:
        """The HTTP status is `status` and the body names no other reason we know."""
        if self.status != status:
            return False
        names_own = self.names(*own_reasons)
        return names_own or not (self.names(*_KNOWN_REASONS) or self._names_forbidden())

    def _names_forbidden(self) -> bool:
        return _ends_with_forbidden(self.category) or _ends_with_forbidden(self.code)

    @property
    def is_signature_mismatch(self) -> bool:
        """Our item signature was stale: someone edited the item since we read it.

        Alloy does not document the HTTP status of this error, so the category or code alone
        decides, at any status; a 409 says the same unless its category names another reason
        (a stale design signature, an unknown attribute, ...).
        """
        return self.names(*SIGNATURE_MISMATCH_REASONS) or self._status_means(409)

    @property
    def is_design_signature_mismatch(self) -> bool:
        """The design signature sent with a design edit was stale: the design changed since it was read."""
        return self.names(*DESIGN_SIGNATURE_MISMATCH_REASONS)

    @property
    def is_not_found(self) -> bool:
        """The item or design addressed by the request does not exist (category, code or 404).

        Categories about something a request body refers to (an unknown attribute code, a linked
        item that does not exist) are not this: the addressed item may well exist.
        """
        return self.names(*NOT_FOUND_REASONS) or self._status_means(404)

    @property
    def is_unauthorized(self) -> bool:
        """The API token was rejected (category `UserUnauthorized`, or HTTP 401)."""
        return self.names(*UNAUTHORIZED_REASONS) or self._status_means(401)

    @property
    def is_forbidden(self) -> bool:
        """The token is valid, but the API key's user lacks the permission (`...Forbidden`, or 403)."""
        return self._names_forbidden() or self._status_means(403)

    @property
    def is_rate_limited(self) -> bool:
        """Alloy refused the call because the API key's rate limit was used up (`RateLimited`, or 429)."""
        return self.names(*RATE_LIMITED_REASONS) or self._status_means(429)

    @property
    def is_retryable(self) -> bool:
        """Worth trying again later.

        A transient category (rate limited, under maintenance, internal error, ...) is retryable at
        any status; a category that names a definite answer (a stale signature, not found, a
        rejected token, a missing permission) is not, even on a 5xx; otherwise: no response at all,
        a timeout, 429 or 5xx.
        """
        if self.names(*RETRYABLE_REASONS):
            return True
        if self.names(*_KNOWN_REASONS) or self._names_forbidden():
            return False
        return self.status is None or self.status == 429 or self.status >= 500


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


def _ends_with_forbidden(reason: str) -> bool:
    return reason.lower().endswith("forbidden")


def _human_message(status: int, fields: _Fields) -> str:
    """`<what it means and what to do> (HTTP <status> <category>/<code>): <the server's own words>`."""
    detail = fields.text or fields.raw
    reasons = [reason for reason in dict.fromkeys((fields.category, fields.code)) if reason]
    label = " ".join([f"HTTP {status}", "/".join(reasons)]).strip()
    head = _headline(AlloyError("", status=status, code=fields.code, category=fields.category))
    return f"{head} ({label}): {detail}" if detail else f"{head} ({label})"


# What a reason (category or error code) means for the reader, in order of precedence.
_REASON_HEADLINES: tuple[tuple[tuple[str, ...], str], ...] = (
    (SIGNATURE_MISMATCH_REASONS, "the item was edited by someone else since it was read"),
    (DESIGN_SIGNATURE_MISMATCH_REASONS, "the design was edited by someone else since it was read"),
    (("ItemNotFound",), "Alloy has no such item"),
    (("DesignNotFound", "DodiNotFound"), "Alloy has no such design"),
    (_REFERENCE_REASONS, "Alloy does not know an attribute or linked item the request refers to"),
    (RATE_LIMITED_REASONS, "Alloy's rate limit for this API key is used up"),
    (("SystemUnderMaintenance",), "Alloy is under maintenance right now"),
    (("RequestTimeout",), "Alloy timed out handling the request"),
    (
        ("InternalError", "EngineNotInitialized", "DatabaseConnection", "DatabaseTransientError"),
        "Alloy had an internal error",
    ),
    (("BadRequest", "ModelValidationFailed"), "Alloy rejected the request as invalid"),
)
# What an HTTP status means when no reason says more.
_STATUS_HEADLINES: tuple[tuple[range, str], ...] = (
    (range(300, 400), "Alloy answered with a redirect; check ALLOYSYNC_ALLOY_URL (https rather than http?)"),
    (range(429, 430), "Alloy's rate limit for this API key is used up"),
    (range(502, 505), "Alloy (or a proxy in front of it) is unavailable right now"),
    (range(500, 600), "Alloy had an internal error"),
    (range(409, 410), "the item was edited by someone else since it was read"),
    (range(404, 405), "Alloy has no such item or endpoint"),
    (range(400, 401), "Alloy rejected the request as invalid"),
)


def _headline(error: AlloyError) -> str:
    """What an error means for the reader, decided by category and code first, then by HTTP status."""
    if error.is_unauthorized:
        return "Alloy rejected the API token; check ALLOYSYNC_ALLOY_TOKEN"
    if error.is_forbidden:
        return (
            "the Alloy API key's user is not allowed to do this; give that user a role in Alloy "
            "that permits it (API keys have no scopes of their own)"
        )
    for reasons, headline in _REASON_HEADLINES:
        if error.names(*reasons):
            return headline
    status = error.status or 0
    for statuses, headline in _STATUS_HEADLINES:
        if status in statuses:
            return headline
    return "Alloy refused the request"


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
